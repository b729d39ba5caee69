"""`shufflebench sweep` on a real Ray cluster: one local cluster on loopback for the whole module (starting one takes
seconds), simulated devices with one custom resource each, fake measurements (no timing), and real faults: a
measuring process killed with SIGKILL mid-measurement, a builder that is not a model, an SSH board that cannot be
reached, an interrupted run resumed."""

from __future__ import annotations

import json
import logging
import os
import signal
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app
from shufflebench.devices import resolve_device
from shufflebench.measure.sampling import SamplingPolicy
from shufflebench.sweep.engine import run_sweep
from shufflebench.sweep.plan import COUNT_STAGE, Mode, plan_sweep
from shufflebench.sweep.resources import node_resources
from shufflebench.sweep.space import parse_space
from shufflebench.sweep.store import Store
from tests.fixtures.sweep_fakes import FakeMeasure, calls

ray = pytest.importorskip("ray", reason="sweeps need Ray: pip install 'shufflebench[scale]'")

FAKES = "tests.fixtures.sweep_fakes"
POLICY = SamplingPolicy(budget_s=0.5, warmup_runs=1, min_runs=3, min_time_s=0.0)


def _profile(folder: Path, name: str, location: str, extra: str = "") -> Path:
    kind = "cpu" if location == "local" else "arm"
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\ndescription = "simulated"\nkind = "{kind}"\nbackend = "onnxruntime"\n'
                    f'location = "{location}"\n{extra}')
    return path


@pytest.fixture(scope="module")
def devices(tmp_path_factory):
    """Simulated devices: two boards (``ssh``: they measure in parallel), two on this machine's cores (``local``:
    never at the same time), and a board on a closed port (the real SSH path, unreachable)."""
    from tests.conftest import free_port

    folder = tmp_path_factory.mktemp("devices")
    paths = {name: _profile(folder, name, "ssh", f'host = "{name}"\n') for name in ("sim-a", "sim-b")}
    paths.update({name: _profile(folder, name, "local") for name in ("sim-local-1", "sim-local-2")})
    paths["sim-gone"] = _profile(folder, "sim-gone", "ssh", f'host = "127.0.0.1"\nport = {free_port()}\n'
                                 'ssh_options = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", '
                                 '"-o", "UserKnownHostsFile=/dev/null"]\n')
    return {name: resolve_device(str(path)) for name, path in paths.items()}


