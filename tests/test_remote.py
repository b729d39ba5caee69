"""The board side (environment, board_runner) and the remote runner: a local Python, ssh on loopback, qemu-user.

Latency values are never asserted: only the structure of results (positive samples, counts, machine, labels).
"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from shufflebench.errors import MeasurementError, SetupError, UsageError
from shufflebench.measure import board_runner, environment
from shufflebench.measure.sampling import Samples
from shufflebench.measure.stats import Measurement
from shufflebench.runners.bundle import BOOTSTRAP
from shufflebench.runners.remote import run_remote
from shufflebench.runners.targets import EmulatedArm, LocalPython, SshTarget, Target, default_rootfs

TINY_POLICY = {"warmup_runs": 1, "min_runs": 3, "budget_s": 0.3}
ARM_POLICY = {"warmup_runs": 1, "min_runs": 3, "budget_s": 1.0}


def reference_outputs(model: Path, seed: int = 0) -> dict:
    """x86 onnxruntime outputs for the same seeded inputs, computed in this process."""
    result = board_runner.run(
        {"model": str(model), "seed": seed, "policy": {"warmup_runs": 0, "min_runs": 1, "budget_s": 0.01},
         "return_outputs": True}
    )
    return board_runner.decode_outputs(result)


def check_result_structure(result: dict, runs_at_least: int = 3) -> None:
    assert "error" not in result
    assert result["stop_reason"] in ("precision", "budget", "max_runs")
    assert len(result["samples_s"]) >= runs_at_least
    assert all(s > 0 for s in result["samples_s"] + result["warmup_s"])
    assert result["session"]["inter_op_num_threads"] == 1
    assert result["session"]["execution_mode"] == "sequential"
    assert result["session"]["providers_used"][0] == "CPUExecutionProvider"
    json.dumps(result)  # JSON-able as is
    Measurement.from_samples(Samples.from_dict(result))  # and a Measurement can be built from it


# --- environment ---------------------------------------------------------------------------------------------------

X86_CPUINFO = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU\nflags\t\t: fpu sse2\n"
ARM_CPUINFO = "".join(
    f"processor\t: {i}\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: {part}\n\n"
    for i, part in enumerate(["0xd05"] * 4 + ["0xd0b"] * 4)
)


def test_emulation_rule():
    assert environment.detect_emulation("aarch64", ARM_CPUINFO, env={}) == (False, None)
    assert environment.detect_emulation("x86_64", X86_CPUINFO, env={}) == (False, None)
    emulated, reason = environment.detect_emulation("aarch64", X86_CPUINFO, env={})
    assert emulated and "x86" in reason
    assert environment.detect_emulation("x86_64", X86_CPUINFO, env={"SHUFFLEBENCH_EMULATED": "qemu-user"})[0]
    assert not environment.detect_emulation("x86_64", X86_CPUINFO, env={"SHUFFLEBENCH_EMULATED": "0"})[0]


def test_cpu_model_from_cpuinfo():
    fields = environment._cpuinfo_fields
    assert environment.cpu_model(fields(X86_CPUINFO)) == "Intel(R) Xeon(R) CPU"
    assert environment.cpu_model(fields(ARM_CPUINFO)) == "Cortex-A55 x4 + Cortex-A76 x4"
    assert environment.cpu_model(fields("processor\t: 0\nHardware\t: BCM2835\n")) == "BCM2835"
    assert environment.cpu_model([]) is None


def test_capture_is_hostname_free_and_complete(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    env = environment.capture(threads=64, provider="CPUExecutionProvider", optimization_level="all")
    for key in ("machine", "cpu_model", "logical_cores", "available_cores", "governor", "emulated", "python",
                "versions", "thread_env", "threads", "provider", "optimization_level", "warnings"):
        assert key in env
    assert env["thread_env"]["OMP_NUM_THREADS"] == "3"
    assert env["versions"]["onnxruntime"] and env["versions"]["numpy"]
    assert env["emulated"] is False
    assert any(w.startswith("oversubscribed: 64 intra-op threads") for w in env["warnings"])
    text = json.dumps(env)
    hostname = socket.gethostname()
    if len(hostname) > 3:
        assert hostname not in text


def test_oversubscription_warning():
    assert environment.oversubscription_warning(4, 2).startswith("oversubscribed: 4 intra-op threads on 2")
    assert environment.oversubscription_warning(2, 2) is None
    assert environment.oversubscription_warning(0, 2) is None  # onnxruntime's own default
    assert environment.oversubscription_warning(None, 2) is None


# --- board_runner in this process and as a shipped, flat script ----------------------------------------------------


@pytest.mark.parametrize(
    "request_, match",
    [
        ({}, "model=None"),
        ({"model": "m.onnx", "graph_optimization_level": "max"}, "allowed: all, extended, basic, disabled"),
        ({"model": "m.onnx", "intra_op_threads": -1}, "intra_op_threads=-1"),
        ({"model": "m.onnx", "inputs": {"x": [[1, 3], "float8"]}}, "dtype='float8'"),
        ({"model": "m.onnx", "policy": {"min_runs": 0}}, r"SamplingPolicy\.min_runs=0"),
        ({"model": "m.onnx", "batch": 2}, "request key 'batch' is unknown"),
    ],
)
def test_bad_requests_are_refused(request_, match):
    with pytest.raises(ValueError, match=match):
        board_runner.validate_request(request_)


def test_inputs_are_seeded_and_platform_independent():
    specs = {"x": {"shape": [2, 3], "dtype": "float32"}, "ids": {"shape": [4], "dtype": "int64"}}
    first, again = board_runner.make_inputs(specs, 7), board_runner.make_inputs(specs, 7)
    assert all(np.array_equal(first[k], again[k]) for k in specs)
    assert not np.array_equal(first["x"], board_runner.make_inputs(specs, 8)["x"])
    assert first["x"].dtype == np.float32 and np.all((first["x"] >= -1) & (first["x"] < 1))
    assert first["ids"].dtype == np.int64


def test_outputs_encode_as_float32_little_endian():
    array = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    encoded = board_runner.encode_array(array)
    assert encoded["shape"] == [2, 3] and encoded["dtype"] == "float64"
    assert np.array_equal(board_runner.decode_array(encoded), array.astype(np.float32))


def test_board_runner_in_process(tiny_onnx):
    result = board_runner.run(
        {"model": str(tiny_onnx), "policy": TINY_POLICY, "intra_op_threads": 1, "graph_optimization_level": "basic",
         "return_outputs": True}
    )
    check_result_structure(result)
    assert result["session"]["graph_optimization_level"] == "basic"
    assert result["inputs"]["x"]["shape"] == [1, 3, 16, 16]
    assert board_runner.decode_outputs(result)["y"].shape == (1, 4, 16, 16)


def test_board_runner_as_flat_script(tiny_onnx, tmp_path):
    """Shipped as three top-level modules, main() speaks JSON on stdin/stdout."""
    for module in ("sampling", "environment", "board_runner"):
        shutil.copy(Path(board_runner.__file__).with_name(f"{module}.py"), tmp_path)
    request = json.dumps({"model": str(tiny_onnx), "policy": TINY_POLICY})
    # -E -s, not -I: isolated mode would drop the script's own folder from sys.path, where its siblings are.
    done = subprocess.run([sys.executable, "-E", "-s", "board_runner.py"], input=request.encode(), cwd=tmp_path,
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    check_result_structure(json.loads(done.stdout))
    bad = subprocess.run([sys.executable, "-E", "-s", "board_runner.py"], input=b"not json", cwd=tmp_path,
                         capture_output=True)
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["error"]["kind"] == "bad_request"


# --- run_remote with a local Python --------------------------------------------------------------------------------


def test_local_round_trip(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the bootstrap's temporary directory goes here: check it is removed
    target = LocalPython(sys.executable)
    assert isinstance(target, Target)
    result = run_remote(target, tiny_onnx, {"policy": TINY_POLICY, "seed": 3, "return_outputs": True}, timeout_s=60)
    check_result_structure(result)
    assert result["target"] == {"kind": "LocalPython", "label": f"local python {sys.executable}", "emulated": False}
    assert result["environment"]["emulated"] is False
    outputs = board_runner.decode_outputs(result)
    np.testing.assert_allclose(outputs["y"], reference_outputs(tiny_onnx, seed=3)["y"], atol=1e-6)
    assert list(tmp_path.glob("shufflebench-*")) == []  # (onnxruntime itself leaves a .ses file in TMPDIR)


def test_model_path_never_reaches_a_command_line(onnx_models, tmp_path):
    hostile = tmp_path / "m'; touch PWNED; echo '$(id).onnx"
    shutil.copy(onnx_models["tiny"], hostile)
    target = SshTarget("board", python="~/venv/bin/python")
    argv = target.argv(["-c", BOOTSTRAP])
    assert not any(str(hostile) in arg or "PWNED" in arg for arg in argv)
    assert argv[-3:-1] == ["--", "board"]
    # The remote shell gets exactly [python, "-c", BOOTSTRAP] back (the ~/ left unquoted on purpose).
    assert shlex.split(argv[-1].replace("~/", "/home/me/", 1)) == ["/home/me/venv/bin/python", "-c", BOOTSTRAP]
    result = run_remote(LocalPython(), hostile, {"policy": TINY_POLICY}, timeout_s=60)
    check_result_structure(result)
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_bad_model_is_a_measurement_error(tmp_path):
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"this is not a protobuf")
    with pytest.raises(MeasurementError, match=r"^local python .*: load_failed: onnxruntime cannot load the model"):
        run_remote(LocalPython(), model, {"policy": TINY_POLICY}, timeout_s=60)


def test_board_without_onnxruntime_is_a_setup_error(tiny_onnx, python_without_onnxruntime):
    with pytest.raises(SetupError, match=r"has no usable onnxruntime .*-m pip install onnxruntime numpy$"):
        run_remote(LocalPython(python_without_onnxruntime), tiny_onnx, {"policy": TINY_POLICY}, timeout_s=60)


def test_missing_provider_is_a_setup_error(tiny_onnx):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(SetupError, match="CUDAExecutionProvider is not in onnxruntime .*available: "):
        run_remote(LocalPython(), tiny_onnx, {"providers": ["CUDAExecutionProvider"]}, timeout_s=60)


def test_remote_crash_is_a_measurement_error_with_the_stderr_tail(tiny_onnx, tmp_path):
    crashing = tmp_path / "python3"
    crashing.write_text("#!/bin/sh\ncat >/dev/null\necho 'Fatal Python error: Segmentation fault' >&2\nexit 139\n")
    crashing.chmod(0o755)
    with pytest.raises(MeasurementError, match="failed with status 139: Fatal Python error: Segmentation fault$"):
        run_remote(LocalPython(str(crashing)), tiny_onnx, {"policy": TINY_POLICY}, timeout_s=60)


def test_timeout_is_a_measurement_error_and_cleans_up(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    slow = {"policy": {"warmup_runs": 0, "min_runs": 10**9, "max_runs": 10**9, "budget_s": 600}}
    with pytest.raises(MeasurementError, match=r"no result within timeout_s=1\.5 s"):
        run_remote(LocalPython(), tiny_onnx, slow, timeout_s=1.5)
    assert list(tmp_path.glob("shufflebench-*")) == []  # stopped with SIGTERM, the bootstrap removed its folder


def test_bad_input_is_refused_before_starting(tiny_onnx, tmp_path):
    with pytest.raises(UsageError, match="graph_optimization_level='max'"):
        run_remote(LocalPython(), tiny_onnx, {"graph_optimization_level": "max"})
    with pytest.raises(UsageError, match="is not a file"):
        run_remote(LocalPython(), tmp_path / "missing.onnx", {})
    with pytest.raises(UsageError, match="ssh host '-oProxyCommand=x'"):
        SshTarget("-oProxyCommand=x")
    with pytest.raises(UsageError, match="qemu cpu 'pentium' is not offered; allowed: .*neoverse-n1"):
        EmulatedArm(tmp_path, qemu_cpu="pentium")


def test_missing_python_is_a_setup_error(tiny_onnx, tmp_path):
    with pytest.raises(SetupError, match="does not exist or is not executable"):
        run_remote(LocalPython(str(tmp_path / "nopython")), tiny_onnx, {})


def test_missing_rootfs_is_a_setup_error(tiny_onnx, tmp_path):
    with pytest.raises(SetupError, match=r"no aarch64 rootfs .*; run scripts/setup-arm-emulation\.sh$"):
        run_remote(EmulatedArm(tmp_path / "nothing"), tiny_onnx, {})


def test_default_rootfs(monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_ARM_ROOTFS", "/opt/rootfs")
    assert default_rootfs() == Path("/opt/rootfs")
    monkeypatch.delenv("SHUFFLEBENCH_ARM_ROOTFS")
    assert default_rootfs() == Path.home() / ".cache" / "shufflebench" / "arm-rootfs"


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client")
def test_unreachable_host_is_a_setup_error(tiny_onnx, closed_port):
    target = SshTarget("127.0.0.1", port=closed_port, connect_timeout=5,
                       ssh_options=("-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                                    "-o", "UserKnownHostsFile=/dev/null"))
    with pytest.raises(SetupError, match=r"^cannot reach 127\.0\.0\.1:\d+ over ssh: .*Connection refused"):
        run_remote(target, tiny_onnx, {"policy": TINY_POLICY}, timeout_s=30)


# --- ssh on loopback -----------------------------------------------------------------------------------------------


@pytest.mark.ssh
def test_ssh_end_to_end(sshd, tiny_onnx):
    target = SshTarget(sshd.host, port=sshd.port, ssh_options=sshd.options, python=sys.executable)
    result = run_remote(target, tiny_onnx, {"policy": TINY_POLICY, "return_outputs": True}, timeout_s=60)
    check_result_structure(result)
    assert result["target"]["kind"] == "SshTarget" and result["target"]["emulated"] is False
    np.testing.assert_allclose(board_runner.decode_outputs(result)["y"], reference_outputs(tiny_onnx)["y"], atol=1e-6)


@pytest.mark.ssh
def test_ssh_timeout_leaves_nothing_running_on_the_board(sshd, tiny_onnx):
    """The host gives up at timeout_s; the board's bootstrap stops itself at its deadline and removes its folder."""
    before = set(Path(tempfile.gettempdir()).glob("shufflebench-*"))
    target = SshTarget(sshd.host, port=sshd.port, ssh_options=sshd.options, python=sys.executable)
    slow = {"policy": {"warmup_runs": 0, "min_runs": 10**9, "max_runs": 10**9, "budget_s": 600}}
    with pytest.raises(MeasurementError, match=r"no result within timeout_s=1\.5 s"):
        run_remote(target, tiny_onnx, slow, timeout_s=1.5)
    assert set(Path(tempfile.gettempdir()).glob("shufflebench-*")) - before, "the board side should still be running"
    deadline = time.monotonic() + 15
    while set(Path(tempfile.gettempdir()).glob("shufflebench-*")) - before:
        assert time.monotonic() < deadline, "the remote bootstrap did not stop and clean up by its deadline"
        time.sleep(0.2)


