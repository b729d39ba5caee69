"""bench.py: the quick run writes every experiment, the report, the plots; reruns resume instead of re-measuring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shufflebench.devices import resolve_device
from shufflebench.report.bench import run_suite

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {"zoo-shufflenet_v2", "zoo-mobilenet_v2", "v1-speedup", "guidelines-g1", "guidelines-g2",
            "guidelines-g3", "guidelines-g4", "breakdown-shufflenet_v1", "breakdown-mobilenet_v2", "fidelity"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "--device", "cpu", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "SHUFFLEBENCH_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr[-2000:]
    return out / "cpu", done.stdout


@pytest.mark.slow
def test_quick_run_writes_every_experiment_and_the_report(quick_run):
    folder, stdout = quick_run
    assert {p.stem for p in folder.glob("*.json")} == EXPECTED
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        assert data["schema"] == "shufflebench.bench/6" and data["device"] == "cpu" and data["seconds"] > 0
    fidelity = json.loads((folder / "fidelity.json").read_text())["data"]
    assert len(fidelity["profile_medians_ms"]) == len(fidelity["profile_ci95_ms"]) == 2  # the quick plan's repeats
    assert all(1 <= worth <= runs for worth, runs in fidelity["profile_effective_runs"])
    assert isinstance(fidelity["profile_cis_share_a_value"], bool)
    report = (folder / "REPORT.md").read_text()
    assert "independent ones; their 95% CIs (widened for dependent runs) share" in report
    for heading in ("## The zoo", "Table 8", "Tables 1-4", "Figure 2", "Measurement fidelity"):
        assert heading in report
    assert "184 ms (1.0x)" in report  # the paper's AlexNet latency beside the measured one
    assert (folder / "zoo.png").read_bytes()[:4] == b"\x89PNG"
    assert "measured 10 experiment(s) this run" in stdout


@pytest.mark.slow
def test_rerun_only_rebuilds_the_report_and_resumes_what_is_missing(quick_run):
    folder, _ = quick_run
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    logs: list[str] = []
    run_suite(resolve_device("cpu"), folder.parent, quick=True, log=logs.append)
    assert logs[-1].startswith("measured 0 experiment(s) this run")
    assert stamps == {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    # An interrupted run leaves some experiments missing (and maybe a damaged file): only those are measured.
    (folder / "guidelines-g3.json").unlink()
    (folder / "fidelity.json").write_text("{not json")
    old = json.loads((folder / "guidelines-g1.json").read_text())
    (folder / "guidelines-g1.json").write_text(json.dumps(dict(old, schema="shufflebench.bench/2")))
    logs.clear()
    run_suite(resolve_device("cpu"), folder.parent, quick=True, log=logs.append)
    measured = [line for line in logs if line.startswith("measuring ")]
    assert measured == ["measuring guidelines-g1 on cpu", "measuring guidelines-g3 on cpu",
                        "measuring fidelity on cpu"]  # g1's file was from an older version
    assert json.loads((folder / "fidelity.json").read_text())["experiment"] == "fidelity"


def test_bench_refuses_an_unknown_device(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "--device", "tpu", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: unknown device 'tpu'")
    assert "Traceback" not in done.stderr