@pytest.fixture(scope="module")
def cluster(devices):
    """One local Ray on 127.0.0.1 with 2 CPUs and a resource per simulated device, shared by every test here (the
    engine uses a Ray already started in its process and leaves it running)."""
    ray.init(address="local", num_cpus=2, resources=node_resources(devices.values()), include_dashboard=False,
             log_to_driver=False, logging_level=logging.ERROR, _node_ip_address="127.0.0.1",
             object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


def sweep(store, space, devices, measure, *, retries=1, mode=Mode.MEASURE, on_update=None):
    plan = plan_sweep(store, parse_space(space), devices, mode)
    return run_sweep(plan, store, POLICY, measure=measure, retries=retries, on_update=on_update)


def test_two_devices_a_killed_process_a_broken_builder_and_a_process_that_always_dies(cluster, devices, tmp_path):
    log = str(tmp_path / "calls.log")
    fake = FakeMeasure(log, hold_first=("c16",), kill_always=("c24",), scale=(("sim-b", 2.0),))
    killed: list[int] = []

    def kill_the_held_process(stages, now):  # SIGKILL from outside, in the middle of c16's first measurement
        for pid_file in tmp_path.glob("calls.log.c16.*.pid"):
            killed.append(int(pid_file.read_text()))
            os.kill(killed[-1], signal.SIGKILL)
            pid_file.unlink()

    with Store(tmp_path / "s.sqlite") as store:
        summary = sweep(store, [f"{FAKES}:space_with_a_broken_builder"], [devices["sim-a"], devices["sim-b"]], fake,
                        on_update=kill_the_held_process)
        rows = {(row.label, row.device): row for row in store.rows()}
        failures = store.count_failures()

    # counting ran as Ray tasks: the real counts; "broken" is not retried (a UsageError stays one)
    for width in (8, 16, 24, 32):
        assert rows[(f"c{width}", "sim-a")].cost.flops_madd == width * 3 * 9 * 64
    (broken,) = failures.values()
    assert broken == ("attempt 1: UsageError: tests.fixtures.sweep_fakes:space_with_a_broken_builder/broken: the "
                      "builder returned int, not a torch.nn.Module")
    assert ("broken", "sim-a") not in rows  # never counted, never measured
    # killed mid-measurement once on each device: measured again by a fresh process, recorded once
    assert len(killed) == 2
    for device, scale in (("sim-a", 1.0), ("sim-b", 2.0)):
        row = rows[("c16", device)]
        assert (row.status, row.attempts) == ("ok", 2)
        assert row.median_ms == pytest.approx(16 * 3 * 9 * 64 * 1e-6 * scale)
        (measured_by,) = [pid for name, dev, pid, *_ in calls(log) if (name, dev) == ("c16", device)]
        assert measured_by not in killed
        # a process that dies every time: retried once (--retries 1), then recorded with both reasons
        dead = rows[("c24", device)]
        assert (dead.status, dead.attempts) == ("failed", 2)
        assert dead.error.startswith("attempt 1: the measuring process died (") and "; attempt 2: the measuring " \
            "process died (" in dead.error
        assert rows[("c8", device)].attempts == rows[("c32", device)].attempts == 1
    stages = {stage.name: stage for stage in summary.stages}
    assert (stages[COUNT_STAGE].done, stages[COUNT_STAGE].failed, stages[COUNT_STAGE].retried) == (4, 1, 0)
    assert [(stages[d].done, stages[d].failed, stages[d].retried) for d in ("sim-a", "sim-b")] == [(3, 1, 2)] * 2
    assert summary.exit_code == 1 and not summary.interrupted
    assert len(summary.failures) == 3
    # exactly one row per architecture and device, however many attempts
    assert len(rows) == 8 and sorted(c[0] for c in calls(log)) == sorted(["c8", "c16", "c32"] * 2)


def test_an_interrupted_sweep_keeps_what_finished_and_the_rerun_measures_only_the_rest(cluster, devices, tmp_path):
    log = str(tmp_path / "calls.log")
    fake = FakeMeasure(log, sleep_s=0.2)
    space = [f"{FAKES}:space"]

    def interrupt_after_two(stages, now):
        if sum(stage.done for stage in stages if stage.name != COUNT_STAGE) >= 2:
            raise KeyboardInterrupt

    with Store(tmp_path / "s.sqlite") as store:
        first = sweep(store, space, [devices["sim-a"]], fake, on_update=interrupt_after_two)
        kept = store.measured("sim-a")
        assert first.interrupted and first.exit_code == 130
        assert 2 <= len(kept) < 4 and len(store.counts()) == 4
        second = sweep(store, space, [devices["sim-a"]], fake)
        assert store.measured("sim-a") == {a.key for a in parse_space(space)}
        third = sweep(store, space, [devices["sim-a"]], fake)
    measured = [name for name, *_ in calls(log)]
    assert sorted(measured) == ["c16", "c24", "c32", "c8"]  # each once: nothing measured twice
    stage = next(s for s in second.stages if s.name == "sim-a")
    assert (stage.done_before, stage.total, stage.done) == (len(kept), 4 - len(kept), 4 - len(kept))
    assert third.cluster == "none (nothing to do)" and third.exit_code == 0


def test_devices_on_this_machine_s_cores_never_measure_at_the_same_time(cluster, devices, tmp_path):
    log = str(tmp_path / "calls.log")
    with Store(tmp_path / "s.sqlite") as store:
        summary = sweep(store, [f"{FAKES}:space"], [devices["sim-local-1"], devices["sim-local-2"]],
                        FakeMeasure(log, sleep_s=0.3))
    assert summary.exit_code == 0
    spans = {device: [(start, end) for _, d, _, start, end in calls(log) if d == device]
             for device in ("sim-local-1", "sim-local-2")}
    assert [len(s) for s in spans.values()] == [4, 4]
    first, second = sorted(spans.values(), key=min)
    assert max(end for _, end in first) <= min(start for start, _ in second)  # one device after the other


def test_a_board_that_cannot_be_reached_is_retried_then_recorded_with_the_reason(cluster, devices, tmp_path,
                                                                                 monkeypatch):
    if not shutil.which("ssh"):
        pytest.skip("ssh client not installed (apt-get install openssh-client)")
    from shufflebench.profile import profile_model

    with Store(tmp_path / "s.sqlite") as store:
        summary = sweep(store, [f"{FAKES}:space"], [devices["sim-gone"]], profile_model, retries=1)
        rows = store.rows()
    stage = next(s for s in summary.stages if s.name == "sim-gone")
    # three architectures failed in a row: the board is given up for this run, the fourth stays missing
    assert (stage.failed, stage.retried, stage.left) == (3, 3, 1) and stage.stopped.startswith("given up after 3")
    assert len(rows) == 3 and {row.status for row in rows} == {"failed"}
    for row in rows:
        assert row.attempts == 2
        first, second = row.error.split("; ")
        assert first.startswith("attempt 1: SetupError: cannot reach 127.0.0.1:") and "Connection refused" in first
        assert second.startswith("attempt 2: SetupError: cannot reach")


def test_the_command_line_counts_reports_and_resumes(cluster, tmp_path):
    runner = CliRunner()
    store = str(tmp_path / "cli.sqlite")
    result = runner.invoke(app, ["sweep", f"{FAKES}:space", "--mode", "count", "--store", store, "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["schema"] == "shufflebench.sweep/1" and summary["stages"][0]["done"] == 4
    again = json.loads(runner.invoke(app, ["sweep", f"{FAKES}:space", "--mode", "count", "--store", store,
                                           "--format", "json"]).stdout)
    assert again["stages"][0]["done"] == 0 and again["stages"][0]["done_before"] == 4
    report = runner.invoke(app, ["sweep", "report", "--store", store, "--format", "json"])
    assert report.exit_code == 0, report.output
    rows = json.loads(report.stdout)["rows"]
    assert [(r["label"], r["flops_madd"], r["device"]) for r in rows] == [
        (f"c{w}", w * 1728, None) for w in (8, 16, 24, 32)]
    assert runner.invoke(app, ["sweep", "report", "--store", store, "--format", "csv"]).stdout.count("\n") == 5


def test_a_cluster_without_the_device_s_resource_is_refused_before_anything_runs(cluster, tmp_path):
    result = CliRunner().invoke(app, ["sweep", f"{FAKES}:space", "--device", "cpu", "--store",
                                      str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: no node of the Ray cluster declares 'shufflebench_device_cpu' for device "
                                     "'cpu'; start the node that reaches it with --resources '$(shufflebench sweep "
                                     "resources cpu)'")


def test_predict_mode_predicts_every_architecture_from_the_stored_calibration_without_the_device(
        cluster, tmp_path, monkeypatch):
    from shufflebench.latency.calibration import save_calibration, stored_path
    from shufflebench.latency.predictor import predict_model
    from shufflebench.sweep.work import prepare_architecture
    from tests.fixtures.calibration import fake_calibration

    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))
    calibration = fake_calibration()
    save_calibration(calibration, stored_path(calibration))
    store = str(tmp_path / "p.sqlite")
    # The cluster declares no resource for `cpu`: a prediction needs the device's calibration, not the device.
    args = ["sweep", f"{FAKES}:space", "--mode", "predict", "--device", "cpu", "--store", store, "--format", "json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stages = {stage["stage"]: stage for stage in json.loads(result.stdout)["stages"]}
    assert (stages[COUNT_STAGE]["done"], stages["cpu"]["done"], stages["cpu"]["emulated"]) == (4, 4, False)
    with Store(store) as db:
        rows = db.rows(["cpu"])
        expected = [predict_model(prepare_architecture(arch), calibration).predicted_ms
                    for arch, _ in db.architectures()]
    assert [row.label for row in rows] == ["c8", "c16", "c24", "c32"]
    assert [row.predicted_ms for row in rows] == pytest.approx(expected, rel=1e-9)
    assert expected == sorted(expected) and expected[0] > 0  # wider convolutions are predicted slower
    assert all(row.status is None and row.median_ms is None for row in rows)  # nothing was measured
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert [(s["stage"], s["done"], s["done_before"]) for s in again["stages"]] == [(COUNT_STAGE, 0, 4), ("cpu", 0, 4)]
