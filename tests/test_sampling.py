"""The timing loop and the median's confidence interval, with a fake clock and seeded noise (no real timing)."""

from __future__ import annotations

import math
import random
import statistics
from fractions import Fraction

import pytest

from shufflebench.measure.sampling import (
    Samples,
    SamplingPolicy,
    collect,
    collect_interleaved,
    dependence_factor,
    dependent_median_ci_ranks,
    median_ci,
    median_ci_ranks,
)
from shufflebench.measure.stats import Measurement


class FakeClock:
    """A clock that only moves when a fake run says so: each run advances it by the next duration given."""

    def __init__(self, durations):
        self.now = 100.0
        self._durations = iter(durations)
        self.runs = 0

    def __call__(self) -> float:
        return self.now

    def run_once(self) -> None:
        self.now += next(self._durations)
        self.runs += 1


def noisy(mean_s: float, rel_sd: float, seed: int):
    """Endless Gaussian durations around `mean_s` with relative standard deviation `rel_sd` (never below 1% of it)."""
    rng = random.Random(seed)
    while True:
        yield max(mean_s * 0.01, rng.gauss(mean_s, mean_s * rel_sd))


def two_state(seed: int, stay: float = 0.95, fast_s: float = 5.3e-3, slow_s: float = 7.1e-3, sd_s: float = 0.4e-3):
    """Endless durations from a machine that switches between a fast and a slow spell (as this project's build VMs
    do: ShuffleNet V2 at 5.3 ms and 7.1 ms); a run stays in its predecessor's spell with probability `stay`. The
    long-run median is the midpoint of the two means, by symmetry: 6.2 ms by default."""
    rng = random.Random(seed)
    slow = False
    while True:
        if rng.random() > stay:
            slow = not slow
        yield rng.gauss(slow_s if slow else fast_s, sd_s)


def run(policy: SamplingPolicy, durations) -> tuple:
    clock = FakeClock(durations)
    return collect(clock.run_once, policy, clock=clock), clock


# --- the policy ----------------------------------------------------------------------------------------------------


def test_policy_defaults():
    p = SamplingPolicy()
    assert (p.warmup_runs, p.min_runs, p.max_runs, p.budget_s, p.target_rel_ci, p.confidence, p.check_every,
            p.min_time_s) == (10, 20, 100000, 10.0, 0.01, 0.95, 10, 2.0)


@pytest.mark.parametrize(
    "field, value",
    [
        ("warmup_runs", -1),
        ("warmup_runs", 1.5),
        ("min_runs", 0),
        ("min_runs", True),
        ("max_runs", 5),  # below min_runs=20
        ("budget_s", 0),
        ("budget_s", math.inf),
        ("budget_s", "10"),
        ("target_rel_ci", 0.0),
        ("target_rel_ci", math.nan),
        ("confidence", 1.0),
        ("confidence", 0.0),
        ("check_every", 0),
        ("min_time_s", -0.5),
        ("min_time_s", math.nan),
    ],
)
def test_policy_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"SamplingPolicy\.{field}="):
        SamplingPolicy(**{field: value})


def test_policy_dict_round_trip_and_unknown_fields():
    p = SamplingPolicy(warmup_runs=1, min_runs=3, budget_s=1.0)
    assert SamplingPolicy.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="unknown field 'runs'"):
        SamplingPolicy.from_dict({"runs": 3})


# --- the order-statistic confidence interval of the median ---------------------------------------------------------


def brute_force_ranks(n: int, confidence: float):
    """Largest l with exact coverage 1 - 2 * P(Binomial(n, 1/2) <= l - 1) >= confidence, in exact arithmetic."""
    target = Fraction(confidence)
    best = None
    below = 0  # sum of C(n, j) for j <= l - 1
    for lower in range(1, n // 2 + 2):
        below += math.comb(n, lower - 1)
        coverage = 1 - Fraction(2 * below, 2**n)
        if coverage < target:
            break
        best = lower
    return None if best is None else (best, n - best + 1)


def test_ranks_hand_worked_n20_at_95():
    # P(B <= 5) = 21700 / 2**20 = 0.0207, so [x_(6), x_(15)] covers 95.86%;
    # P(B <= 6) = 60460 / 2**20 = 0.0577 would leave only 88.5% for [x_(7), x_(14)].
    assert sum(math.comb(20, j) for j in range(6)) == 21700
    assert median_ci_ranks(20, 0.95) == (6, 15)


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9, 0.95, 0.99, 0.999])
def test_ranks_match_exact_brute_force(confidence):
    for n in list(range(1, 121)) + [255, 1000, 1001]:
        assert median_ci_ranks(n, confidence) == brute_force_ranks(n, confidence), n


