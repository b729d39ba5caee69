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
    inode = first.stat().st_ino
    assert export(ref, tmp_path) == first
    assert first.stat().st_ino == inode  # read back, not written again (a rewrite replaces the file)
    other = export(resolve_model("g1", overrides={"resolution": 16}), tmp_path)
    assert other != first


def test_variants_that_differ_only_in_forward_get_their_own_export(tmp_path):
    # g4's shortcut flag changes forward(), not the weights: the cache must still tell them apart.
    with_shortcut = export(resolve_model("g4:shortcut=true,resolution=8"), tmp_path)
    without = export(resolve_model("g4:shortcut=false,resolution=8"), tmp_path)
    assert with_shortcut != without


def _default_export(ref: ModelRef, folder):
    """torch.onnx.export with its default options (TorchScript exporter): batch norm folded into the convolutions."""
    import warnings

    import torch

    path = folder / "default.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ref.build(), (torch.zeros(ref.input_shape),), str(path), dynamo=False)
    return path


@pytest.mark.parametrize("entry", entries(), ids=lambda e: e.name)
def test_deployed_mac_agrees_between_torch_and_onnx_within_1_percent(entry, tmp_path):
    # The deployed view is what onnxruntime executes, decided per operator: from the torch trace, from this
    # project's export (batch norm kept) and from a default export (batch norm folded: fewer params, same MAC).
    ref = resolve_model(entry.name, overrides=_small(entry))
    torch_view = trace_layer_table(ref.build(), ref.input_shape)
    deployed = torch_view.total("mac_bytes_deployed")
    for path in (export(ref, tmp_path), _default_export(ref, tmp_path)):
        onnx_view = onnx_layer_table(path, ref.input_shape)
        assert onnx_view.total("mac_bytes_deployed") == pytest.approx(deployed, rel=0.01), path.name
        assert onnx_view.coverage.complete, onnx_view.coverage.describe()


def test_onnx_shape_arithmetic_is_bookkeeping_and_gather_of_data_moves_data(tmp_path):
    import torch
    from torch import nn

    class Picks(nn.Module):
        def forward(self, x):
            half = x.shape[1] // 2  # Shape -> Gather -> Div: sizes, no row
            return x[:, :half] + x.index_select(1, torch.tensor([0, 3]))

    ref = ModelRef("picks", "callable", (1, 4, 2, 2), target="picks")
    path = tmp_path / "picks.onnx"
    torch.onnx.export(Picks(), (torch.zeros(ref.input_shape),), str(path), dynamo=False)
    table = onnx_layer_table(path, ref.input_shape)
    kinds = sorted(layer.kind.value for layer in table.layers)
    assert kinds == ["add", "gather", "split"]  # no shape arithmetic among the rows
    assert table.other_ops_by_kind() == {"add": 8}
    gather = next(layer for layer in table.layers if layer.kind is OpKind.GATHER)
    assert gather.mac_elements == 8 + 2 + 8  # one output's worth of data, the indices, the output
    part = next(layer for layer in table.layers if layer.kind is OpKind.SPLIT)
    assert part.mac_elements == 8 + 8  # a Slice reads only its part
