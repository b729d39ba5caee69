"""The zoo: every registered network builds and runs, options are checked, counts agree with the papers' figures,
the guideline micro-networks keep FLOPs equal across their variants, and the shared blocks do what they say."""

from __future__ import annotations

import itertools

import pytest
import torch

from shufflebench.cost import final_fc_madd
from shufflebench.models import resolve_model
from shufflebench.prepared import PreparedModel
from torch import nn

from shufflebench.errors import UsageError
from shufflebench.zoo import catalog as registry
from shufflebench.zoo.networks.blocks import ChannelShuffle, ChannelSplit, conv_bn
from shufflebench.zoo.networks.mobilenet import make_divisible
from shufflebench.zoo.networks.shufflenet_v1 import ShuffleUnitV1, shufflenet_v1_channels
from shufflebench.zoo.networks.shufflenet_v2 import ShuffleUnitV2
from shufflebench.zoo.papers import PaperFigure, all_figures, figures_for, load_figures

ENTRIES = registry.entries()
FIGURES = all_figures()


def _build(spec: registry.ModelSpec) -> tuple[nn.Module, tuple[int, ...]]:
    entry = registry.get_entry(spec.name)
    return entry.builder(**spec.options).eval(), entry.input_shape(spec.options, 1)


def _final_fc(model: nn.Module) -> tuple[str, nn.Linear] | None:
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return linears[-1] if linears else None


def _madd_and_params(spec: registry.ModelSpec) -> tuple[int, int, int]:
    """(multiply-adds of convolutions and linear layers, multiply-adds of the final FC alone, parameters incl. BN
    affine) of ``spec`` at its own input shape, batch 1, from the project's counting engine."""
    table = PreparedModel(resolve_model(spec.label)).layer_table
    assert table.coverage.complete, table.coverage.describe()
    return table.flops_madd, final_fc_madd(table), table.params


def _small(entry: registry.ModelEntry) -> registry.ModelSpec:
    """The entry at its defaults, but at 64 pixels (or its minimum, if larger) to keep the forward pass cheap."""
    minimum = entry.option("resolution").minimum or 1
    return registry.resolve_spec(entry.name, {"resolution": max(64, int(minimum))})


# --- every registered network -----------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_builds_and_runs_at_defaults(entry: registry.ModelEntry) -> None:
    spec = _small(entry)
    model, shape = _build(spec)
    assert shape[0] == 1 and len(shape) == 4 and shape[2] == shape[3] == spec.options["resolution"]
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == shape[1]
    with torch.no_grad():
        out = model(torch.randn(shape))
    fc = _final_fc(model)
    if fc is None:  # the guideline micro-networks: feature map in, same-shaped feature map out
        assert entry.family == "micro"
        assert out.shape == shape
    else:
        assert out.shape == (1, 1000)
        name, linear = fc
        assert name == "fc" or name.startswith("classifier."), name
        # The FC is the last module holding parameters, so "leave the FC out" is well defined.
        last_with_params = [n for n, m in model.named_modules() if list(m.parameters(recurse=False))][-1]
        assert last_with_params == name
        assert linear.out_features == 1000


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_model_has_a_resolution_option_with_a_minimum(entry: registry.ModelEntry) -> None:
    option = entry.option("resolution")
    assert option.type is int and option.minimum is not None and option.minimum >= 1
    with pytest.raises(UsageError, match="resolution"):
        registry.resolve_spec(entry.name, {"resolution": int(option.minimum) - 1})
    assert entry.input_shape(entry.defaults, 3)[0] == 3


@pytest.mark.parametrize("groups,width", list(itertools.product((1, 2, 3, 4, 8), (0.25, 0.5, 1.0, 1.5, 2.0))))
def test_every_shufflenet_v1_pair_builds_and_runs(groups: int, width: float) -> None:
    spec = registry.resolve_spec(f"v1:groups={groups},width={width},resolution=32")
    model, shape = _build(spec)
    with torch.no_grad():
        assert model(torch.randn(shape)).shape == (1, 1000)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            assert module.in_channels % module.groups == 0 and module.out_channels % module.groups == 0