@pytest.mark.ssh
def test_ssh_board_without_onnxruntime(sshd, tiny_onnx, python_without_onnxruntime):
    target = SshTarget(sshd.host, port=sshd.port, ssh_options=sshd.options, python=python_without_onnxruntime)
    with pytest.raises(SetupError, match=rf"^{sshd.host}:{sshd.port} has no usable onnxruntime .*on {sshd.host}: "
                                         r".* -m pip install onnxruntime numpy$"):
        run_remote(target, tiny_onnx, {"policy": TINY_POLICY}, timeout_s=60)


@pytest.mark.ssh
def test_ssh_board_without_that_python(sshd, tiny_onnx):
    target = SshTarget(sshd.host, port=sshd.port, ssh_options=sshd.options, python="python3-not-installed")
    with pytest.raises(SetupError, match="python not found on the target: .*python3-not-installed"):
        run_remote(target, tiny_onnx, {"policy": TINY_POLICY}, timeout_s=60)


@pytest.mark.ssh
def test_ssh_wrong_key_is_unreachable(sshd, tiny_onnx, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    options = tuple(str(tmp_path / "stranger") if o.endswith("client_key") else o for o in sshd.options)
    target = SshTarget(sshd.host, port=sshd.port, ssh_options=options, python=sys.executable)
    with pytest.raises(SetupError, match="cannot reach .* over ssh: .*Permission denied"):
        run_remote(target, tiny_onnx, {"policy": TINY_POLICY}, timeout_s=60)


# --- qemu-user aarch64 ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def x86_outputs(onnx_models) -> dict:
    return {name: reference_outputs(path) for name, path in onnx_models.items()}


@pytest.mark.arm
@pytest.mark.parametrize("qemu_cpu", ["cortex-a72", "neoverse-n1"])
@pytest.mark.parametrize("model", ["tiny", "stem", "pointwise"])
def test_emulated_arm_matches_x86(arm_rootfs, onnx_models, x86_outputs, model, qemu_cpu):
    target = EmulatedArm(arm_rootfs, qemu_cpu=qemu_cpu)
    result = run_remote(target, onnx_models[model], {"policy": ARM_POLICY, "return_outputs": True}, timeout_s=120)
    check_result_structure(result)
    env = result["environment"]
    assert env["machine"] == "aarch64"
    assert env["emulated"] is True and env["qemu_cpu"] == qemu_cpu
    assert result["target"] == {"kind": "EmulatedArm", "label": f"emulated aarch64 ({qemu_cpu})", "emulated": True}
    arm = board_runner.decode_outputs(result)
    assert arm.keys() == x86_outputs[model].keys()
    for name in arm:
        np.testing.assert_allclose(arm[name], x86_outputs[model][name], atol=1e-5, rtol=0)


@pytest.mark.arm
def test_emulation_is_detected_without_the_launcher_flag(arm_rootfs):
    """Rule 2 of environment's emulation rule, under real qemu-user: x86 /proc/cpuinfo seen by an aarch64 process."""
    target = EmulatedArm(arm_rootfs, qemu_cpu="max")
    env = target.env()
    env.pop(environment.EMULATION_ENV)
    code = f"import sys; sys.path.insert(0, {str(Path(environment.__file__).parent)!r}); import environment; " \
           "print(environment.detect_emulation())"
    done = subprocess.run(target.argv(["-c", code]), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("(True, '/proc/cpuinfo describes x86 but the process runs as aarch64')")


def test_interleaved_models_alternate_between_sessions_made_in_both_orders(monkeypatch):
    # Earlier sessions run slower: with several models each gets a second session, the second set made in reverse
    # order, and the rounds alternate between the sets, so no model's place in the creation order favours it.
    made, ran = [], []

    class Fake:
        def __init__(self, request):
            self.name = f"{request['model']}{sum(1 for m in made if m.startswith(request['model'])) + 1}"
            made.append(self.name)
            self.request = request

        def run_once(self):
            ran.append(self.name)

    monkeypatch.setattr(board_runner, "open_model", Fake)
    monkeypatch.setattr(board_runner, "_result", lambda model, samples, outputs: {"runs": len(samples.samples_s)})
    policy = {"warmup_runs": 0, "min_runs": 4, "max_runs": 4, "budget_s": 100.0, "turn_runs": 1, "settle_runs": 0}
    board_runner.run_many([{"model": "A", "return_outputs": False}, {"model": "B", "return_outputs": False}], policy)
    assert made == ["A1", "B1", "B2", "A2"]
    assert ran == ["A1", "B1", "B2", "A2", "A1", "B1", "B2", "A2"]  # rounds rotate A B, B A; sessions alternate
    # In turns (one warm-up round, then 1 settling + 2 timed runs each), a session changes at a round only: the
    # settling run warms the session the timed runs use.
    made.clear(), ran.clear()
    policy.update(warmup_runs=1, turn_runs=2, settle_runs=1)
    board_runner.run_many([{"model": "A", "return_outputs": False}, {"model": "B", "return_outputs": False}], policy)
    assert ran == ["A1", "B1"] + ["A2"] * 3 + ["B2"] * 3 + ["B1"] * 3 + ["A1"] * 3