def test_ranks_need_six_runs_at_95():
    # [min, max] covers 1 - 2 / 2**n: 93.75% at n=5, 96.9% at n=6.
    assert median_ci_ranks(5, 0.95) is None
    assert median_ci_ranks(6, 0.95) == (1, 6)
    assert median_ci_ranks(0, 0.95) is None


def test_ranks_large_n_near_normal_approximation():
    n = 100000
    lower, upper = median_ci_ranks(n, 0.95)
    expected = n / 2 - 1.959964 * math.sqrt(n) / 2
    assert abs(lower - expected) <= 2
    assert upper == n - lower + 1


def test_median_ci_values_are_order_statistics():
    values = list(range(20))
    random.Random(3).shuffle(values)
    assert median_ci(values, 0.95) == (5, 14)  # ranks 6 and 15, 1-based
    assert median_ci([1.0, 2.0, 3.0], 0.95) is None


# --- the loop ------------------------------------------------------------------------------------------------------


def test_quiet_run_stops_on_precision_at_min_runs():
    samples, clock = run(SamplingPolicy(min_time_s=0), noisy(1e-3, 0.001, seed=1))
    assert samples.stop_reason == "precision"
    assert len(samples.samples_s) == 20
    assert len(samples.warmup_s) == 10
    assert clock.runs == 30


def test_precision_cannot_stop_before_min_time():
    # 1 ms runs, precise from the start: the first check after 0.5 s of timed runs (warm-up not counted) is at run
    # 500 (min_runs 20 + a multiple of check_every 10); float sums may put run 500 a hair short, hence 510.
    samples, _ = run(SamplingPolicy(warmup_runs=5, min_time_s=0.5), noisy(1e-3, 0.001, seed=1))
    assert samples.stop_reason == "precision"
    assert len(samples.samples_s) in (500, 510)
    assert sum(samples.samples_s) >= 0.5


def test_budget_ends_a_run_before_min_time():
    samples, _ = run(SamplingPolicy(warmup_runs=0, min_time_s=5.0, budget_s=0.1), noisy(1e-3, 0.001, seed=1))
    assert len(samples.samples_s) in (100, 101)
    assert samples.stop_reason == "precision"  # the final check at the budget sees the target met


def test_warmups_are_timed_and_kept_apart():
    warm = [5e-3, 4e-3, 3e-3]
    durations = iter(warm + [1e-3] * 1000)
    samples, _ = run(SamplingPolicy(min_time_s=0, warmup_runs=3), durations)
    assert samples.warmup_s == pytest.approx(tuple(warm), rel=1e-9)
    assert max(samples.samples_s) == pytest.approx(1e-3, rel=1e-9)


def test_samples_are_not_rounded():
    odd = 1.234567890123e-3
    samples, _ = run(SamplingPolicy(min_time_s=0, warmup_runs=0, min_runs=6), iter([odd] * 100))
    # The fake clock starts at 100.0, so the subtraction itself is exact only to ~1e-14; no rounding beyond that.
    assert all(abs(s - odd) < 1e-13 for s in samples.samples_s)
    assert samples.samples_s[0] != round(samples.samples_s[0], 9)


def test_very_noisy_run_stops_on_budget_counting_warmups():
    policy = SamplingPolicy(warmup_runs=10, budget_s=0.5)
    samples, _ = run(policy, noisy(1e-3, 0.30, seed=2))
    assert samples.stop_reason == "budget"
    spent = sum(samples.warmup_s) + sum(samples.samples_s)
    # It stops at the first run that crosses the budget, and the budget's clock started before the warm-up runs.
    assert spent >= policy.budget_s
    assert spent - samples.samples_s[-1] < policy.budget_s
    assert samples.elapsed_s == pytest.approx(spent, rel=1e-9)