def test_shufflenet_v1_1x_channels_are_table_1() -> None:
    table_1 = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536)}
    for groups, stages in table_1.items():
        assert shufflenet_v1_channels(groups, 1.0) == (24, stages)
    model, _ = _build(registry.resolve_spec("v1:groups=8"))
    assert model.stage2[0].pw1.conv.groups == 1 and model.stage2[0].pw1.conv.in_channels == 24  # not grouped
    assert model.stage2[1].pw1.conv.groups == 8
    assert model.stage2[1].pw1.conv.out_channels == 384 // 4  # bottleneck = 1/4 of the unit's output
    assert model.stage2[0].pw2.conv.out_channels == 384 - 24  # concat with the avg-pooled shortcut
    # The authors' released 0.5x..2x tables for g=3 and g=8 (megvii ShuffleNet-Series).
    assert shufflenet_v1_channels(3, 0.5) == (12, (120, 240, 480))
    assert shufflenet_v1_channels(3, 1.5) == (24, (360, 720, 1440))
    assert shufflenet_v1_channels(8, 0.5) == (16, (192, 384, 768))
    assert shufflenet_v1_channels(8, 2.0) == (48, (768, 1536, 3072))


@pytest.mark.parametrize(
    "text,overrides,shown",
    [
        ("v1:groups=5", None, "groups=5"),
        ("v1:width=3", None, "width=3"),
        ("v2", {"width": 0.75}, "width=0.75"),
        ("mbv1", {"width": 1.4}, "width=1.4"),
        ("mbv2:resolution=16", None, "resolution=16"),
        ("alexnet:resolution=62", None, "resolution=62"),
        ("g1:ratio=3", None, "ratio=3"),
        ("g2", {"groups": 3}, "groups=3"),
        ("g3:structure=3s", None, "structure=3s"),
        ("g4:scale=3", None, "scale=3"),
        ("g4:base=npu", None, "base=npu"),
    ],
)
def test_invalid_options_name_the_value(text: str, overrides: dict | None, shown: str) -> None:
    with pytest.raises(UsageError, match=shown):
        registry.resolve_spec(text, overrides)


def test_builders_check_their_own_arguments() -> None:
    entry = registry.get_entry("shufflenet_v1")
    with pytest.raises(UsageError, match="groups=5.*allowed: 1, 2, 3, 4, 8"):
        entry.builder(groups=5)
    with pytest.raises(UsageError, match="groups=4"):
        conv_bn(6, 8, kernel_size=1, groups=4)


# --- the papers' figures ----------------------------------------------------------------------------------------


def _figure_id(figure: PaperFigure) -> str:
    return figure.model + ":" + ",".join(f"{k}={v}" for k, v in figure.variant)


@pytest.mark.parametrize("figure", FIGURES, ids=[_figure_id(f) for f in FIGURES])
def test_counts_agree_with_paper(figure: PaperFigure) -> None:
    madd, fc_madd, params = _madd_and_params(figure.spec)
    counted = madd - fc_madd if figure.excludes_fc else madd
    assert abs(counted - figure.flops_madd) <= figure.flops_allowance, (
        f"{figure.spec.label}: {counted / 1e6:.2f}M multiply-adds, paper {figure.flops_madd / 1e6:g}M "
        f"({figure.source})"
    )
    if figure.params is not None:
        assert abs(params - figure.params) <= figure.params_allowance, (
            f"{figure.spec.label}: {params / 1e6:.3f}M params, paper {figure.params / 1e6:g}M ({figure.source})"
        )


def test_figures_file_names_canonical_models_and_known_options() -> None:
    for figure in FIGURES:
        assert figure.spec.name == figure.model  # an alias would never match figures_for
    labels = [f.spec.label for f in FIGURES]
    assert len(labels) == len(set(labels)), "one figure per network"
    (v2,) = figures_for(registry.resolve_spec("v2"))
    assert v2.flops_madd == 146e6 and v2.params == 2.3e6
    assert figures_for(registry.resolve_spec("v2:resolution=160")) == []


def test_params_allowance_is_half_a_printed_unit_or_the_tolerance() -> None:
    figure = PaperFigure("m", (), 1e6, 0.015, False, "s", params=1.4e6)
    assert figure.params_allowance == pytest.approx(0.05e6)  # "1.4M": half of 0.1M beats 1.5% of 1.4M
    figure = PaperFigure("m", (), 1e6, 0.01, False, "s", params=25557032)
    assert figure.params_allowance == pytest.approx(255570.32)  # an exact count: the tolerance rules


