"""Ctrl-C keeps what finished: the timing loop keeps its finished rounds, compare and guidelines print them marked
INCOMPLETE and exit 130; before anything finished, one line and exit 130. A fake Ctrl-C is raised from inside a run,
as the real one arrives."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import shufflebench.measure.sampling as sampling
from shufflebench.cli import app
from shufflebench.measure.sampling import SamplingPolicy, collect_interleaved

QUICK = ["--warmup", "0", "--min-time", "0"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def interrupted_at(call: int, **turns) -> list:
    """Three fake models of 10 ms interleaved (no warm-up) until Ctrl-C arrives inside the ``call``-th run."""
    clock = FakeClock()
    calls = {"n": 0}

    def run_once() -> None:
        calls["n"] += 1
        clock.now += 0.01
        if calls["n"] == call:
            raise KeyboardInterrupt

    return collect_interleaved([run_once] * 3, SamplingPolicy(warmup_runs=0, min_runs=100, budget_s=1e9, **turns),
                               clock=clock)


def test_ctrl_c_keeps_the_finished_rounds_paired():
    # In the middle of round 8, two of its three runs done.
    samples = interrupted_at(3 * 7 + 2, turn_runs=1, settle_runs=0)
    assert [len(s.samples_s) for s in samples] == [7, 7, 7]  # the round it cut short is dropped: still paired
    assert {s.stop_reason for s in samples} == {"interrupted"}


def test_ctrl_c_in_a_turn_keeps_the_finished_rounds_of_turns():
    # Rounds of 3 models x (1 settling + 4 timed runs); in round 5's second turn.
    samples = interrupted_at(3 * 5 * 4 + 7, turn_runs=4, settle_runs=1)
    assert [len(s.samples_s) for s in samples] == [16, 16, 16]  # four finished rounds of four timed runs
    assert {s.stop_reason for s in samples} == {"interrupted"}


def test_ctrl_c_before_the_first_timed_round_goes_on_up():
    def run_once() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect_interleaved([run_once], SamplingPolicy(warmup_runs=0), clock=FakeClock())


TURN = SamplingPolicy().turn_runs  # timed runs of each model per round when several are interleaved


def ctrl_c_after(monkeypatch, calls_before: int, rounds: int) -> None:
    """Make the `calls_before`-th interleaved measurement of this process (0: the first) receive a Ctrl-C after
    ``rounds`` rounds (no warm-up: a round is every model's turn of settling and timed runs, or one run of a model
    measured alone); the others run normally."""
    real = sampling.collect_interleaved
    seen = {"calls": 0}

    def collect(run_onces, policy, clock=sampling.time.perf_counter, on_progress=None):
        call, seen["calls"] = seen["calls"], seen["calls"] + 1
        if call != calls_before:
            return real(run_onces, policy, clock=clock, on_progress=on_progress)
        runs = {"n": 0}
        turn = min(policy.turn_runs, policy.min_runs)
        per_round = len(run_onces) * (policy.settle_runs + turn) if len(run_onces) > 1 else 1

        def wrapped(run_once):
            def run() -> object:
                runs["n"] += 1
                if runs["n"] > rounds * per_round:
                    raise KeyboardInterrupt
                return run_once()
            return run

        return real([wrapped(r) for r in run_onces], policy, clock=clock, on_progress=on_progress)

    monkeypatch.setattr(sampling, "collect_interleaved", collect)


def test_compare_interrupted_prints_the_rounds_that_finished(monkeypatch, tmp_path):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    ctrl_c_after(monkeypatch, calls_before=0, rounds=6)
    out = tmp_path / "cmp.json"
    result = CliRunner().invoke(app, ["compare", "g1:resolution=8", "g1:resolution=8,ratio=12", "--format", "json",
                                      "--budget", "30", "--min-runs", "1000", "--output", str(out), *QUICK])
    assert result.exit_code == 130, result.output
    data = json.loads(result.stdout)
    assert [m["latency"]["runs"] for m in data["models"]] == [6 * TURN, 6 * TURN]
    assert {m["latency"]["stop_reason"] for m in data["models"]} == {"interrupted"}
    assert json.loads(out.read_text()) == data  # and written, as asked
    (line,) = result.stderr.strip().splitlines()
    assert line == "error: interrupted (Ctrl-C): what finished is shown above, marked INCOMPLETE"
    table = CliRunner()
    ctrl_c_after(monkeypatch, calls_before=0, rounds=4)
    shown = table.invoke(app, ["compare", "g1:resolution=8", "g1:resolution=8,ratio=12", "--budget", "30",
                               "--min-runs", "1000", *QUICK])
    assert shown.exit_code == 130 and "INCOMPLETE: interrupted (Ctrl-C)" in shown.stdout


def test_guidelines_interrupted_keeps_the_experiments_that_finished(monkeypatch, tmp_path):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    ctrl_c_after(monkeypatch, calls_before=1, rounds=5)  # g1 finishes, g2 is cut after 5 rounds
    result = CliRunner().invoke(app, ["guidelines", "--only", "g1,g2,g3", "--widths", "1", "--format", "json",
                                      "--budget", "0.5", "--min-runs", "3", *QUICK])
    assert result.exit_code == 130, result.output
    data = json.loads(result.stdout)
    assert data["complete"] is False
    assert [e["experiment"] for e in data["experiments"]] == ["g1", "g2"]  # g3 never started
    assert all(row["measured"]["1"]["runs"] == 5 * 3 for row in data["experiments"][1]["rows"])  # turns of min-runs
    assert "interrupted" in result.stderr


def test_a_ctrl_c_before_anything_finished_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    ctrl_c_after(monkeypatch, calls_before=0, rounds=0)
    result = CliRunner().invoke(app, ["profile", "g1:resolution=8", "--budget", "5", *QUICK])
    assert result.exit_code == 130
    (line,) = result.stderr.strip().splitlines()
    assert line == "error: interrupted (Ctrl-C) before any measurement finished; nothing to keep"
    assert result.stdout == ""
