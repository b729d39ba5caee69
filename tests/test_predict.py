"""`predict`, and predictions in `profile` and `compare`, from a calibration with hand-picked predictors: real kernels
of real models (onnxruntime's optimized graph on this machine), predicted times checked against hand arithmetic."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from shufflebench.breakdown import exported_nodes
from shufflebench.cli import app
from shufflebench.latency.calibration import ContextFactor, save_calibration, stored_path
from shufflebench.latency.kernels import is_compute
from shufflebench.latency.predictor import executed_kernels, local_nchwc_block, predict_model
from shufflebench.latency.records import GraphRecord
from shufflebench.models import resolve_model
from shufflebench.prepared import PreparedModel
from tests.fixtures.calibration import GRAPH, PEAKS, fake_calibration

runner = CliRunner()
QUICK = ["--budget", "0.2", "--warmup", "1", "--min-runs", "3", "--min-time", "0"]
G1 = "g1:resolution=8"  # 20 1x1 convolutions 128 -> 128 on 8x8, each with batch norm and ReLU


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def calibration_file(tmp_path):
    return save_calibration(fake_calibration(), tmp_path / "cpu.json")


def test_each_convolution_is_predicted_by_its_roofline(calibration_file):
    result = runner.invoke(app, ["predict", G1, "--calibration", str(calibration_file), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "shufflebench.prediction/1" and data["device"] == "cpu"
    convs = [k for k in data["kernels"] if k["kind"].startswith("conv.pointwise")]
    assert len(convs) == 20
    madd, traffic = 64 * 128 * 128, 4 * (128 * 64 * 2 + 128 * 128 + 128)
    for conv in convs:
        assert conv["flops_madd"] == madd and conv["bytes"] == traffic
        # 5 us of fixed cost, the graph's -1 us per kernel, and the larger of 1,048,576 MAdd at half of 50 GMAdd/s
        # (41.94 us) and 131,584 bytes at 10 GB/s (13.16 us)
        assert conv["predicted_us"] == pytest.approx(5.0 - 1.0 + madd / 2.5e10 * 1e6)
        assert conv["bound"] == "compute" and conv["fallback"] is False
        assert any(c.endswith("/Conv") for c in conv["covers"]) and any(c.endswith("/Relu") for c in conv["covers"])
    kernels_us = sum(k["predicted_us"] for k in data["kernels"])
    assert data["predicted_ms"] == pytest.approx(kernels_us / 1000 + data["run_overhead_ms"])
    assert data["run_overhead_ms"] == pytest.approx(GRAPH.run_overhead_us / 1000)
    assert data["theoretical_ms"] == pytest.approx(20 * madd / PEAKS.madd_per_s * 1000)
    assert sum(cause["ms"] for cause in data["causes"].values()) == pytest.approx(data["gap_ms"])
    assert data["causes"]["fragmentation"]["guidelines"] == "G3"
    low, high = data["interval_ms"]
    assert low < data["predicted_ms"] < high
    assert data["graph"] == "exact"


def test_the_table_explains_the_gap_and_the_plot_is_drawn(calibration_file, tmp_path):
    plot = tmp_path / "roofline.png"
    result = runner.invoke(app, ["predict", "v2:resolution=64", "--calibration", str(calibration_file), "--plot",
                                 str(plot), "--top", "5"])
    assert result.exit_code == 0, result.output
    for text in ("predicted latency", "multiply-adds at peak", "the gap by cause", "fragmentation", "G1, G2",
                 "slowest 5 of", "time by bound", "predicted by a pooled fallback"):
        assert text in result.stdout, text
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_a_calibration_from_a_busy_machine_says_so_wherever_it_is_used(tmp_path):
    records = tuple(GraphRecord(f"k/{i}", "k", (), 1, us, 1.0, 100.0) for i, us in enumerate([100.0] * 4 + [150.0] * 4))
    busy = replace(fake_calibration(), records=records)
    assert busy.reference_spread == pytest.approx(0.40)  # quartiles 100 and 150 us around a median of 125
    path = save_calibration(busy, tmp_path / "busy.json")
    assert json.loads(path.read_text())["warnings"] == list(busy.warnings)
    result = runner.invoke(app, ["predict", G1, "--calibration", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert len(warnings) == 1 and "moved 40% between graphs, over 25%" in warnings[0]
    assert "calibrate again on a quiet machine (shufflebench calibrate --device cpu --fresh)" in warnings[0]
    table = runner.invoke(app, ["predict", G1, "--calibration", str(path)])
    assert "warning: the machine was busy during this calibration" in table.stdout
    profiled = runner.invoke(app, ["profile", G1, "--calibration", str(path), *QUICK])
    assert profiled.exit_code == 0 and "warning: prediction: the machine was busy" in profiled.stdout
    calm = replace(busy, records=records[:4] + tuple(replace(r, reference_us=110.0) for r in records[4:]))
    assert calm.reference_spread == pytest.approx(10 / 105) and calm.warnings == ()


def test_predict_refuses_what_it_cannot_use(tmp_path, calibration_file):
    future = tmp_path / "future.json"
    future.write_text(json.dumps(dict(json.loads(calibration_file.read_text()), schema="shufflebench.calibration/9")))
    result = runner.invoke(app, ["predict", G1, "--calibration", str(future)])
    assert result.exit_code == 2
    assert "is a calibration of version 9; this shufflebench reads version 8" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    empty = runner.invoke(app, ["predict", G1, "--device", "cpu"])
    assert empty.exit_code == 2 and "no calibration of device cpu" in empty.stderr
    assert "shufflebench calibrate --device cpu" in empty.stderr
    bad_plot = runner.invoke(app, ["predict", G1, "--calibration", str(calibration_file), "--plot", "x.pdf"])
    assert bad_plot.exit_code == 2 and "must end in .png or .svg" in bad_plot.stderr


def test_a_stored_calibration_is_found_by_device(calibration_file):
    save_calibration(fake_calibration(), stored_path(fake_calibration()))
    result = runner.invoke(app, ["predict", G1, "--device", "cpu", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["calibration"] == fake_calibration().label


def test_profile_shows_the_prediction_and_the_fraction_of_measured_peak(calibration_file):
    result = runner.invoke(app, ["profile", G1, "--calibration", str(calibration_file), "--format", "json", *QUICK])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "shufflebench.profile/2"
    prediction = data["prediction"]
    assert prediction["calibration"] == fake_calibration().label
    assert prediction["measured_over_predicted"] == pytest.approx(data["latency"]["median_ms"]
                                                                  / prediction["predicted_ms"])
    assert data["fraction_of_peak"]["madd"] == pytest.approx(data["achieved_madd_per_s"] / PEAKS.madd_per_s)
    assert data["fraction_of_peak_source"] == f"calibration {fake_calibration().label}"
    table = runner.invoke(app, ["profile", G1, "--calibration", str(calibration_file), *QUICK])
    assert "predicted" in table.stdout and "predicted gap to multiply-adds at peak" in table.stdout
    markdown = runner.invoke(app, ["profile", G1, "--calibration", str(calibration_file), "--format", "md", *QUICK])
    assert "| predicted |" in markdown.stdout


def test_profile_predicts_from_the_store_only_for_the_same_environment():
    save_calibration(fake_calibration(), stored_path(fake_calibration()))
    found = json.loads(runner.invoke(app, ["profile", G1, "--format", "json", *QUICK]).stdout)
    assert found["prediction"] is not None
    other = runner.invoke(app, ["profile", G1, "--threads", "2", "--format", "json", *QUICK])
    data = json.loads(other.stdout)
    assert data["prediction"] is None and data["fraction_of_peak"] is None  # another fingerprint: no calibration


def test_a_stored_calibration_of_an_older_format_leaves_the_measurement_standing():
    stale = dict(fake_calibration().to_dict(), schema="shufflebench.calibration/2")
    path = stored_path(fake_calibration())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stale))
    result = runner.invoke(app, ["profile", G1, "--format", "json", *QUICK])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["prediction"] is None and data["latency"]["median_ms"] > 0
    (warning,) = [w for w in data["warnings"] if w.startswith("no prediction:")]
    assert "is a calibration of version 2; this shufflebench reads version 8: calibrate again" in warning


def test_compare_gives_predicted_speedups(calibration_file):
    models = [G1, "g1:resolution=8,ratio=12"]
    result = runner.invoke(app, ["compare", *models, "--calibration", str(calibration_file), "--format", "json",
                                 *QUICK])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "shufflebench.compare/2"
    first, second = (m["prediction"]["predicted_ms"] for m in data["models"])
    assert data["models"][0]["vs_baseline"]["predicted_speedup"] == pytest.approx(1.0)
    assert data["models"][1]["vs_baseline"]["predicted_speedup"] == pytest.approx(first / second)
    table = runner.invoke(app, ["compare", *models, "--calibration", str(calibration_file), *QUICK])
    assert "predicted ms" in table.stdout and "predicted speedup) from calibration" in table.stdout


def test_the_kernels_of_a_fused_graph_cover_the_exported_nodes():
    model = PreparedModel(resolve_model("tests.fixtures.user_models:stem", input_shape=(1, 3, 224, 224)))
    exported = [node["op_type"] for node in exported_nodes(model.onnx_path) if node["op_type"] != "Identity"]
    assert exported == ["Conv", "BatchNormalization", "Relu"]
    plain, categories, covers = executed_kernels(model, "extended")
    (conv,) = plain
    assert conv.op == "FusedConv" and conv.kind == "conv.stem" and conv.fused == ("relu",)  # 3 input channels
    assert sorted(c.rsplit("/", 1)[-1] for c in covers[0]) == ["BatchNormalization", "Conv", "Relu"]
    assert categories == ["dense conv"]
    assert conv.madd == model.cost.flops_madd == 24 * 112 * 112 * 3 * 9
    block = local_nchwc_block()
    if not block:
        pytest.skip("this machine's onnxruntime does not use the blocked NCHWc layout")
    blocked, categories, covers = executed_kernels(model, "all")
    names = [k.op for k in blocked]
    assert names == ["Conv", "ReorderOutput"]  # the blocked convolution, and the layout conversion it needs
    assert blocked[0].kind == "conv.stem+nchwc" and categories == ["dense conv", "inserted"] and covers[1] == ()
    padded = -(-24 // block) * block
    assert blocked[0].madd == padded * 112 * 112 * 3 * 9  # padded channels are computed too
    prediction = predict_model(model, fake_calibration())
    assert prediction.causes["compute_below_peak"]["padding"] == pytest.approx(
        (padded - 24) * 112 * 112 * 27 / PEAKS.madd_per_s * 1000)


def test_memory_bound_kernels_take_the_context_factor_of_the_network_size():
    flat = fake_calibration()
    sized = replace(flat, fitted=replace(flat.fitted, graph=replace(GRAPH, context={
        "compute": ContextFactor(1.0), "memory": ContextFactor(1.0, slope=2.0, sizes_us=(1.0, 1e9))})))
    model = PreparedModel(resolve_model(G1))
    before, after = predict_model(model, flat), predict_model(model, sized)
    # with factors of 1, a kernel alone is its prediction less the graph's -1 us per kernel; the network's size is
    # their sum (0.95 ms), and the memory group's factor (size / 1 ms) ** 2
    network_us = sum(k.predicted_us + 1.0 for k in before.kernels)
    factor = (network_us / 1000.0) ** 2
    assert 0.8 < factor < 0.95
    memory = [(b, a) for b, a in zip(before.kernels, after.kernels) if not is_compute(b.kernel.kind)]
    assert memory  # the reorders the blocked layout inserts, at least
    for b, a in memory:
        assert a.predicted_us + 1.0 == pytest.approx(factor * (b.predicted_us + 1.0))
    for b, a in zip(before.kernels, after.kernels):
        if is_compute(b.kernel.kind):  # convolutions keep a factor of 1
            assert a.predicted_us == pytest.approx(b.predicted_us)
