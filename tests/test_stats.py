"""`Measurement`: statistics derived from raw samples, warnings, and the millisecond dict round trip."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from shufflebench.measure.sampling import SamplingPolicy, collect, median_ci
from shufflebench.measure.stats import Measurement

MS = 1e-3

KEYS = {
    "median_ms", "mean_ms", "p90_ms", "iqr_ms", "min_ms", "max_ms", "ci95_ms", "samples_ms", "warmup_ms",
    "stop_reason", "runs", "effective_runs", "warnings", "policy", "contended_runs", "uncontended_median_ms",
    "cpu_ms", "involuntary_switches", "steal_s",
}


def shuffled(values, seed=0):
    """`values` in a seeded random order: a sorted series is a drifting one, which is not what these tests are about."""
    values = list(values)
    random.Random(seed).shuffle(values)
    return tuple(values)


def test_statistics_worked_by_hand():
    m = Measurement(tuple(x * MS for x in range(10, 0, -1)))  # 10 ms .. 1 ms, out of order
    assert m.median == pytest.approx(5.5 * MS)
    assert m.mean == pytest.approx(5.5 * MS)
    assert m.p90 == pytest.approx(9.1 * MS)  # rank 0.9 * 9 = 8.1 between 9 ms and 10 ms
    assert m.iqr == pytest.approx((7.75 - 3.25) * MS)  # ranks 6.75 and 2.25
    assert (m.min, m.max) == (1 * MS, 10 * MS)
    assert m.ci95 == (2 * MS, 9 * MS)  # n=10 at 95%: ranks 2 and 9
    assert m.runs == 10


def test_statistics_agree_with_numpy():
    rng = random.Random(0)
    samples = tuple(rng.lognormvariate(0, 0.3) * MS for _ in range(257))
    m = Measurement(samples)
    assert m.median == pytest.approx(np.median(samples), rel=1e-12)
    assert m.mean == pytest.approx(np.mean(samples), rel=1e-12)
    assert m.p90 == pytest.approx(np.percentile(samples, 90), rel=1e-12)
    assert m.iqr == pytest.approx(np.percentile(samples, 75) - np.percentile(samples, 25), rel=1e-12)
    assert m.ci95 == median_ci(samples, 0.95)


def test_derived_values_are_lazy():
    m = Measurement((1 * MS, 2 * MS, 3 * MS))
    assert "median" not in m.__dict__
    assert m.median == 2 * MS
    assert "median" in m.__dict__


def test_to_dict_is_milliseconds_and_unrounded():
    samples = (1.234567890123e-3, 1.3e-3, 1.1e-3, 1.2e-3, 1.25e-3, 1.15e-3)
    m = Measurement(samples, warmup_s=(9.87654321e-3,), stop_reason="budget")
    d = m.to_dict()
    assert set(d) == KEYS
    assert d["samples_ms"][0] == samples[0] * 1000.0
    assert d["warmup_ms"] == [9.87654321e-3 * 1000.0]
    assert d["median_ms"] == m.median * 1000.0
    assert d["ci95_ms"] == [m.ci95[0] * 1000.0, m.ci95[1] * 1000.0]
    assert d["runs"] == 6 and d["stop_reason"] == "budget"
    assert Measurement(samples[:3]).to_dict()["ci95_ms"] is None  # too few runs for a 95% interval


def test_from_dict_round_trips_through_json():
    rng = random.Random(1)
    policy = SamplingPolicy(warmup_runs=3, min_runs=5, budget_s=2.5)
    m = Measurement(
        tuple(rng.uniform(0.9, 1.3) * MS for _ in range(40)),
        warmup_s=tuple(rng.uniform(2, 3) * MS for _ in range(3)),
        stop_reason="max_runs",
        policy=policy,
    )
    d = json.loads(json.dumps(m.to_dict()))
    back = Measurement.from_dict(d)
    assert back.to_dict() == d
    assert back.policy == policy and back.stop_reason == "max_runs"
    # ms -> s may move a sample by one unit in the last place; nothing more.
    assert back.samples_s == pytest.approx(m.samples_s, rel=1e-15)


def test_quiet_measurement_has_no_warnings():
    m = Measurement(shuffled((1 + 0.001 * i) * MS for i in range(30)))
    assert m.warnings == ()


def test_noisy_measurement_warns_on_iqr():
    m = Measurement(shuffled((1 + 0.05 * i) * MS for i in range(30)))  # IQR 0.725 ms on a 1.725 ms median
    assert len(m.warnings) == 1
    assert m.warnings[0].startswith("noisy: IQR is 42.0% of the median")


def test_budget_and_max_runs_stops_warn_about_precision():
    samples = tuple((1 + 0.001 * i) * MS for i in range(30))
    budget = Measurement(samples, stop_reason="budget", policy=SamplingPolicy(budget_s=2.0)).warnings
    assert any("stopped on the 2 s budget after 30 runs" in w and "±1.0%" in w for w in budget)
    capped = Measurement(samples, stop_reason="max_runs", policy=SamplingPolicy(min_runs=10, max_runs=30)).warnings
    assert any("stopped on max_runs=30" in w for w in capped)
    few = Measurement(samples[:4], stop_reason="budget").warnings
    assert any("reached unknown (too few runs)" in w for w in few)
    assert all("\n" not in w for w in budget + capped + few)


def test_from_collected_samples():
    clock_now = [0.0]
    durations = iter([2 * MS] * 2 + [1 * MS] * 100)

    def run_once():
        clock_now[0] += next(durations)

    collected = collect(run_once, SamplingPolicy(warmup_runs=2, min_runs=10, min_time_s=0), clock=lambda: clock_now[0])
    m = Measurement.from_samples(collected)
    assert m.runs == 10 and m.stop_reason == "precision"
    assert m.warmup_s == pytest.approx((2 * MS, 2 * MS))
    assert m.median == pytest.approx(1 * MS)


@pytest.mark.parametrize("kwargs, match", [({"samples_s": ()}, "at least one sample"),
                                           ({"samples_s": (1.0,), "stop_reason": "tired"}, "stop_reason")])
def test_invalid_measurements_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Measurement(**kwargs)


# --- contention: runs another process preempted ---------------------------------------------------------------------


def _contended_measurement():
    from shufflebench.measure.sampling import SamplingPolicy, collect_interleaved

    clock = {"now": 0.0, "cpu": 0.0, "switches": 0, "run": 0}

    def usage():
        return clock["cpu"], clock["switches"]

    def run_once():
        # runs of 2 ms; every fourth is descheduled for 5 ms (wall 7 ms, CPU 2 ms); every tenth is preempted briefly
        # (one forced switch, its wall barely longer than its CPU)
        clock["run"] += 1
        clock["cpu"] += 2e-3
        clock["now"] += 2e-3
        if clock["run"] % 4 == 0:
            clock["now"] += 5e-3
        elif clock["run"] % 10 == 0:
            clock["switches"] += 1

    (samples,) = collect_interleaved([run_once], SamplingPolicy(warmup_runs=0, min_runs=100, max_runs=100,
                                                                budget_s=1e9), clock=lambda: clock["now"], usage=usage)
    return Measurement.from_samples(samples)


def test_runs_preempted_or_descheduled_are_counted_as_contended():
    m = _contended_measurement()
    # runs 4, 8, ... 100 descheduled (25 runs); runs 10, 30, 50, 70, 90 preempted (20, 40... are multiples of 4)
    assert m.contended_runs == 25 + 5
    assert m.uncontended_median == pytest.approx(2e-3)
    assert not m.mostly_contended
    (warning,) = [w for w in m.warnings if w.startswith("contended:")]
    assert "30 of 100 runs (30%)" in warning and "median is 2 ms" in warning
    data = m.to_dict()
    assert data["contended_runs"] == 30 and data["uncontended_median_ms"] == pytest.approx(2.0)
    assert Measurement.from_dict(data).contended == m.contended  # the per-run CPU times travel with the samples


def test_a_run_that_gets_its_whole_wall_time_in_cpu_is_not_contended():
    quiet = Measurement((2e-3, 2e-3, 3e-3), cpu_s=(2e-3, 1.95e-3, 3.1e-3), involuntary_switches=(0, 0, 0))
    assert quiet.contended == (False, False, False) and quiet.contended_runs == 0
    assert not any(w.startswith("contended") for w in quiet.warnings)
    busy = Measurement((7e-3, 7e-3, 2e-3), cpu_s=(2e-3, 2e-3, 2e-3), involuntary_switches=(0, 1, 0))
    assert busy.contended == (True, True, False) and busy.mostly_contended
    assert busy.uncontended_median == pytest.approx(2e-3)
    unknown = Measurement((2e-3,))  # stored before CPU time was recorded: nothing is made up
    assert unknown.contended == () and unknown.contended_runs is None and unknown.uncontended_median is None
