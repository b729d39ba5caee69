"""`profile`: the structure of a real (small) measurement, its files, and every bad-input path.

Timing values are never asserted here (that is bench.py's job): only that a measurement has the shape it promises.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from shufflebench.cli import app
from shufflebench.devices import resolve_device
from shufflebench.errors import MeasurementError, SetupError, UsageError
from shufflebench.measure.sampling import SamplingPolicy
from shufflebench.models import resolve_model
from shufflebench.prepared import PreparedModel
from shufflebench.profile import ProfileResult, profile_model
from shufflebench.runners.lookup import runner_for
from shufflebench.runners.torch_eager import CudaEventClock, TorchRunner, require_cuda
from shufflebench.verify import check_outputs

runner = CliRunner()
QUICK = ["--budget", "0.2", "--warmup", "1", "--min-runs", "3"]
SMALL = "g1:resolution=8"  # 20 tiny 1x1 convs: exports in well under a second


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_profile_json_on_cpu_has_counts_latency_and_environment(tmp_path):
    out = tmp_path / "results" / "g1.json"
    result = invoke("profile", SMALL, "--format", "json", "--output", str(out), *QUICK)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "shufflebench.profile/3"
    assert (data["model"], data["device"], data["emulated"]) == ("g1", "cpu", False)
    assert data["flops_madd"] == 20 * 64 * 128 * 128  # 20 convs of 128 -> 128 channels on 8x8
    latency = data["latency"]
    assert latency["runs"] >= 3 and len(latency["samples_ms"]) == latency["runs"]
    assert len(latency["warmup_ms"]) == 1
    assert all(s > 0 for s in latency["samples_ms"])
    assert latency["median_ms"] == pytest.approx(sorted(latency["samples_ms"])[len(latency["samples_ms"]) // 2],
                                                 rel=0.5)
    assert data["throughput_per_s"] == pytest.approx(1000 / latency["median_ms"])
    assert data["achieved_madd_per_s"] == pytest.approx(data["flops_madd"] / (latency["median_ms"] / 1000))
    assert data["environment"]["machine"] == "x86_64" and data["environment"]["threads"] == 1
    assert data["session"]["intra_op_num_threads"] == 1
    assert json.loads(out.read_text()) == data  # --output holds exactly what was printed
    assert ProfileResult.from_dict(data).to_dict() == data  # and the typed result round-trips through it
    assert not list(out.parent.glob("*.tmp"))


def test_profile_markdown_and_table():
    md = invoke("profile", SMALL, "--format", "md", *QUICK)
    assert md.exit_code == 0, md.output
    assert "| theoretical | | actual | |" in md.stdout and "latency median" in md.stdout
    table = invoke("profile", SMALL, *QUICK)
    assert "multiply-adds" in table.stdout and "throughput" in table.stdout


def test_profile_reports_min_time_and_effective_runs(tmp_path):
    from shufflebench.report.profile import profile_markdown

    result = invoke("profile", SMALL, "--format", "json", *QUICK, "--min-time", "0.05")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["latency"]["policy"]["min_time_s"] == 0.05
    independent = ProfileResult.from_dict(dict(data, latency=dict(data["latency"], samples_ms=[1.0, 2.0] * 300)))
    assert independent.measurement.effective_runs == 600
    assert "independent runs" not in profile_markdown(independent)
    # runs that repeat each other (a slow spell, then a fast one): say what they are worth
    drifting = ProfileResult.from_dict(dict(data, latency=dict(data["latency"], samples_ms=[2.0] * 300 + [1.0] * 300)))
    worth = drifting.measurement.effective_runs
    assert worth < 60 and f"| worth | {worth} independent runs |" in profile_markdown(drifting)
    bad = invoke("profile", SMALL, *QUICK, "--min-time", "-1")
    assert bad.exit_code == 2 and "--min-time" in bad.output


def test_profile_torch_eager_device():
    result = invoke("profile", SMALL, "--device", "cpu-torch", "--format", "json", *QUICK)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["session"]["backend"] == "torch" and data["latency"]["runs"] >= 3


@pytest.mark.parametrize("args, message", [
    (("--device", "tpu"), "unknown device 'tpu'"),
    (("--threads", "0"), "--threads 0 is not allowed"),
    (("--batch", "-1"), "--batch -1 is not allowed"),
    (("--device", "snapdragon-810"), "reference-only"),
    (("--device", "arm"), "needs a board: give --host"),
    (("--device", "cuda"), "CUDAExecutionProvider"),
    (("--device", "cpu", "--host", "pi@board"), "--host applies to SSH devices"),
])
def test_profile_bad_input_is_one_line(args, message, monkeypatch):
    monkeypatch.delenv("SHUFFLEBENCH_ARM_HOST", raising=False)
    result = invoke("profile", SMALL, *args, *QUICK)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_host_is_a_setup_error(tmp_path):
    # Port 9 (discard) on loopback is closed here: ssh fails at once with exit 255.
    profile = tmp_path / "board.toml"
    profile.write_text('name = "board"\ndescription = "x"\nkind = "arm"\nbackend = "onnxruntime"\n'
                       'location = "ssh"\nport = 9\nssh_options = ["-o", "StrictHostKeyChecking=no"]\n')
    result = invoke("profile", SMALL, "--device", str(profile), "--host", "nobody@127.0.0.1", *QUICK)
    assert result.exit_code == 2, result.output
    assert "127.0.0.1" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_failed_output_writes_nothing(tmp_path):
    out = tmp_path / "r.json"
    result = invoke("profile", SMALL, "--device", "tpu", "--output", str(out))
    assert result.exit_code == 2 and not out.exists()


def test_outputs_that_disagree_are_refused():
    import numpy as np

    expected = np.ones((1, 10))
    check_outputs("m", expected, expected + 1e-6)
    with pytest.raises(MeasurementError, match="outputs disagree with torch"):
        check_outputs("m", expected, expected * 1.1)
    with pytest.raises(MeasurementError, match="output shape"):
        check_outputs("m", expected, np.ones((1, 9)))


def test_profile_refuses_a_model_that_computes_something_else(monkeypatch):
    import shufflebench.measure.sampling as sampling
    import shufflebench.profile as profile

    monkeypatch.setattr(profile, "reference_for", lambda model, device: np.zeros((1, 128, 8, 8)) + 5)

    def must_not_time(*args, **kwargs):
        raise AssertionError("a model whose outputs disagree was timed")

    monkeypatch.setattr(sampling, "collect", must_not_time)
    monkeypatch.setattr(sampling, "collect_interleaved", must_not_time)

    with pytest.raises(MeasurementError, match="outputs disagree"):
        profile_model(PreparedModel(resolve_model(SMALL)), resolve_device("cpu"),
                      SamplingPolicy(warmup_runs=0, min_runs=2, budget_s=0.1))


def test_cuda_paths_without_a_gpu_say_so():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the real run is covered by the gpu-marked test")
    with pytest.raises(SetupError, match="needs a CUDA GPU"):
        require_cuda(torch, "cuda-torch")
    with pytest.raises(SetupError, match="needs a CUDA GPU"):
        TorchRunner(resolve_device("cuda-torch")).measure([PreparedModel(resolve_model(SMALL))], SamplingPolicy())
    with pytest.raises(UsageError, match="reference-only"):
        runner_for(resolve_device("gtx-1080ti"))


class _FakeEvent:
    """A CUDA event stand-in: `record` stamps the fake GPU time, `elapsed_time` returns milliseconds between."""

    now_ms = 0.0

    def __init__(self, enable_timing):
        assert enable_timing
        self.stamp = None

    def record(self):
        self.stamp = _FakeEvent.now_ms

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return other.stamp - self.stamp


def test_cuda_event_clock_reads_the_gpu_timeline():
    fake_torch = type("T", (), {"cuda": type("C", (), {"Event": _FakeEvent})})
    _FakeEvent.now_ms = 100.0
    clock = CudaEventClock(fake_torch)
    _FakeEvent.now_ms = 102.5
    first = clock()
    _FakeEvent.now_ms = 110.0
    assert first == pytest.approx(0.0025)
    assert clock() - first == pytest.approx(0.0075)


@pytest.mark.gpu
def test_cuda_devices_for_real():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    for device in ("cuda-torch", "cuda"):
        result = invoke("profile", "v2:resolution=64", "--device", device, "--format", "json", *QUICK)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["latency"]["runs"] >= 3
