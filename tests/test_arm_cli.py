"""`--device arm-emulated` and an SSH board, end to end through the command line (real aarch64 onnxruntime under
qemu-user; a real sshd on 127.0.0.1). Emulated timings are never asserted: only that they are labelled as such."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app

runner = CliRunner()
QUICK = ["--budget", "0.5", "--warmup", "1", "--min-runs", "3"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))


@pytest.mark.arm
@pytest.mark.parametrize("device, qemu_cpu", [("arm-emulated", "cortex-a72"), ("arm-emulated-n1", "neoverse-n1")])
@pytest.mark.parametrize("model", ["v2:resolution=32", "mbv2:resolution=32"])
def test_zoo_models_run_under_aarch64_onnxruntime(arm_rootfs, device, qemu_cpu, model):
    # profile refuses to report when the board's outputs differ from torch's, so exit 0 means outputs agree.
    result = runner.invoke(app, ["profile", model, "--device", device, "--format", "json", *QUICK])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["emulated"] is True
    assert data["environment"]["machine"] == "aarch64"
    assert data["environment"]["qemu_cpu"] == qemu_cpu
    # emulation is a flag, shown as one banner, never a warning to be matched by its wording
    assert not any("emulated" in w.lower() for w in data["warnings"])
    assert data["latency"]["runs"] >= 3 and min(data["latency"]["samples_ms"]) > 0


@pytest.mark.arm
def test_emulated_results_are_labelled_in_the_table(arm_rootfs):
    result = runner.invoke(app, ["profile", "g1:resolution=8", "--device", "arm-emulated", *QUICK])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("EMULATED: aarch64 under qemu-user; these timings are not hardware timings") == 1


@pytest.mark.arm
def test_compare_interleaves_on_the_emulated_board(arm_rootfs):
    result = runner.invoke(app, ["compare", "g1:resolution=8", "g1:resolution=8,ratio=12", "--device",
                                 "arm-emulated", "--format", "json", *QUICK])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["emulated"] is True
    assert len({m["latency"]["runs"] for m in data["models"]}) == 1


def _board(tmp_path, sshd, python: str):
    options = ", ".join(json.dumps(o) for o in sshd.options)
    path = tmp_path / "board.toml"
    path.write_text(
        'name = "board"\ndescription = "loopback board"\nkind = "arm"\nbackend = "onnxruntime"\n'
        f'location = "ssh"\nhost = "{sshd.host}"\nport = {sshd.port}\nssh_options = [{options}]\n'
        f'python = "{python}"\n'
    )
    return path


@pytest.mark.ssh
def test_profile_over_ssh_end_to_end(tmp_path, sshd):
    board = _board(tmp_path, sshd, sys.executable)
    result = runner.invoke(app, ["profile", "v2:resolution=32", "--device", str(board), "--format", "json", *QUICK])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["device"] == "board" and data["emulated"] is False
    assert data["latency"]["runs"] >= 3


@pytest.mark.ssh
def test_board_without_onnxruntime_says_how_to_install(tmp_path, sshd, python_without_onnxruntime):
    board = _board(tmp_path, sshd, python_without_onnxruntime)
    result = runner.invoke(app, ["profile", "g1:resolution=8", "--device", str(board), *QUICK])
    assert result.exit_code == 2
    assert "pip install onnxruntime numpy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