def test_figures_file_rejects_unknown_keys(tmp_path) -> None:
    path = tmp_path / "papers.toml"
    path.write_text(
        '[[figure]]\nmodel = "shufflenet_v2"\nvariant = {}\nflops_madd = 1e6\ntolerance = 0.01\n'
        'excludes_fc = false\nsource = "x"\nflops = 3\n'
    )
    with pytest.raises(ValueError, match="unknown key 'flops'"):
        load_figures(path)
    path.write_text('[[figure]]\nmodel = "shufflenet_v2"\nvariant = {}\n')
    with pytest.raises(ValueError, match="missing key 'flops_madd'"):
        load_figures(path)
    path.write_text('[figures]\n')
    with pytest.raises(ValueError, match="unknown top-level key 'figures'"):
        load_figures(path)


# --- the guideline micro-networks -------------------------------------------------------------------------------

MICRO_VARIANTS = {
    "g1": ("ratio", (1, 2, 6, 12)),
    "g2": ("groups", (1, 2, 4, 8)),
    "g3": ("structure", ("1", "2s", "4s", "2p", "4p")),
    "g4": ("relu,shortcut", ((True, True), (True, False), (False, True), (False, False))),
}
# Where the paper's own channel counts are not FLOP-equal (or, for G2 ARM g=8 x1, not divisible by g), the deviation
# from the first variant is known exactly: (model, base, variant) -> (deviation, scales it applies to). Everything
# else must be within 2%.
PAPER_DEVIATIONS = {
    ("g1", "gpu", 12): (36 * 432 / 128**2 - 1, (1, 2, 4)),  # -5.1%
    ("g1", "arm", 2): (22 * 44 / 32**2 - 1, (1, 2, 4)),  # -5.5%
    ("g1", "arm", 12): (9 * 108 / 32**2 - 1, (1, 2, 4)),  # -5.1%
    ("g2", "arm", 8): (184**2 / 8 / 64**2 - 1, (1,)),  # +3.3%: 180 rounded to 184; at x2, 360 is exact
}


def _micro_spec(model: str, base: str, scale: int, value) -> registry.ModelSpec:
    keys, _ = MICRO_VARIANTS[model]
    values = value if isinstance(value, tuple) else (value,)
    options = dict(zip(keys.split(","), values), base=base, scale=scale, resolution=4)
    return registry.resolve_spec(model, options)


@pytest.mark.parametrize("model", sorted(MICRO_VARIANTS))
@pytest.mark.parametrize("base", ("gpu", "arm"))
@pytest.mark.parametrize("scale", (1, 2))
def test_micro_variants_have_equal_flops(model: str, base: str, scale: int) -> None:
    # 1x1 and padded 3x3 convs at stride 1: FLOPs scale with resolution^2, so 4x4 compares like 56x56.
    _, values = MICRO_VARIANTS[model]
    counts = {value: _madd_and_params(_micro_spec(model, base, scale, value))[0] for value in values}
    reference = counts[values[0]]
    for value, count in counts.items():
        deviation = count / reference - 1
        known, scales = PAPER_DEVIATIONS.get((model, base, value), (None, ()))
        if scale in scales:
            assert deviation == pytest.approx(known, abs=1e-9), value
        else:
            assert abs(deviation) <= 0.02, (value, deviation)


def test_micro_channels_are_the_papers() -> None:
    table_1 = {  # ShuffleNet V2 Table 1, (c1, c2) for x1
        "gpu": {1: (128, 128), 2: (90, 180), 6: (52, 312), 12: (36, 432)},
        "arm": {1: (32, 32), 2: (22, 44), 6: (13, 78), 12: (9, 108)},
    }
    for base, rows in table_1.items():
        for ratio, (c1, c2) in rows.items():
            model, _ = _build(registry.resolve_spec("g1", {"ratio": ratio, "base": base}))
            assert len(model.blocks) == 10
            conv = model.blocks[0].conv1.conv
            assert (conv.in_channels, conv.out_channels) == (c1, c2)
    model, _ = _build(registry.resolve_spec("g1:ratio=2,scale=4"))
    assert model.blocks[9].conv2.conv.in_channels == 720 and model.blocks[9].conv2.conv.out_channels == 360

    table_2 = {"gpu": {1: 128, 2: 180, 4: 256, 8: 360}, "arm": {1: 64, 2: 90, 4: 128, 8: 184}}  # 180 -> 184
    for base, rows in table_2.items():
        for groups, c in rows.items():
            model, _ = _build(registry.resolve_spec("g2", {"groups": groups, "base": base}))
            conv = model.blocks[0].conv
            assert (conv.in_channels, conv.out_channels, conv.groups) == (c, c, groups)

    for base, c in {"gpu": 128, "arm": 64}.items():  # Table 3, 1-fragment
        model, shape = _build(registry.resolve_spec("g3", {"base": base}))
        assert shape[1] == c and len(model.blocks[0].fragments) == 1
    model, _ = _build(registry.resolve_spec("g3:structure=4p"))
    assert len(model.blocks[0].fragments) == 4 and model.blocks[0].fragments[0].conv.in_channels == 64

    for base in ("gpu", "arm"):  # Table 4: c = 32 on both
        model, shape = _build(registry.resolve_spec("g4", {"base": base}))
        assert model.blocks[0].conv2.conv.in_channels == 32 and shape[1] == 4 * 32


