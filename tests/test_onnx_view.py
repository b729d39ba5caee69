"""The ONNX view of a model agrees with the torch view on multiply-adds and params, for every registered model."""

from __future__ import annotations

import pytest

from shufflebench.export import export_onnx
from shufflebench.ops import OpKind
from shufflebench.onnx_table import onnx_layer_table
from shufflebench.torch_table import trace_layer_table
from shufflebench.models import ModelRef, resolve_model


def export(ref: ModelRef, folder):
    """The cached export of a freshly built module, into ``folder``."""
    return export_onnx(ref.build(), ref.input_shape, name=ref.name, label=ref.label, directory=folder)
from shufflebench.zoo.catalog import entries


def _small(entry) -> dict:
    # The smallest resolution the model allows keeps the export quick; counts scale but must still agree.
    # AlexNet's adaptive 6x6 pool exports to ONNX only where it is a plain pool: at 224.
    if entry.name == "alexnet":
        return {}
    option = next((o for o in entry.options if o.name == "resolution"), None)
    return {"resolution": int(max(option.minimum or 32, 32))} if option else {}


@pytest.mark.parametrize("entry", entries(), ids=lambda e: e.name)
def test_torch_and_onnx_views_agree(entry, tmp_path):
    ref = resolve_model(entry.name, overrides=_small(entry))
    torch_view = trace_layer_table(ref.build(), ref.input_shape)
    onnx_view = onnx_layer_table(export(ref, tmp_path), ref.input_shape)
    assert onnx_view.coverage.unknown == ()
    assert onnx_view.flops_madd == torch_view.flops_madd
    assert onnx_view.params == torch_view.params


def test_shufflenet_v2_shuffle_and_concat_cost_memory_not_flops(tmp_path):
    ref = resolve_model("v2", overrides={"resolution": 64})
    for table in (trace_layer_table(ref.build(), ref.input_shape),
                  onnx_layer_table(export(ref, tmp_path), ref.input_shape)):
        for kind in (OpKind.SHUFFLE, OpKind.CONCAT):
            rows = [layer for layer in table.layers if layer.kind is kind]
            assert len(rows) == 16, (table.source, kind)  # one per unit: 4 + 8 + 4
            assert all(r.flops_madd == 0 and r.mac_elements > 0 for r in rows)


def test_export_is_cached_by_content(tmp_path):
    ref = resolve_model("g1", overrides={"resolution": 8})
    first = export(ref, tmp_path)
    mtime = first.stat().st_mtime_ns
    assert export(ref, tmp_path) == first
    assert first.stat().st_mtime_ns == mtime
    other = export(resolve_model("g1", overrides={"resolution": 16}), tmp_path)
    assert other != first


def test_variants_that_differ_only_in_forward_get_their_own_export(tmp_path):
    # g4's shortcut flag changes forward(), not the weights: the cache must still tell them apart.
    with_shortcut = export(resolve_model("g4:shortcut=true,resolution=8"), tmp_path)
    without = export(resolve_model("g4:shortcut=false,resolution=8"), tmp_path)
    assert with_shortcut != without
