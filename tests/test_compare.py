"""`compare`: speedup arithmetic on hand-made measurements, the published Table 8 beside, the CLI, the plots."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app
from shufflebench.compare import Comparison, compare_results
from shufflebench.cost import CostSummary
from shufflebench.devices import resolve_device
from shufflebench.measure.sampling import Samples, SamplingPolicy
from shufflebench.measure.stats import Measurement
from shufflebench.models import resolve_model
from shufflebench.profile import ProfileResult
from shufflebench.report.compare import compare_markdown, plot_compare, render_compare

runner = CliRunner()
QUICK = ["--budget", "0.2", "--warmup", "1", "--min-runs", "6"]


def fake(label: str, madd: int, mac: int, latency_s: float) -> ProfileResult:
    """A finished measurement with constant samples (so ratios are exact)."""
    samples = Samples((latency_s,) * 30, (latency_s,), "precision", SamplingPolicy(), 1.0)
    cost = CostSummary(madd, 1000, {}, {"eager": mac, "deployed": mac}, {"eager": mac * 4, "deployed": mac * 4})
    env = {"machine": "x86_64", "cpu_model": "test", "versions": {}, "warnings": []}
    return ProfileResult(resolve_model(label).identity, resolve_device("cpu"), cost, Measurement.from_samples(samples),
                         env, {}, False)


def test_speedups_against_the_baseline_by_hand():
    comparison = compare_results([
        fake("shufflenet_v1:width=0.5", 38_000_000, 1_000, 0.002),
        fake("shufflenet_v1", 140_000_000, 2_000, 0.004),
        fake("alexnet", 720_000_000, 8_000, 0.020),
    ], baseline=2)
    data = comparison.to_dict()
    assert Comparison.from_dict(data).to_dict() == data  # the JSON edge holds the whole result
    half, one, alex = data["models"]
    assert data["baseline"] == "alexnet:resolution=224"
    assert half["vs_baseline"]["theoretical_speedup"] == pytest.approx(720 / 38)
    assert half["vs_baseline"]["mac_ratio"] == pytest.approx(8)
    assert half["vs_baseline"]["actual_speedup"]["estimate"] == pytest.approx(10.0)
    assert half["vs_baseline"]["actual_speedup"]["ci"] == pytest.approx([10.0, 10.0])
    assert half["vs_baseline"]["efficiency"] == pytest.approx(10.0 / (720 / 38))
    assert one["vs_baseline"]["actual_speedup"]["estimate"] == pytest.approx(5.0)
    assert alex["vs_baseline"]["actual_speedup"]["estimate"] == pytest.approx(1.0)
    # the paper's Table 8 beside: 184 ms / 15.2 ms on a Snapdragon 820
    assert half["paper"]["latency_ms"] == 15.2
    assert half["paper"]["speedup_vs_baseline"] == pytest.approx(184.0 / 15.2)
    assert "Table 8" in half["paper"]["source"]
    md = compare_markdown(comparison)
    assert "| shufflenet_v1:width=0.5 | 38.0M |" in md and "10.00x" in md and "15.2 ms (12.1x)" in md


def test_table_and_plot(tmp_path):
    data = compare_results([fake("g1", 10, 10, 0.001), fake("g1:ratio=12", 10, 20, 0.002)])
    from rich.console import Console
    import io

    buffer = io.StringIO()
    Console(file=buffer, width=100, color_system=None).print(render_compare(data))
    assert "g1:ratio=12" in buffer.getvalue() and "0.50x" in buffer.getvalue()
    png = plot_compare(data, tmp_path / "plots" / "speed.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plot_compare(data, tmp_path / "speed.svg")
    assert b"<svg" in svg.read_bytes()[:400]


def test_cli_compare_interleaves_and_adds_the_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cmp.json"
    result = runner.invoke(app, ["compare", "g1:resolution=8", "g1:resolution=8,ratio=12", "--baseline",
                                 "g1:resolution=8,ratio=2", "--format", "json", "--output", str(out), *QUICK])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [m["short_label"] for m in data["models"]] == ["g1:resolution=8", "g1:ratio=12,resolution=8",
                                                          "g1:ratio=2,resolution=8"]
    assert data["baseline"] == "g1:ratio=2,scale=1,base=gpu,resolution=8"
    runs = {m["latency"]["runs"] for m in data["models"]}
    assert len(runs) == 1  # interleaved: every model got the same number of rounds
    assert json.loads(out.read_text())["schema"] == "shufflebench.compare/3"


@pytest.mark.parametrize("args, message", [
    (["--plot", "x.jpg"], "--plot 'x.jpg': the file must end in .png or .svg"),
    (["--baseline", "nope"], "unknown model 'nope'"),
    (["--device", "gtx-1080ti"], "reference-only"),
])
def test_cli_compare_bad_input(args, message):
    result = runner.invoke(app, ["compare", "g1:resolution=8", *args, *QUICK])
    assert result.exit_code == 2
    assert message in result.stderr


def test_plot_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    data = compare_results([fake("g1", 10, 10, 0.001)])
    from shufflebench.errors import SetupError

    with pytest.raises(SetupError, match=r"pip install 'shufflebench\[plot\]'"):
        plot_compare(data, tmp_path / "x.png")