def test_g4_switches_remove_relu_and_shortcut() -> None:
    model, shape = _build(registry.resolve_spec("g4:relu=false,shortcut=false,resolution=4"))
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    # Without ReLU and shortcut the whole net is affine: f(2x) - f(x) = f(x) - f(0).
    x = torch.randn(shape)
    with torch.no_grad():
        zero = model(torch.zeros(shape))
        assert torch.allclose(model(2 * x) - model(x), model(x) - zero, atol=1e-4)
    model, _ = _build(registry.resolve_spec("g4"))
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 30


# --- blocks, worked by hand -------------------------------------------------------------------------------------


def test_channel_shuffle_order() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert ChannelShuffle(3)(x).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert ChannelShuffle(1)(x).flatten().tolist() == [0, 1, 2, 3, 4, 5]


def test_channel_shuffle_traces_a_transpose_copy() -> None:
    graph = torch.jit.trace(ChannelShuffle(2), torch.zeros(1, 4, 2, 2)).graph
    kinds = {node.kind() for node in graph.nodes()}
    assert {"aten::transpose", "aten::contiguous"} <= kinds


def test_channel_split_halves() -> None:
    first, second = ChannelSplit(2)(torch.arange(6.0).view(1, 6, 1, 1))
    assert first.flatten().tolist() == [0, 1, 2] and second.flatten().tolist() == [3, 4, 5]


def test_shufflenet_v2_unit_passes_half_through() -> None:
    # stride 1: out = shuffle(cat(x[:c/2], branch2(x[c/2:])), 2), so even output channels are the input's first half.
    unit = ShuffleUnitV2(8, 8, stride=1).eval()
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        out = unit(x)
    assert torch.equal(out[:, 0::2], x[:, :4])
    down = ShuffleUnitV2(8, 16, stride=2).eval()
    assert down(x).shape == (1, 16, 3, 3)


def test_shufflenet_v1_unit_cost_by_hand() -> None:
    # Stage 2's first unit at 1x, g=3, on an 8x8 input: bottleneck 240/4 = 60, branch output 240 - 24 = 216.
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import conv_flop_jit

    unit = ShuffleUnitV1(24, 240, groups=3, stride=2, grouped_pw1=False).eval()
    x = torch.randn(1, 24, 8, 8)
    assert unit(x).shape == (1, 240, 4, 4)
    analysis = FlopCountAnalysis(unit, x)
    analysis.clear_op_handles()
    analysis.set_op_handle("aten::_convolution", conv_flop_jit)
    analysis.unsupported_ops_warnings(False)
    pw1 = 8 * 8 * 24 * 60  # dense 1x1 at 8x8
    dw = 4 * 4 * 60 * 9  # 3x3 depthwise, stride 2
    pw2 = 4 * 4 * (60 // 3) * 216  # 1x1 with 3 groups: each output sees 20 inputs
    assert analysis.total() == pw1 + dw + pw2 == 169_920
    assert sum(p.numel() for p in unit.parameters()) == 24 * 60 + 60 * 9 + 20 * 216 + 2 * (60 + 60 + 216)


def test_mobilenet_v2_make_divisible() -> None:
    assert make_divisible(32 * 0.35) == 16  # 8 would lose more than 10%
    assert make_divisible(24 * 0.35) == 8
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(160 * 1.3) == 208
    model, _ = _build(registry.resolve_spec("mbv2:width=0.5"))
    assert model.conv_last.conv.out_channels == 1280  # scaled only above 1.0
