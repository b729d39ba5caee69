"""Guideline metrics: hand-worked values and the sanity checks the ShuffleNet V2 paper implies."""

from __future__ import annotations

import pytest
from torch import nn

from shufflebench.check import (
    Fragmentation,
    Thresholds,
    check,
    elementwise_share,
    fragmentation,
    g1_metrics,
    g2_overhead,
    g3_finding,
    load_thresholds,
)
from shufflebench.errors import UsageError
from shufflebench.models import resolve_model
from shufflebench.prepared import PreparedModel
from shufflebench.torch_table import trace_layer_table


def table_of(arg: str):
    return PreparedModel(resolve_model(arg)).layer_table


def test_g1_saving_by_hand():
    # c1 = 16, c2 = 64 on 8x8: MAC = 64*16 + 64*64 + 16*64 = 6144; equal width c = 32: 64*64 + 1024 = 5120.
    (row,) = trace_layer_table(nn.Conv2d(16, 64, 1, bias=False), (1, 16, 8, 8)).layers
    ratio, saving = g1_metrics(row)
    assert ratio == 4
    assert saving == pytest.approx(1 - 5120 / 6144)


def test_g2_overhead_follows_eq2():
    # c1 = 64 in, hw = 14*14, g = 4, c2 = 128: B = hw*c1*c2/g. Eq. 2: MAC = hw*c1 + B*g/c1 + B/hw.
    hw, c1, c2, g = 196, 64, 128, 4
    (row,) = trace_layer_table(nn.Conv2d(c1, c2, 1, groups=g, bias=False), (1, c1, 14, 14)).layers
    b = hw * c1 * c2 / g
    expected = (hw * c1 + b * g / c1 + b / hw) / (hw * c1 + b / c1 + b / hw) - 1
    assert g2_overhead(row) == pytest.approx(expected)
    # and the layer's own MAC is Eq. 2's value exactly
    assert row.mac_elements == hw * c1 + b * g / c1 + b / hw


def test_g2_mac_grows_with_groups_at_equal_flops():
    macs = []
    for g, c in ((1, 64), (2, 90), (4, 128), (8, 184)):  # c*c/g about equal
        (row,) = trace_layer_table(nn.Conv2d(c, c, 1, groups=g, bias=False), (1, c, 28, 28)).layers
        macs.append(row.mac_elements)
    assert macs == sorted(macs)


def test_shufflenet_v2_units_follow_g1():
    findings = [f for f in check(table_of("v2")) if f.guideline == "G1"]
    assert findings, "ShuffleNet V2 has 1x1 convolutions to check"
    assert not [f for f in findings if f.above and f.where.startswith("stage")]


def test_shufflenet_v1_g8_breaks_g2():
    above = [f for f in check(table_of("v1:groups=8")) if f.guideline == "G2" and f.above]
    assert len(above) >= 10
    assert all("groups=8" in f.message for f in above)


def test_g3_parallel_fragments_score_higher_than_one_fragment():
    one = fragmentation(table_of("g3:structure=1"))
    four_parallel = fragmentation(table_of("g3:structure=4p"))
    four_series = fragmentation(table_of("g3:structure=4s"))
    assert max(f.branches for f in one) == 1
    assert max(f.branches for f in four_parallel) == 4
    assert max(f.fragments for f in four_parallel) > max(f.fragments for f in one)
    assert max(f.critical_path for f in four_series) > max(f.critical_path for f in four_parallel)


def test_mobilenet_v2_spends_more_mac_on_elementwise_than_v1():
    v1, v2 = table_of("mbv1"), table_of("mbv2")
    assert elementwise_share(v2) > elementwise_share(v1)
    assert elementwise_share(v1) == 0  # every BN and ReLU of MobileNet V1 folds into its convolution


def test_g4_finding_for_g4_micro_network_with_relu_and_shortcut():
    with_both = elementwise_share(table_of("g4:relu=true,shortcut=true"))
    without = elementwise_share(table_of("g4:relu=false,shortcut=false"))
    assert with_both > without


