"""The sweep store (SQLite), the plan of a run, the Pareto front, the report's formats and the progress arithmetic:
everything of a sweep that needs no Ray."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest
from rich.console import Console

from shufflebench.cost import CostSummary
from shufflebench.devices import resolve_device
from shufflebench.errors import UsageError
from shufflebench.measure.sampling import SamplingPolicy
from shufflebench.measure.stats import Measurement
from shufflebench.models import ModelIdentity
from shufflebench.profile import ProfileResult
from shufflebench.report.sweep import render_report, render_summary, report_csv
from shufflebench.sweep.plan import COUNT_STAGE, Mode, Stage, SweepSummary, plan_sweep
from shufflebench.sweep.results import pareto_front, read_report
from shufflebench.sweep.space import Architecture
from shufflebench.sweep.store import STORE_SCHEMA, Store
from shufflebench.sweep.work import DeviceRun

CPU = resolve_device("cpu")


def arch(name: str) -> Architecture:
    return Architecture("callable", f"pkg.space:space/{name}", (1, 3, 8, 8), label=name)


def cost(madd: int) -> CostSummary:
    return CostSummary(madd, madd // 10, {"relu": 5}, {"eager": 3 * madd, "deployed": 2 * madd},
                       {"eager": 12 * madd, "deployed": 8 * madd})


def run(a: Architecture, samples_ms: tuple[float, ...], device=CPU) -> DeviceRun:
    measurement = Measurement(tuple(x / 1e3 for x in samples_ms), warmup_s=(0.5,), policy=SamplingPolicy(budget_s=3.0))
    identity = ModelIdentity(a.target, a.target, a.label, "callable", {}, a.input_shape)
    result = ProfileResult(identity, device, cost(1000), measurement, {"cpu_model": "test cpu", "warnings": []},
                           {"threads": 1}, device.emulated)
    return DeviceRun(result, "host:1", 1700000000.0, 2.5)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "sweep.sqlite") as opened:
        yield opened


def test_a_measurement_round_trips_with_its_raw_samples_environment_and_schema(store):
    a = arch("c8")
    store.add_architectures([a])
    store.put_counts(a.key, cost(13824))
    samples = (1.5, 1.25, 1.75, 1.5, 1.625, 1.375, 1.5)
    store.put_measurement(a.key, run(a, samples))
    back = store.measurement(a.key, "cpu")
    assert back.samples_s == tuple(x / 1e3 for x in samples)
    assert back.warmup_s == (0.5,) and back.policy.budget_s == 3.0
    assert store.environment(a.key, "cpu")["cpu_model"] == "test cpu"
    assert store.counts()[a.key] == cost(13824)
    (row,) = store.rows()
    assert (row.label, row.device, row.status, row.attempts) == ("c8", "cpu", "ok", 1)
    assert row.median_ms == pytest.approx(1.5) and row.runs == 7
    assert row.architecture == a and row.cost.flops_madd == 13824
    raw = sqlite3.connect(store.path).execute("SELECT schema, median_ms, runs FROM rows").fetchone()
    assert raw == (STORE_SCHEMA, pytest.approx(1.5), 7)


def test_upserts_never_duplicate_a_row_and_attempts_add_up(store):
    a = arch("c8")
    store.add_architectures([a, a])
    store.add_architectures([a])
    store.put_measurement_failure(a.key, "cpu", "attempt 1: the measuring process died", attempts=1)
    store.put_measurement_failure(a.key, "cpu", "attempt 1: ssh dropped", attempts=1)
    assert store.measured("cpu") == set()  # failed: a rerun tries it again
    store.put_counts(a.key, cost(100))
    store.put_measurement(a.key, run(a, (2.0,)), attempts=2)
    store.put_measurement(a.key, run(a, (3.0,)), attempts=1)
    (row,) = store.rows()
    assert (row.status, row.attempts, row.error, row.median_ms) == ("ok", 1 + 1 + 2 + 1, None, pytest.approx(3.0))
    store.put_measurement_failure(a.key, "cpu", "late failure", attempts=1)  # a good row keeps its measurement
    assert store.measurement(a.key, "cpu").samples_s == (0.003,)
    assert store.rows()[0].error is None
    count = sqlite3.connect(store.path).execute("SELECT count(*) FROM measurements").fetchone()[0]
    assert count == 1 and len(store.architectures()) == 1


def test_a_file_that_is_not_a_store_of_this_schema_is_refused(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, just text" * 10)
    with pytest.raises(UsageError, match=r"is not a sweep store"):
        Store(junk)
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()
    with pytest.raises(UsageError, match=r"a store of version 7; this shufflebench reads shufflebench.sweep-store/1"):
        Store(other)
    with pytest.raises(UsageError, match=r"does not exist; run `shufflebench sweep"):
        Store(tmp_path / "missing.sqlite", create=False)


def test_the_plan_is_what_the_store_lacks(store):
    a, b, c = arch("a"), arch("b"), arch("c")
    store.add_architectures([a, b])
    store.put_counts(a.key, cost(10))
    store.put_count_failure(b.key, "attempt 1: UsageError: broken", attempts=1)
    store.put_measurement(a.key, run(a, (1.0,)))
    plan = plan_sweep(store, [a, b, c], [CPU], Mode.MEASURE)
    assert plan.to_count == (b, c)  # a failed count is tried again
    assert plan.per_device == {"cpu": (b, c)}
    assert plan.done_before == {COUNT_STAGE: 1, "cpu": 1}
    assert plan_sweep(store, [a], [CPU], Mode.MEASURE).empty
    assert plan_sweep(store, [a], [], Mode.COUNT).empty


def test_the_pareto_front_is_worked_out_by_hand(store):
    # (name, multiply-adds, median ms): "slow" is beaten by "mid" (faster, more MAdd), "tie" by "mid" (as fast,
    # fewer MAdd), "big" is slowest but has the most multiply-adds, "tiny" is the fastest.
    table = [("tiny", 10, 1.0), ("mid", 50, 2.0), ("tie", 40, 2.0), ("slow", 30, 3.0), ("big", 90, 5.0)]
    for name, madd, ms in table:
        a = arch(name)
        store.add_architectures([a])
        store.put_counts(a.key, cost(madd))
        store.put_measurement(a.key, run(a, (ms,)))
    broken = arch("broken")
    store.add_architectures([broken])
    store.put_counts(broken.key, cost(1000))
    store.put_measurement_failure(broken.key, "cpu", "died", attempts=3)
    front = pareto_front(store.rows(["cpu"]))
    assert [row.label for row in front] == ["tiny", "mid", "big"]
    report = read_report(store)
    assert report.pareto == {"cpu": tuple(row.key for row in front)}
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert [(r["label"], r["pareto"]) for r in rows if r["status"] == "ok"] == [
        ("tiny", "True"), ("mid", "True"), ("tie", "False"), ("slow", "False"), ("big", "True")]
    failed = next(r for r in rows if r["label"] == "broken")
    assert (failed["status"], failed["attempts"], failed["error"], failed["median_ms"]) == ("failed", "3", "died", "")
    data = report.to_dict()
    assert data["schema"] == "shufflebench.sweep-report/1" and data["counted"] == 6
    json.dumps(data)
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(render_report(report))
    text = console.file.getvalue()
    assert "cpu: Pareto front, 3 architectures" in text and "failed" in text


def test_a_report_names_the_devices_it_has(store):
    with pytest.raises(UsageError, match=r"^the store has no row for device 'arm'; it has: none$"):
        read_report(store, ["arm"])


def test_counts_only_architectures_are_rows_without_a_device(store):
    a = arch("a")
    store.add_architectures([a])
    store.put_counts(a.key, cost(10))
    (row,) = read_report(store).rows
    assert row.device is None and row.cost.flops_madd == 10
    assert list(csv.DictReader(io.StringIO(report_csv(read_report(store)))))[0]["device"] == ""


def test_rate_and_time_left_follow_a_fake_clock():
    stage = Stage("cpu", total=10)
    assert stage.rate_per_min(100.0) is None and stage.eta_s(100.0) is None
    stage.started_at = 100.0
    stage.done, stage.failed = 3, 1
    assert stage.rate_per_min(220.0) == pytest.approx(2.0)  # 4 finished in 120 s
    assert stage.eta_s(220.0) == pytest.approx(180.0)  # 6 left at 2 per minute
    stage.finished_at = 160.0
    assert stage.rate_per_min() == pytest.approx(4.0)
    stage.done, stage.finished_at = 9, 400.0
    assert stage.eta_s(500.0) == 0.0
    assert stage.rate_per_min(500.0) == pytest.approx(2.0)  # finished: the rate stops at its last result


def test_the_summary_round_trips_and_says_how_it_ended():
    stages = (Stage(COUNT_STAGE, 4, 0, 4, 0, 0, False, 10.0, 20.0),
              Stage("cpu", 4, 1, 3, 1, 2, False, 15.0, 45.0, stopped=None))
    summary = SweepSummary(Mode.MEASURE, "s.sqlite", 5, stages, False, 40.0, "local (embedded)",
                           {"k on cpu": "attempt 1: died; attempt 2: died; attempt 3: died"})
    assert SweepSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary
    assert summary.exit_code == 1
    assert summary.to_dict()["stages"][1]["per_minute"] == pytest.approx(8.0)
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(render_summary(summary))
    text = console.file.getvalue()
    assert "failed: k on cpu: attempt 1: died" in text and "3/4" in text


def test_the_progress_bar_shows_done_rate_time_left_and_failures_per_stage():
    from shufflebench.cli_sweep import SweepProgress

    console = Console(file=io.StringIO(), width=120, color_system=None)
    stages = [Stage(COUNT_STAGE, 0, 4), Stage("cpu", 10, 0, 3, 1, 2, started_at=100.0),
              Stage("arm-emulated", 10)]
    with SweepProgress(console) as bar:
        bar.update(stages, 220.0)
        console.print(bar.table())
    lines = [line.strip() for line in console.file.getvalue().splitlines() if "cpu" in line or "arm" in line]
    cpu = next(line for line in lines if line.startswith("cpu"))
    assert "4/10" in cpu and "2.0/min" in cpu and "0:03:00 left" in cpu and "1 failed, 2 retried" in cpu
    assert "0/10" in next(line for line in lines if line.startswith("arm-emulated")) and "waiting" in lines[-1]
    assert not any(line.startswith("counting") for line in lines)  # nothing to count: no bar


def test_a_device_with_predictions_only_gets_its_front_on_predicted_latency_never_mixed_with_measured(store):
    # On "cpu" both are stored: the front is on the measured medians ("b" is measured slower than "c" though
    # predicted faster). On "arm" there are predictions only: "c" (predicted 3.0 ms) is beaten by "b" (2.0 ms, more
    # multiply-adds).
    table = [("a", 10, 1.0, 1.0), ("b", 50, 4.0, 2.0), ("c", 30, 3.0, 3.0)]
    for name, madd, measured_ms, predicted_ms in table:
        a = arch(name)
        store.add_architectures([a])
        store.put_counts(a.key, cost(madd))
        store.put_measurement(a.key, run(a, (measured_ms,)))
        store.put_prediction(a.key, "cpu", predicted_ms, "test predictor")
        store.put_prediction(a.key, "arm", predicted_ms, "test predictor")
    report = read_report(store)
    assert report.basis == {"arm": "predicted", "cpu": "measured"}
    assert [row.label for row in report.front("cpu")] == ["a", "c", "b"]
    assert [row.label for row in report.front("arm")] == ["a", "b"]
    assert report.to_dict()["pareto_basis"] == {"arm": "predicted", "cpu": "measured"}


def test_the_plot_draws_every_device(store, tmp_path):
    pytest.importorskip("matplotlib")
    from shufflebench.report.sweep import plot_report

    for name, madd, ms in (("a", 10, 1.0), ("b", 50, 2.0), ("c", 30, 3.0)):
        a = arch(name)
        store.add_architectures([a])
        store.put_counts(a.key, cost(madd))
        store.put_measurement(a.key, run(a, (ms,)))
        store.put_prediction(a.key, "cpu", ms * 1.1, "test predictor")
    report = read_report(store)
    assert [row.predicted_ms for row in report.rows] == [pytest.approx(1.1), pytest.approx(2.2), pytest.approx(3.3)]
    path = plot_report(report, tmp_path / "sweep.png")
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
