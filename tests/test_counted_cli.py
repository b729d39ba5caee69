"""The counted devices end to end with the real tools: valgrind's callgrind around x86-64 onnxruntime, and qemu-user
with the project's plugin around aarch64 onnxruntime. Small models only (valgrind runs them about 100x slower).

Counts are deterministic, so these tests assert them: two processes count the same instructions to within 0.01%
(measured: a few hundred instructions of the Python around the kernels move between processes, 0.003% of these
small models; the much smaller store counts of a later inference moved by 57, so events get 200 of slack), the estimated cycles follow their formula, and a model that does more work counts more.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app
from shufflebench.counters.figures import LL_HIT_CYCLES, MEMORY_CYCLES

runner = CliRunner()
SMALL = "v2:resolution=32"
G1, G1_WIDE = "g1:resolution=8", "g1:resolution=8,ratio=12"


def _have_compiler() -> bool:
    return any(shutil.which(name) for name in ("cc", "gcc", "clang"))


@pytest.fixture(scope="module")
def valgrind_ready():
    if shutil.which("valgrind") is None or shutil.which("setarch") is None or not _have_compiler():
        pytest.skip("valgrind, setarch or a C compiler missing; run scripts/setup-counters.sh")


@pytest.fixture(scope="module")
def plugin_ready(arm_rootfs):
    if shutil.which("qemu-aarch64") is None or not _have_compiler():
        pytest.skip("qemu-aarch64 (qemu-user) or a C compiler missing; run scripts/setup-counters.sh")
    return arm_rootfs


def counted(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.counted
def test_valgrind_counts_repeat_and_follow_the_formula(valgrind_ready):
    first, second = (counted("profile", SMALL, "--device", "cpu-counted")["counters"] for _ in range(2))
    assert first["tool"] == "valgrind" and first["context"]["caches"]["LL"] == "8388608 B, 16-way, 64 B lines"
    assert isinstance(first["instructions"], int) and first["instructions"] > 1_000_000
    assert abs(first["instructions"] - second["instructions"]) <= 1e-4 * first["instructions"]
    accesses = first["instructions"] + first["loads"] + first["stores"]
    ll_hits = first["l1_misses"] - first["ll_misses"]
    assert first["estimated_cycles"] == (accesses - first["l1_misses"] + LL_HIT_CYCLES * ll_hits
                                         + MEMORY_CYCLES * first["ll_misses"])
    assert len(first["runs"]) == 3 and first["warmup"] == 1 and first["primary"] == "estimated_cycles"


@pytest.mark.counted
def test_valgrind_profile_table(valgrind_ready):
    result = runner.invoke(app, ["profile", G1, "--device", "cpu-counted"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "counted per inference" in text and "est. cycles (estimate)" in text and "LL misses" in text
    assert "est. cycles = L1 hits + 5 x last-level hits + 35 x last-level misses" in text
    assert "EMULATED" not in text and "latency" not in text


@pytest.mark.counted
@pytest.mark.arm
def test_plugin_counts_repeat_from_process_to_process(plugin_ready):
    first, second = (counted("profile", SMALL, "--device", "arm-counted") for _ in range(2))
    assert first["emulated"] is True and first["latency"] is None
    assert first["environment"]["machine"] == "aarch64" and first["counters"]["context"]["qemu_cpu"] == "cortex-a72"
    for one, other in zip(first["counters"]["runs"], second["counters"]["runs"]):  # every inference, every event
        assert one.keys() == other.keys()
        # 0.01%, or 200 events for the small ones: measured, the stores of a later inference moved by 57 of 525,512
        assert all(abs(one[k] - other[k]) <= max(1e-4 * one[k], 200) for k in one)
    assert first["counters"]["loads"] > first["counters"]["stores"] > 0


@pytest.mark.counted
@pytest.mark.arm
def test_the_neoverse_n1_device_counts_its_own_kernels(plugin_ready):
    data = counted("profile", SMALL, "--device", "arm-counted-n1")
    assert data["environment"]["qemu_cpu"] == data["counters"]["context"]["qemu_cpu"] == "neoverse-n1"
    assert data["counters"]["instructions"] > 1_000_000 and data["counters"]["estimated_cycles"] is None


@pytest.mark.counted
@pytest.mark.arm
def test_compare_gives_counted_ratios(plugin_ready):
    data = counted("compare", G1, G1_WIDE, "--device", "arm-counted")
    base, wide = data["models"]
    assert data["schema"] == "shufflebench.compare/2"
    speed = wide["vs_baseline"]
    assert speed["actual_speedup"]["counted"] is True
    assert speed["counted_speedups"]["instructions"] == pytest.approx(
        base["counters"]["instructions"] / wide["counters"]["instructions"])
    # G1: the 1:12 block does fewer multiply-adds (theory above 1) but more work per the counts (below 1)
    assert speed["theoretical_speedup"] > 1 > speed["counted_speedups"]["instructions"]


@pytest.mark.counted
@pytest.mark.arm
def test_regress_and_stored_counts_on_the_plugin(plugin_ready, tmp_path):
    result = runner.invoke(app, ["regress", G1_WIDE, "--against", G1, "--device", "arm-counted"])
    assert result.exit_code == 1, result.output
    assert "beyond the 0.5% threshold" in " ".join(result.stdout.split())

    path = tmp_path / "counts.json"
    saved = runner.invoke(app, ["baseline", "save", G1, "--device", "arm-counted", "--output", str(path)])
    assert saved.exit_code == 0, saved.output
    same = runner.invoke(app, ["regress", G1, "--baseline", str(path), "--device", "arm-counted", "--format", "json"])
    assert same.exit_code == 0, same.output
    decision = json.loads(same.stdout)["models"][0]["counts"]["decision"]
    assert decision["ratio"] == pytest.approx(1.0, abs=1e-4) and decision["verdict"] == "no significant change"