def test_thresholds_from_pyproject(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.shufflebench]\ng3_max_branches = 4\n")
    monkeypatch.chdir(tmp_path)
    assert load_thresholds().g3_max_branches == 4
    (tmp_path / "nowhere").mkdir()
    monkeypatch.chdir(tmp_path / "nowhere")
    assert load_thresholds() == Thresholds()


@pytest.mark.parametrize("text, message", [
    ("g1_min_mac_saving = -1\n", "must be a positive number"),
    ("g3_max_branches = 2.5\n", "must be a whole number"),
    ("g1 = [\n", "not valid TOML"),
])
def test_bad_thresholds_are_refused(tmp_path, text, message):
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_thresholds(config)


def test_a_g3_finding_carries_the_metric_that_crossed_its_limit():
    # 7 fragments (limit 6) set the block off while its 2 parallel branches sit exactly at their limit of 2:
    # the row must say fragments 7 / limit 6, never "2 / limit 2 / above".
    fragments = g3_finding(Fragmentation("stage2.0", fragments=7, critical_path=9, branches=2), Thresholds())
    assert (fragments.metric, fragments.value, fragments.threshold, fragments.above) == ("fragments", 7, 6, True)
    branches = g3_finding(Fragmentation("stage2.0", fragments=4, critical_path=3, branches=3), Thresholds())
    assert (branches.metric, branches.value, branches.threshold, branches.above) == ("branches", 3, 2, True)
    calm = g3_finding(Fragmentation("stage2.0", fragments=3, critical_path=3, branches=2), Thresholds())
    assert (calm.metric, calm.value, calm.threshold, calm.above) == ("branches", 2, 2, False)  # 2/2 is nearer


def test_every_guideline_is_above_only_strictly_past_its_threshold():
    (row,) = trace_layer_table(nn.Conv2d(16, 64, 1, bias=False), (1, 16, 8, 8)).layers
    saving = g1_metrics(row)[1]
    table = trace_layer_table(nn.Conv2d(16, 64, 1, bias=False), (1, 16, 8, 8))
    (g1,) = [f for f in check(table, Thresholds(g1_min_mac_saving=saving)) if f.guideline == "G1"]
    assert g1.metric == "mac_saving" and g1.value == g1.threshold and not g1.above
    (g4,) = [f for f in check(table, Thresholds(g4_max_elementwise_share=1.0)) if f.guideline == "G4"]
    assert (g4.metric, g4.value, g4.above) == ("elementwise_share", 0.0, False)


class _Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = (nn.Conv2d(c, c, 1) for _ in range(3))

    def forward(self, x):
        return x + self.conv3(self.conv2(self.conv1(x)))


def test_blocks_come_from_the_graph_whatever_the_module_names():
    # Another zoo's naming: four residual units under one stage, no unit numbers. By names alone the stage is one
    # block of 12 fragments (flagged); by the graph each unit is its own block of 3 in series (not flagged).
    stage = nn.Sequential()
    for name in ("unitA", "unitB", "unitC", "unitD"):
        stage.add_module(name, _Residual(8))
    net = nn.Sequential()
    net.add_module("stage2", stage)
    table = trace_layer_table(net, (1, 8, 4, 4))
    frags = fragmentation(table)
    assert [(f.block, f.fragments, f.branches) for f in frags] == [
        (f"stage2.{unit}", 3, 1) for unit in ("unitA", "unitB", "unitC", "unitD")]
    assert not [f for f in check(table) if f.guideline == "G3" and f.above]


def test_fragments_in_series_without_a_graph_boundary_stay_one_block():
    # g3's 4-series block is a plain chain: its module path (blocks.N) holds its four fragments together.
    frags = fragmentation(table_of("g3:structure=4s"))
    assert len(frags) == 10 and {(f.fragments, f.branches) for f in frags} == {(4, 1)}
    parallel = fragmentation(table_of("g3:structure=4p"))
    assert {(f.fragments, f.branches) for f in parallel} == {(4, 4)}