def test_the_budget_is_per_model_when_models_are_interleaved():
    # Three models of 10 ms each, far too noisy to reach the target: a 0.5 s budget per model ends the interleaved
    # run once 1.5 s (3 x 0.5 s) are spent, at the first round that crosses it, so ~50 rounds of three runs.
    # Turns of one timed run and no settling, so every run is a sample.
    clock = FakeClock(noisy(10e-3, 0.5, seed=6))
    policy = SamplingPolicy(warmup_runs=0, min_runs=5, budget_s=0.5, min_time_s=0.0, turn_runs=1, settle_runs=0)
    samples = collect_interleaved([clock.run_once] * 3, policy, clock=clock)
    assert {s.stop_reason for s in samples} == {"budget"}
    spent = sum(sum(s.samples_s) for s in samples)
    last_round = sum(s.samples_s[-1] for s in samples)
    assert spent >= 1.5 > spent - last_round
    assert samples[0].elapsed_s == pytest.approx(spent, rel=1e-9)


class ColdAfterOthers:
    """Fake models that run cold right after another model ran: 3 ms, then 2 ms, then 1 ms from their third run in
    a row on (the shape measured for ShuffleNet V2 0.5x after other models: 2.11, 1.93, 1.69, 1.63 ms). Each run
    advances the fake clock and is logged by model index."""

    def __init__(self, count: int):
        self.now = 0.0
        self.log: list[int] = []
        self.run_onces = [lambda i=i: self._run(i) for i in range(count)]

    def __call__(self) -> float:
        return self.now

    def _run(self, index: int) -> None:
        streak = 0
        for previous in reversed(self.log):
            if previous != index:
                break
            streak += 1
        self.log.append(index)
        self.now += (3e-3, 2e-3)[streak] if streak < 2 else 1e-3


def test_turns_settle_each_model_before_timing_it_and_stay_paired():
    fake = ColdAfterOthers(2)
    policy = SamplingPolicy(warmup_runs=1, min_runs=8, max_runs=8, budget_s=1e9, turn_runs=4, settle_runs=2)
    first, second = collect_interleaved(fake.run_onces, policy, clock=fake)
    # A warm-up round (one run each), then turns of 2 untimed + 4 timed runs, the first model rotating.
    assert fake.log == [0, 1] + [0] * 6 + [1] * 6 + [1] * 6 + [0] * 6
    # Warm: the cold runs were the untimed ones.
    assert first.samples_s == pytest.approx((1e-3,) * 8) and second.samples_s == pytest.approx((1e-3,) * 8)
    assert first.warmup_s == pytest.approx((3e-3,)) and second.warmup_s == pytest.approx((3e-3,))
    # max_runs ended it and the final check found eight identical runs precise enough. Time: the warm-up round
    # (3 + 3 ms), three turns that start cold (3 + 2 ms settling, 4 x 1 ms) and one that follows its own model (6 x 1).
    assert first.stop_reason == "precision" and first.elapsed_s == pytest.approx(6e-3 + 3 * 9e-3 + 6e-3)


def test_without_turns_interleaved_models_are_timed_cold():
    # What the turns fix: one run per model per round times every run right after the other model, cold.
    fake = ColdAfterOthers(2)
    policy = SamplingPolicy(warmup_runs=0, min_runs=6, max_runs=6, budget_s=1e9, turn_runs=1, settle_runs=0)
    first, second = collect_interleaved(fake.run_onces, policy, clock=fake)
    assert fake.log == [0, 1, 1, 0] * 3
    # A model that ends a round starts the next one (its second run in a row: 2 ms); every other run is its first.
    assert first.samples_s == pytest.approx((3e-3, 3e-3, 2e-3, 3e-3, 2e-3, 3e-3))
    assert second.samples_s == pytest.approx((3e-3, 2e-3, 3e-3, 2e-3, 3e-3, 2e-3))


def test_the_last_turn_is_cut_to_max_runs_and_one_model_has_no_turns():
    fake = ColdAfterOthers(2)
    policy = SamplingPolicy(warmup_runs=0, min_runs=5, max_runs=10, budget_s=1e9, turn_runs=4, settle_runs=1,
                            target_rel_ci=1e-9)
    first, second = collect_interleaved(fake.run_onces, policy, clock=fake)
    assert len(first.samples_s) == len(second.samples_s) == 10
    assert fake.log == [0] * 5 + [1] * 5 + [1] * 5 + [0] * 5 + [0] * 3 + [1] * 3
    alone = ColdAfterOthers(1)
    samples = collect_interleaved(alone.run_onces, policy, clock=alone)[0]
    assert alone.log == [0] * 10 and len(samples.samples_s) == 10  # no settling runs: each run follows itself
    short = ColdAfterOthers(2)  # a turn never holds more timed runs than min_runs
    collect_interleaved(short.run_onces, SamplingPolicy(warmup_runs=0, min_runs=3, max_runs=3, budget_s=1e9,
                                                        turn_runs=8, settle_runs=2), clock=short)
    assert short.log == [0] * 5 + [1] * 5


