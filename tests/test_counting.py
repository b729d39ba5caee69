"""The counting engine on tiny hand-built nets whose counts are worked out by hand here."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from shufflebench.ops import OpKind
from shufflebench.models import resolve_model
from shufflebench.prepared import PreparedModel
from shufflebench.torch_table import trace_layer_table
from shufflebench.zoo.catalog import entries, get_entry


def rows(table, kind=None):
    return [layer for layer in table.layers if kind is None or layer.kind is kind]


class Shuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class Split(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return torch.cat([a, b * 2], dim=1)


def test_grouped_1x1_conv_by_hand():
    # 8 -> 16 channels, g=2, on 4x4: each output element does 8/2 = 4 multiply-adds.
    table = trace_layer_table(nn.Conv2d(8, 16, 1, groups=2, bias=False), (1, 8, 4, 4))
    (conv,) = rows(table)
    assert conv.kind is OpKind.GROUP_CONV
    assert conv.flops_madd == 16 * 16 * 4 == 1024
    assert conv.params == 16 * 4 == 64
    # MAC = input 8*16 + output 16*16 + weights 64 = 448 elements, float32 -> 1792 bytes.
    assert conv.mac_elements == 448
    assert conv.mac_bytes == 448 * 4
    assert (conv.kernel, conv.stride, conv.groups) == ((1, 1), (1, 1), 2)


def test_depthwise_3x3_by_hand():
    # 4 channels, 5x5, stride 1, padding 1: 25 positions * 4 channels * 9 taps.
    table = trace_layer_table(nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False), (1, 4, 5, 5))
    (conv,) = rows(table)
    assert conv.kind is OpKind.DEPTHWISE_CONV
    assert conv.flops_madd == 25 * 4 * 9 == 900
    assert conv.params == 36
    assert conv.mac_elements == 100 + 100 + 36


def test_strided_conv_counts_output_positions():
    # 3 -> 8 channels, 3x3 stride 2 padding 1 on 8x8 -> 4x4 output; bias adds 8 params but no multiply-adds.
    table = trace_layer_table(nn.Conv2d(3, 8, 3, stride=2, padding=1), (2, 3, 8, 8))
    (conv,) = rows(table)
    assert conv.flops_madd == 2 * 16 * 8 * 3 * 9 == 6912
    assert conv.params == 8 * 27 + 8
    assert conv.stride == (2, 2)
    assert conv.mac_elements == 2 * 3 * 64 + 2 * 8 * 16 + 8 * 27 + 8


def test_paper_eq1_for_1x1_conv():
    # ShuffleNet V2 Eq. 1: MAC = hw(c1 + c2) + c1*c2 for a 1x1 conv.
    h = w = 7
    c1, c2 = 12, 30
    (conv,) = rows(trace_layer_table(nn.Conv2d(c1, c2, 1, bias=False), (1, c1, h, w)))
    assert conv.mac_elements == h * w * (c1 + c2) + c1 * c2


def test_channel_shuffle_moves_memory_but_computes_nothing():
    # 6 channels, 3 groups, 2x2: the transpose made contiguous copies 24 elements in and 24 out.
    table = trace_layer_table(Shuffle(3), (1, 6, 2, 2))
    assert [r.kind for r in rows(table)] == [OpKind.RESHAPE, OpKind.TRANSPOSE, OpKind.SHUFFLE, OpKind.RESHAPE]
    (shuffle,) = rows(table, OpKind.SHUFFLE)
    assert shuffle.flops_madd == 0 and shuffle.other_ops == 0
    assert shuffle.mac_elements == 48
    assert table.total("mac_elements") == 48


def test_split_is_a_view_and_concat_copies():
    table = trace_layer_table(Split(), (1, 4, 3, 3))
    (split,) = rows(table, OpKind.SPLIT)
    assert split.mac_elements == 0
    assert split.output_shapes == ((1, 2, 3, 3), (1, 2, 3, 3))
    (cat,) = rows(table, OpKind.CONCAT)
    assert cat.mac_elements == 18 + 18 + 36
    (mul,) = rows(table, OpKind.MUL)
    assert mul.other_ops == 18
    # cat reads the split's first half and the mul's output.
    assert set(cat.inputs_from) == {split.index, mul.index}


def test_linear_and_element_ops_are_kept_apart():
    net = nn.Sequential(nn.Flatten(), nn.Linear(8, 10), nn.ReLU())
    table = trace_layer_table(net, (3, 8, 1, 1))
    (fc,) = rows(table, OpKind.LINEAR)
    assert fc.flops_madd == 3 * 8 * 10
    assert fc.params == 90
    assert table.flops_madd == 240
    assert table.other_ops_by_kind() == {"activation": 30}


def test_deployed_view_folds_batch_norm_and_fuses_relu():
    net = nn.Sequential(nn.Conv2d(4, 6, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU())
    table = trace_layer_table(net, (1, 4, 5, 5))
    conv, bn, relu = rows(table)
    assert (conv.kind, bn.kind, relu.kind) == (OpKind.CONV, OpKind.BATCH_NORM, OpKind.ACTIVATION)
    # eager: conv 100 + 150 + 24; bn reads 150, writes 150, reads 4*6 statistics; relu reads and writes 150.
    assert conv.mac_elements == 274
    assert bn.mac_elements == 324
    assert relu.mac_elements == 300
    # deployed: bn and relu disappear into the conv, which gains a 6-element bias.
    assert (bn.fused_into, relu.fused_into) == (0, 0)
    assert (conv.mac_elements_deployed, bn.mac_elements_deployed, relu.mac_elements_deployed) == (280, 0, 0)
    assert table.params == 24 + 12  # conv weights + BN affine
    assert bn.params == 12


def test_relu_after_an_add_is_not_fused():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1, bias=False)

        def forward(self, x):
            return torch.relu(self.conv(x) + x)

    table = trace_layer_table(Residual(), (1, 4, 2, 2))
    relu = rows(table, OpKind.ACTIVATION)[0]
    assert relu.fused_into is None
    assert relu.mac_elements_deployed == relu.mac_elements == 32


def test_unknown_operators_are_reported_not_silently_zero():
    # Not an aten operator (a Python autograd function): no rule can cost it, and it is listed as unknown.
    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    class Odd(nn.Module):
        def forward(self, x):
            return Double.apply(x)

    table = trace_layer_table(Odd(), (1, 4))
    assert dict(table.coverage.unknown) == {"prim::PythonOp.Double": 1}
    assert "1 unknown (not counted: prim::PythonOp.Double x1)" in table.coverage.describe()


def test_names_are_module_paths():
    net = nn.Sequential()
    net.add_module("stem", nn.Conv2d(3, 4, 3, bias=False))
    net.add_module("shuffle", Shuffle(2))
    table = trace_layer_table(net, (1, 3, 6, 6))
    names = [r.name for r in rows(table)]
    assert names == ["stem", "shuffle:view", "shuffle:transpose", "shuffle:contiguous", "shuffle:view#2"]
    assert len(set(names)) == len(names)


def test_bytes_follow_the_dtype():
    conv = nn.Conv2d(2, 2, 1, bias=False).half()
    (row,) = rows(trace_layer_table(conv, (1, 2, 2, 2), dtype=torch.float16))
    assert row.dtype == "float16"
    assert row.mac_bytes == row.mac_elements * 2 == (8 + 8 + 4) * 2


def test_g1_bound_minimal_at_equal_widths():
    # ShuffleNet V2 section 2: for fixed B = hw*c1*c2, MAC >= 2*sqrt(hw*B) + B/hw, with equality at c1 = c2.
    hw = 56 * 56
    mac = {}
    for c1, c2 in ((32, 32), (16, 64), (8, 128)):
        (row,) = rows(trace_layer_table(nn.Conv2d(c1, c2, 1, bias=False), (1, c1, 56, 56)))
        mac[(c1, c2)] = row.mac_elements
        bound = 2 * math.sqrt(hw * row.flops_madd) + row.flops_madd / hw
        assert row.mac_elements >= bound - 1e-6
    assert mac[(32, 32)] == pytest.approx(2 * math.sqrt(hw * hw * 32 * 32) + 32 * 32)
    assert mac[(32, 32)] < mac[(16, 64)] < mac[(8, 128)]


@pytest.mark.parametrize("name", [e.name for e in entries()])
def test_every_zoo_operator_is_understood(name):
    # Counted, zero by definition, or shape bookkeeping: never unknown (the coverage line must read "0 unknown").
    ref = resolve_model(name, overrides={"resolution": max(64, int(get_entry(name).option("resolution").minimum))})
    table = PreparedModel(ref).layer_table
    assert table.coverage.unknown == (), table.coverage.describe()
    assert table.total("params") == table.params  # every parameter is read by some counted operator


def test_g1_micro_network_mac_is_minimal_at_equal_widths():
    # Per 1x1 convolution of g1 (hw = 56*56): MAC = hw(c1 + c2) + c1*c2 >= 2*sqrt(hw*B) + B/hw, equal at c1 = c2.
    hw = 56 * 56
    per_conv = {}
    for ratio in (1, 2, 6, 12):
        convs = [r for r in PreparedModel(resolve_model(f"g1:ratio={ratio}")).layer_table.layers if r.kind is OpKind.CONV]
        assert len(convs) == 20
        first = convs[0]
        bound = 2 * math.sqrt(hw * first.flops_madd) + first.flops_madd / hw
        per_conv[ratio] = first.mac_elements / bound
        if ratio == 1:
            assert first.mac_elements == pytest.approx(bound)  # (128, 128): exactly on the bound
    assert per_conv[1] < per_conv[2] < per_conv[6] < per_conv[12]


def test_fvcore_still_has_the_private_list_the_counter_empties():
    # fvcore skips these operators silently; the counter empties the (private) list so each is costed or reported.
    # If an fvcore upgrade renames it, this test and the counter both fail loudly instead of counting ReLU as free.
    from fvcore.nn.jit_analysis import JitModelAnalysis

    analysis = JitModelAnalysis(nn.ReLU(), (torch.zeros(1, 4),))
    assert isinstance(analysis._ignored_ops, set) and {"aten::relu", "aten::cat"} <= analysis._ignored_ops
    (row,) = trace_layer_table(nn.ReLU(), (1, 4)).layers
    assert row.op == "aten::relu" and row.mac_elements == 8  # read 4, write 4: not free


def test_an_fvcore_without_that_list_is_refused(monkeypatch):
    import fvcore.nn.jit_analysis as jit_analysis

    from shufflebench.errors import SetupError

    class Changed(jit_analysis.JitModelAnalysis):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            del self._ignored_ops

    monkeypatch.setattr(jit_analysis, "JitModelAnalysis", Changed)
    with pytest.raises(SetupError, match="has no JitModelAnalysis._ignored_ops"):
        trace_layer_table(nn.ReLU(), (1, 4))


@pytest.mark.parametrize("dtype, width", [(torch.float16, 2), (torch.float64, 8), (torch.int16, 2),
                                          (torch.uint8, 1), (torch.bfloat16, 2)])
def test_tensors_are_counted_at_their_own_width(dtype, width):
    class Cast(nn.Module):
        def forward(self, x):
            return torch.relu(x.to(dtype))

    rows = trace_layer_table(Cast(), (1, 16)).layers
    relu = next(r for r in rows if r.op == "aten::relu")
    assert relu.mac_bytes == 32 * width  # 16 read + 16 written


def test_a_dtype_of_unknown_width_is_refused_not_guessed():
    from shufflebench.errors import UsageError
    from shufflebench.ops import Tensor

    assert Tensor((4,), "int16").nbytes == 8
    with pytest.raises(UsageError, match="tensor dtype 'float4' has no known width in bytes"):
        Tensor((4,), "float4").nbytes


# --- every operator costed: rules of their own, the generic rule marked estimated, shape arithmetic left out --------


class _Wrap(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _only(table, op):
    (row,) = [r for r in table.layers if r.op == op]
    return row


def test_prelu_reads_its_slopes_as_weights():
    table = trace_layer_table(nn.PReLU(8), (1, 8, 4, 4))
    row = _only(table, "aten::prelu")
    assert row.kind is OpKind.ACTIVATION and row.params == 8 and not row.estimated
    assert row.mac_elements == 128 + 8 + 128  # input, 8 slopes, output
    assert table.coverage.complete


def test_pad_gather_and_resize_move_what_they_touch():
    pad = _only(trace_layer_table(_Wrap(lambda x: torch.nn.functional.pad(x, (1, 1, 1, 1))), (1, 3, 4, 4)),
                "aten::pad")
    assert pad.kind is OpKind.PAD and pad.mac_elements == 48 + 3 * 6 * 6
    index = torch.tensor([0, 2])
    gathered = _only(trace_layer_table(_Wrap(lambda x: x.index_select(1, index)), (1, 3, 4, 4)), "aten::index_select")
    assert gathered.kind is OpKind.GATHER and gathered.mac_elements == 32 + 2 + 32  # one output's data, indices
    resized = trace_layer_table(_Wrap(lambda x: torch.nn.functional.interpolate(x, scale_factor=2)), (1, 3, 4, 4))
    (row,) = [r for r in resized.layers if r.kind is OpKind.RESIZE]
    assert row.mac_elements == 48 + 192 and not row.estimated


def test_an_operator_without_a_rule_is_estimated_and_said_so():
    table = trace_layer_table(_Wrap(lambda x: torch.flip(torch.relu(x), [1])), (1, 3, 4, 4))
    flip = _only(table, "aten::flip")
    assert flip.estimated and flip.mac_elements == 48 + 48  # read every input, write every output
    coverage = table.coverage
    assert dict(coverage.estimated) == {"aten::flip": 1} and coverage.unknown == ()
    assert coverage.estimated_mac_share == pytest.approx(96 * 4 / table.total("mac_bytes"))
    assert "1 estimated (aten::flip x1: 50.0% of the MAC rests on the generic rule" in coverage.describe()


def test_arithmetic_on_sizes_is_not_a_layer():
    # x[:, :, : h - 1]: the trace computes h - 1 on a 0-dim tensor (aten::sub); it moves no data.
    table = trace_layer_table(_Wrap(lambda x: x[:, :, : x.size(2) - 1]), (1, 3, 4, 4))
    assert not [r for r in table.layers if r.op == "aten::sub"]
    assert table.coverage.complete and table.coverage.bookkeeping >= 1


def test_a_channel_split_is_a_view_in_torch_and_a_copy_where_deployed():
    # onnxruntime's Split writes new tensors; torch's chunk does not: eager 0, deployed read + write.
    table = trace_layer_table(_Wrap(lambda x: torch.cat(x.chunk(2, dim=1)[::-1], dim=1)), (1, 4, 2, 2))
    split = _only(table, "aten::chunk")
    assert split.mac_elements == 0 and split.mac_elements_deployed == 16 + 16


def test_silu_runs_as_two_kernels_where_deployed():
    silu = _only(trace_layer_table(nn.SiLU(), (1, 4, 2, 2)), "aten::silu")
    assert silu.mac_elements == 32 and silu.mac_elements_deployed == 16 + 16 + 16 + 16 + 16  # sigmoid, then mul
