"""`calibrate` for real on a tiny design: through the local runner, resumed after an interruption, from the command
line, on emulated aarch64 and over SSH. Timings are never asserted, only what a calibration is made of."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app
from shufflebench.devices import resolve_device
from shufflebench.latency import calibrate as calibrate_module
from shufflebench.latency.calibrate import calibrate, partial_path
from shufflebench.latency.calibration import load_calibration, stored_path
from shufflebench.latency.design import (DESIGNS, DRAWS, LAYOUT_PROBE, Case, Design, build_graph, full_design,
                                         with_networks)
from shufflebench.latency.predictor import local_nchwc_block, predict_model
from shufflebench.measure.sampling import SamplingPolicy
from shufflebench.models import resolve_model
from shufflebench.prepared import PreparedModel

POLICY = SamplingPolicy(warmup_runs=1, min_runs=3, budget_s=0.05, min_time_s=0.0)
CONV = {"c_in": 32, "c_out": 64, "size": 14, "kernel": 1, "stride": 1, "groups": 1, "act": "relu", "residual": False}
TINY = Design("tiny", (
    LAYOUT_PROBE,
    Case("peak/matmul", "matmul", {"size": 128}, "peak"),
    Case("peak/bandwidth", "elementwise", {"channels": 8, "size": 64, "op": "Add"}, "peak"),
    Case("conv.pointwise/0", "conv", CONV),
    Case("conv.depthwise/0", "conv", dict(CONV, c_out=32, kernel=3, groups=32, residual=False)),
    Case("chain/16", "chain", {"length": 16, "channels": 8, "size": 4}, "chain"),
    Case("model/mobilenet", "model", {"model": "searchspace:family=mobilenet,seed=1000000,resolution=32"},
         "model/mobilenet"),
), profile_runs=5)
QUICK = ["--budget", "0.05", "--warmup", "1", "--min-runs", "3"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))


def test_a_calibration_measures_every_graph_and_is_stored():
    device = resolve_device("cpu")
    calibration = calibrate(device, TINY, POLICY)
    assert [r.case for r in calibration.records] == [c.name for c in TINY.cases]
    assert all(s.ratio > 0 for r in calibration.records for s in r.kernels)
    assert all(r.reference_kernels >= 1 and r.e2e_ratio > 0 for r in calibration.records)
    network = calibration.records[-1]
    assert len(network.kernels) > 10  # the whole network's kernels, the reference branch's left out
    assert calibration.layout["nchwc_block"] == local_nchwc_block()
    assert calibration.peaks.madd_per_s > 0 and calibration.peaks.memory_bandwidth_bytes_per_s > 0
    assert set(calibration.fitted.pooled) == {"compute", "memory"} and calibration.emulated is False
    assert calibration.path == stored_path(calibration)
    assert load_calibration(calibration.path).to_dict() == calibration.to_dict()
    assert not partial_path(device, TINY).exists()
    prediction = predict_model(PreparedModel(resolve_model("g1:resolution=8")), calibration)
    assert prediction.predicted_ms > 0 and prediction.graph == "exact"


def test_an_interrupted_calibration_resumes_where_it_stopped(monkeypatch):
    monkeypatch.setattr(calibrate_module, "BATCH", 3)
    device = resolve_device("cpu")
    design = Design("tiny", TINY.cases[:6], profile_runs=3)
    calls = []
    real_runner_for = calibrate_module.runner_for

    def counting_runner_for(profile):
        runner = real_runner_for(profile)
        measure = runner.measure

        def interrupted(models, policy, **options):
            calls.append([m.label for m in models])
            if len(calls) == 2:
                raise KeyboardInterrupt
            return measure(models, policy, **options)

        runner.measure = interrupted  # type: ignore[method-assign]
        return runner

    monkeypatch.setattr(calibrate_module, "runner_for", counting_runner_for)
    with pytest.raises(KeyboardInterrupt):
        calibrate(device, design, POLICY)
    saved = json.loads(partial_path(device, design).read_text())
    assert [r["case"] for r in saved["records"]] == [c.name for c in design.cases[:3]]
    messages: list[str] = []
    calibration = calibrate(device, design, POLICY, status=messages.append)
    assert "resuming: 3 of 6 graphs already measured" in messages
    assert calls[2] == [c.name for c in design.cases[3:]] + ["reference"]  # only what was missing
    assert [r.case for r in calibration.records] == [c.name for c in design.cases]
    assert not partial_path(device, design).exists()


def test_calibrate_from_the_command_line(monkeypatch, tmp_path):
    monkeypatch.setitem(DESIGNS, "quick", lambda: Design("tiny", TINY.cases[:5], profile_runs=3))
    out = tmp_path / "cpu-calibration.json"
    result = CliRunner().invoke(app, ["calibrate", "--quick", "--output", str(out), *QUICK])
    assert result.exit_code == 0, result.output
    for text in ("calibration of cpu: 5 graphs (tiny design)", "peak", "per run", "(compute)", "stored as"):
        assert text in result.stdout, text
    assert json.loads(out.read_text())["schema"] == "shufflebench.calibration/8"
    predicted = CliRunner().invoke(app, ["predict", "g1:resolution=8", "--device", "cpu", "--format", "json"])
    assert predicted.exit_code == 0, predicted.output
    refused = CliRunner().invoke(app, ["calibrate", "--device", "cpu-torch", *QUICK])
    assert refused.exit_code == 2 and "calibrate uses onnxruntime's profiler" in refused.stderr


def test_calibrating_with_networks_of_ones_own(monkeypatch, tmp_path):
    monkeypatch.setitem(DESIGNS, "quick", lambda: Design("tiny", TINY.cases[:5], profile_runs=3))
    out = tmp_path / "cpu-calibration.json"
    result = CliRunner().invoke(app, ["calibrate", "--quick", "--output", str(out), "--network", "g2:resolution=8",
                                      "--network", "g3:structure=2p,resolution=8", *QUICK])
    assert result.exit_code == 0, result.output
    assert "calibration of cpu: 7 graphs (tiny design)" in result.stdout
    records = {r["case"]: r for r in json.loads(out.read_text())["records"]}
    assert records["model/own-0"]["group"] == "model/own" and len(records["model/own-0"]["kernels"]) >= 10
    assert records["model/own-1"]["group"] == "model/own"
    assert with_networks(TINY, ["g2"]).digest != TINY.digest and with_networks(TINY, []) == TINY


def test_the_designs_are_valid_onnx_and_fixed(tmp_path):
    import onnx

    design = full_design()
    assert len(design.cases) == 555 and design.digest == full_design().digest
    assert len({case.name for case in design.cases}) == len(design.cases)
    counts = {kind: sum(case.name.startswith(f"{kind}/") for case in design.cases) for kind in DRAWS}
    assert counts["conv.grouped"] == 100 and counts["conv.spatial"] == 60 and counts["elementwise"] == 50
    # each kind draws from its own seed: more graphs of one kind leave the others' shapes as they were
    fewer = {**DRAWS, "conv.grouped": (DRAWS["conv.grouped"][0], 10, 2)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("shufflebench.latency.design.DRAWS", fewer)
        other = full_design()
    kept = [c for c in other.cases if not c.name.startswith("conv.grouped/")]
    assert kept == [c for c in design.cases if not c.name.startswith("conv.grouped/")]
    seen: set[str] = set()
    for case in design.cases:
        if case.builder in seen or case.builder == "model":
            continue
        seen.add(case.builder)
        model = onnx.load(str(build_graph(case, tmp_path)))
        onnx.checker.check_model(model)
        assert model.graph.node[0].input[0] == "shufflebench_reference_input"  # the reference runs first
    assert seen == {"conv", "elementwise", "concat", "split", "shuffle", "pool", "global_pool", "fully_connected",
                    "matmul", "chain", "stack"}
    seeds = [int(c.params["model"].split("seed=")[1].split(",")[0]) for c in design.cases if c.builder == "model"]
    assert len(seeds) == 48 and min(seeds) >= 1_000_000  # the calibration's own networks, never the benchmark's
    stacks = [c.params for c in design.cases if c.builder == "stack"]
    assert len(stacks) == 48 and {p["block"] for p in stacks} == {"pointwise", "grouped", "separable", "bottleneck"}
    assert max(p["channels"] * p["ratio"] * p["size"] ** 2 for p in stacks) <= 6_000_000


@pytest.mark.parametrize("block, convolutions, adds", [("pointwise", 6, 0), ("grouped", 3, 0), ("separable", 6, 0),
                                                        ("bottleneck", 9, 3)])
def test_a_stack_chains_its_blocks(tmp_path, block, convolutions, adds):
    import onnx
    import onnxruntime as ort
    import numpy as np

    params = {"block": block, "channels": 16, "size": 7, "ratio": 2, "groups": 4 if block == "grouped" else 1,
              "relu": True, "shortcut": True, "blocks": 3}
    path = build_graph(Case("stack/t", "stack", params, "stack"), tmp_path)
    nodes = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert nodes.count("Conv") == convolutions + 1 and nodes.count("Add") == adds  # + the reference's convolution
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ones(i.shape, dtype=np.float32) for i in session.get_inputs()}
    out = session.run(None, feeds)[-1]
    assert out.shape == (1, 16, 7, 7)  # every block returns to the stack's width


@pytest.mark.arm
def test_calibrate_on_emulated_aarch64(arm_rootfs):
    design = Design("tiny", TINY.cases[:4], profile_runs=3)
    calibration = calibrate(resolve_device("arm-emulated"), design, POLICY)
    assert calibration.emulated is True and calibration.environment["machine"] == "aarch64"
    assert calibration.layout["nchwc_block"] == 0  # aarch64 onnxruntime runs plain NCHW kernels
    prediction = predict_model(PreparedModel(resolve_model("g1:resolution=8")), calibration)
    assert prediction.emulated is True and prediction.graph == "exact"  # reproduced here without the NCHWc layout
    assert all("nchwc" not in k.kernel.kind for k in prediction.kernels)


@pytest.mark.ssh
def test_calibrate_over_ssh(tmp_path, sshd):
    options = ", ".join(json.dumps(o) for o in sshd.options)
    board = tmp_path / "board.toml"
    board.write_text('name = "board"\ndescription = "loopback board"\nkind = "arm"\nbackend = "onnxruntime"\n'
                     f'location = "ssh"\nhost = "{sshd.host}"\nport = {sshd.port}\nssh_options = [{options}]\n'
                     f'python = "{sys.executable}"\n')
    calibration = calibrate(resolve_device(str(board)), Design("tiny", TINY.cases[:4], profile_runs=3), POLICY)
    assert calibration.device.name == "board" and calibration.emulated is False
    assert len(calibration.records) == 4