def test_max_runs_ends_a_noisy_run():
    samples, _ = run(SamplingPolicy(warmup_runs=0, max_runs=50, budget_s=1e9), noisy(1e-3, 0.30, seed=4))
    assert samples.stop_reason == "max_runs"
    assert len(samples.samples_s) == 50


def test_min_runs_are_taken_even_past_the_budget():
    samples, _ = run(SamplingPolicy(warmup_runs=2, min_runs=5, budget_s=0.1), noisy(1.0, 0.2, seed=5))
    assert samples.stop_reason == "budget"
    assert len(samples.samples_s) == 5
    assert len(samples.warmup_s) == 2


def test_precision_is_checked_every_check_every_runs():
    policy = SamplingPolicy(warmup_runs=0, min_runs=20, check_every=10, budget_s=1e9, min_time_s=0)
    samples, _ = run(policy, noisy(1e-3, 0.05, seed=6))
    n = len(samples.samples_s)
    assert samples.stop_reason == "precision"
    assert n > policy.min_runs and (n - policy.min_runs) % policy.check_every == 0

    def precise(values):
        lo, hi = median_ci(values, policy.confidence)
        mid = statistics.median(values)
        return mid - lo <= policy.target_rel_ci * mid and hi - mid <= policy.target_rel_ci * mid

    assert precise(list(samples.samples_s))
    assert not precise(list(samples.samples_s[: n - policy.check_every]))  # the check before did not pass


def test_a_budget_stop_that_meets_the_target_reports_precision():
    # Noisy first 20 runs fail the check at min_runs; 40 identical runs later the median's CI has zero width, but
    # the next check (check_every=100) is far away: the budget ends it and the final check sees the precision.
    noise = noisy(1e-3, 0.5, seed=7)
    durations = [next(noise) for _ in range(20)] + [1e-3] * 1000
    policy = SamplingPolicy(warmup_runs=0, min_runs=20, check_every=100, budget_s=sum(durations[:60]) - 1e-12)
    samples, _ = run(policy, iter(durations))
    assert len(samples.samples_s) == 60
    assert samples.stop_reason == "precision"


def test_collect_is_deterministic_for_a_seed():
    policy = SamplingPolicy(warmup_runs=3, budget_s=0.2)
    first, _ = run(policy, noisy(1e-3, 0.1, seed=8))
    second, _ = run(policy, noisy(1e-3, 0.1, seed=8))
    assert first == second


def test_progress_reports_each_run():
    seen = []
    clock = FakeClock(noisy(1e-3, 0.001, seed=9))
    collect(clock.run_once, SamplingPolicy(warmup_runs=2, min_time_s=0), clock=clock,
            on_progress=lambda *a: seen.append(a))
    assert [(phase, n) for phase, n, _ in seen] == [("warmup", 1), ("warmup", 2)] + [("timed", i) for i in range(1, 21)]
    assert all(later[2] >= earlier[2] for earlier, later in zip(seen, seen[1:]))


def test_samples_dict_round_trip():
    samples, _ = run(SamplingPolicy(warmup_runs=1, min_runs=6), noisy(1e-3, 0.001, seed=10))
    assert Samples.from_dict(samples.to_dict()) == samples
    with pytest.raises(ValueError, match="stop_reason"):
        Samples.from_dict(dict(samples.to_dict(), stop_reason="bored"))


def test_many_runs_stay_cheap():
    # 20000 runs with a precision check every 10: the incremental sort and O(sqrt n) ranks keep this well under
    # a second (a full sort per check would not).
    samples, _ = run(SamplingPolicy(warmup_runs=0, max_runs=20000, budget_s=1e9, target_rel_ci=1e-6),
                     noisy(1e-3, 0.3, seed=11))
    assert samples.stop_reason == "max_runs"
    assert len(samples.samples_s) == 20000


