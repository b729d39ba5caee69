"""`guidelines`: option parsing, the verdict rule, and one real experiment's structure."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app
from shufflebench.errors import UsageError
from shufflebench.guidelines import EXPERIMENTS, parse_only, parse_widths, verdict
from shufflebench.measure.ratio import Ratio

runner = CliRunner()


def r(low, high):
    return Ratio((low + high) / 2, low, high, 0.95, True)


def test_verdicts_from_confidence_intervals():
    g1 = EXPERIMENTS["g1"]
    assert verdict(g1, {1: r(1.2, 1.3), 2: r(1.05, 1.1)}).result == "holds"
    assert verdict(g1, {1: r(1.2, 1.3), 2: r(0.98, 1.03)}).result == "inconclusive"
    assert verdict(g1, {1: r(1.2, 1.3), 2: r(0.90, 0.95)}).result == "does not hold"
    assert "x1: 1 is 1.25x the speed of 12 (95% CI 1.20-1.30)" in verdict(g1, {1: r(1.2, 1.3)}).detail


def test_option_parsing():
    assert parse_only(None) == ["g1", "g2", "g3", "g4"]
    assert parse_only("G3, g1") == ["g3", "g1"]
    assert parse_widths("1,4") == [1, 4]
    with pytest.raises(UsageError, match="--only 'g5' is not an experiment; allowed: g1, g2, g3, g4"):
        parse_only("g5")
    with pytest.raises(UsageError, match="--widths '3' is not a width of the paper; allowed: 1, 2, 4"):
        parse_widths("1,3")


def test_g2_experiment_on_cpu_has_the_papers_table(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    result = runner.invoke(app, ["guidelines", "--only", "g2", "--widths", "1", "--budget", "0.15", "--warmup", "1",
                                 "--min-runs", "6", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (exp,) = data["experiments"]
    assert data["column"] == "arm"  # a CPU device uses the paper's ARM (single-thread) channel column
    assert [row["value"] for row in exp["rows"]] == [1, 2, 4, 8]
    assert exp["rows"][0]["paper"] == {"gpu": [2451, 1289, 437], "arm": [40.0, 10.2, 2.3]}
    flops = [row["measured"]["1"]["flops_madd"] for row in exp["rows"]]
    assert max(flops) / min(flops) < 1.05  # equal FLOPs across groups, as the paper built it
    # The verdict follows from the speedup it reports (the rule itself is tested above on made-up intervals).
    (speedup,) = exp["verdict"]["speedups"].values()
    low, high = speedup["ci"]
    expected = "holds" if low > 1 else "does not hold" if high < 1 else "inconclusive"
    assert exp["verdict"]["result"] == expected
    assert set(exp["verdict"]["speedups"]) == {"1"}
    # the speedup is warned latency over preferred latency (g=8 over g=1), paired by round
    rows = {row["value"]: row["measured"]["1"] for row in exp["rows"]}
    assert speedup["estimate"] == pytest.approx(rows[8]["median_ms"] / rows[1]["median_ms"])


def test_cli_refuses_bad_widths():
    result = runner.invoke(app, ["guidelines", "--widths", "8"])
    assert result.exit_code == 2 and "--widths '8'" in result.stderr