# --- dependent runs ------------------------------------------------------------------------------------------------


def test_dependence_factor_is_one_for_independent_runs():
    rng = random.Random(1)
    for _ in range(5):
        assert dependence_factor([rng.random() for _ in range(3000)]) == 1.0
    assert dependence_factor([1.0] * 100) == 1.0  # all tied: nothing to estimate
    assert dependence_factor(list(range(24))) == 1.0  # under 25 runs: too few batches to say


def test_dependence_factor_of_a_two_state_machine():
    # Indicator autocorrelation 2 * 0.95 - 1 = 0.9 at lag 1, decaying geometrically: integrated time
    # (1 + 0.9) / (1 - 0.9) = 19; batch means of 54 runs underestimate it a little (by about 2 * 0.9 / (0.01 * 54)).
    durations = two_state(seed=0)
    factor = dependence_factor([next(durations) for _ in range(3000)])
    assert 12 < factor < 25
    # a steady trend: every batch lies wholly on one side of the median, the most batch means of 54 runs can tell
    assert dependence_factor(sorted(next(durations) for _ in range(3000))) == pytest.approx(54, rel=0.02)


def test_dependent_ranks_hand_worked():
    assert median_ci_ranks(100, 0.95) == (40, 61)
    assert dependent_median_ci_ranks(100, 0.95, 1.0) == (40, 61)
    # worth 25 runs, whose 95% ranks are (8, 18): P(B <= 7) = 0.0216 <= 0.025 < P(B <= 8) = 0.0539 for Bin(25, 1/2);
    # rank 8 of 25 sits at the level of rank floor(7 * 100 / 25) + 1 = 29 of 100
    assert sum(math.comb(25, j) for j in range(8)) / 2**25 == pytest.approx(0.0216, abs=1e-4)
    assert dependent_median_ci_ranks(100, 0.95, 4.0) == (29, 72)
    assert dependent_median_ci_ranks(20, 0.95, 4.0) is None  # worth 5 runs: too few for 95%


def test_interval_covers_a_drifting_machines_median():
    # 20 seeded measurements of 3 s on a two-state machine. The widened interval covers the long-run median
    # (6.2 ms) about as often as it claims; the independent one, about half the time.
    widened = independent = 0
    for seed in range(20):
        samples, _ = run(SamplingPolicy(warmup_runs=5, budget_s=3.0), two_state(seed))
        m = Measurement.from_samples(samples)
        lo, hi = m.ci95
        widened += lo <= 6.2e-3 <= hi
        lo, hi = median_ci(samples.samples_s, 0.95, dependence=1.0)
        independent += lo <= 6.2e-3 <= hi
        assert samples.stop_reason == "budget"  # ±1% is out of reach there, and the result says so
    assert widened >= 18
    assert independent <= 12


def test_a_drifting_measurement_says_so():
    samples, _ = run(SamplingPolicy(warmup_runs=5, budget_s=3.0), two_state(seed=3))
    m = Measurement.from_samples(samples)
    assert m.dependence > 3 and m.effective_runs == int(m.runs / m.dependence)
    drifting = [w for w in m.warnings if w.startswith("drifting:")]
    assert drifting == [
        f"drifting: consecutive runs repeat each other ({m.runs} runs are worth about {m.effective_runs} independent "
        "ones); the machine's speed changed while measuring, so another invocation may land outside the CI: compare "
        "models interleaved (compare, regress), not across runs"
    ]
    assert m.to_dict()["effective_runs"] == m.effective_runs


def test_a_slow_spell_at_the_start_is_not_the_answer():
    # Spells of about 200 runs (stay 0.995) with little jitter inside them. Stopping as soon as the independent
    # interval allows reports the spell the measurement began in; min_time_s keeps sampling across spells.
    hasty, _ = run(SamplingPolicy(warmup_runs=0, min_time_s=0), two_state(seed=2, stay=0.995, sd_s=0.02e-3))
    assert hasty.stop_reason == "precision" and len(hasty.samples_s) == 20
    patient, _ = run(SamplingPolicy(warmup_runs=0), two_state(seed=2, stay=0.995, sd_s=0.02e-3))
    assert sum(patient.samples_s) >= 2.0
    times = patient.samples_s
    assert min(times) < 5.5e-3 and max(times) > 6.9e-3  # both spells seen
