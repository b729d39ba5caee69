"""The latency verdict of `regress`, driven by the real interleaved timing loop with a fake clock and seeded noise.

No real timing here: every "run" advances a fake clock by a duration drawn from a seeded generator, so each test
gives the same numbers on every machine.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest

from shufflebench.errors import UsageError
from shufflebench.measure.sampling import SamplingPolicy, collect_interleaved
from shufflebench.regress.decide import (
    FASTER,
    NO_CHANGE,
    SLOWER,
    block_length,
    decide,
    minimum_detectable_effect,
    parse_fraction,
)

BASE_S = 2.5e-3  # ShuffleNet V2 1.0x on one x86 core takes about this long


class NoisyMachine:
    """A fake clock plus fake models whose run time is ``true latency x machine state x own noise``.

    The machine state is shared by everything that runs in the same stretch of time: a slow random walk (frequency,
    temperature) and, now and then, a burst from a neighbour that slows a few consecutive runs by 30%. Each run
    also gets its own log-normal jitter (``jitter`` = its sigma) and, rarely, a 50% outlier (a page fault).
    """

    def __init__(self, seed: int, jitter: float = 0.02):
        self.now = 50.0
        self.rng = random.Random(seed)
        self.jitter = jitter
        self.drift = 0.0
        self.burst = 0

    def clock(self) -> float:
        return self.now

    def model(self, latency_s: float):
        def run_once() -> None:
            self.drift = max(-0.05, min(0.05, self.drift + self.rng.gauss(0, 0.002)))
            if self.burst == 0 and self.rng.random() < 0.01:
                self.burst = self.rng.randint(2, 8)
            state = math.exp(self.drift) * (1.3 if self.burst else 1.0)
            self.burst = max(0, self.burst - 1)
            noise = math.exp(self.rng.gauss(0, self.jitter)) * (1.5 if self.rng.random() < 0.01 else 1.0)
            self.now += latency_s * state * noise

        return run_once


def measure(slowdown: float, seed: int, rounds: int = 300, jitter: float = 0.02):
    """Candidate (``BASE_S * (1 + slowdown)``) and baseline timed interleaved for exactly ``rounds`` rounds."""
    machine = NoisyMachine(seed, jitter)
    policy = SamplingPolicy(warmup_runs=5, min_runs=rounds, max_runs=rounds, budget_s=1e9)
    cand, base = collect_interleaved([machine.model(BASE_S * (1 + slowdown)), machine.model(BASE_S)], policy,
                                     clock=machine.clock)
    assert len(cand.samples_s) == len(base.samples_s) == rounds
    return cand.samples_s, base.samples_s


@pytest.mark.parametrize(
    "slowdown, verdict, regression",
    [
        (0.0, NO_CHANGE, False),
        (0.03, SLOWER, False),  # real and detected, but within the 5% threshold: reported, not failed
        (0.10, SLOWER, True),
        (0.30, SLOWER, True),
        (-0.20, FASTER, False),
    ],
)
def test_verdicts_for_known_slowdowns(slowdown, verdict, regression):
    cand, base = measure(slowdown, seed=11)
    d = decide(cand, base)  # the defaults: 5% threshold, 2% minimum effect
    assert d.verdict == verdict
    assert d.regression is regression
    # The interval covers the true ratio, and the point estimate is within a percent of it.
    assert d.ci[0] <= 1 + slowdown <= d.ci[1]
    assert d.ratio == pytest.approx(1 + slowdown, abs=0.01)
    # 300 rounds at 2% jitter pin the ratio to a couple of percent; the MDE says so.
    assert 0.003 < d.mde < 0.03
    assert d.paired and d.rounds == (300, 300)


def test_three_percent_slowdown_description_names_the_threshold():
    d = decide(*measure(0.03, seed=11), threshold=0.05)
    text = d.describe()
    assert text.startswith("slower: +3.3% (95% CI +2.8% to +3.9%)")
    assert "not shown to exceed the 5.0% threshold" in text
    assert decide(*measure(0.10, seed=11)).describe().endswith("beyond the 5.0% threshold")


def test_a_zero_threshold_still_needs_the_minimum_effect():
    cand, base = measure(0.03, seed=11)
    assert decide(cand, base, threshold=0.0, min_effect=0.01).regression is True
    assert decide(cand, base, threshold=0.0, min_effect=0.05).verdict == NO_CHANGE


def test_same_timings_same_interval():
    cand, base = measure(0.10, seed=3)
    first, second = decide(cand, base), decide(cand, base)
    assert first == second
    other_seed = decide(cand, base, seed=1)
    assert other_seed.ratio == first.ratio
    assert other_seed.ci != first.ci  # the seed does drive the resampling...
    assert other_seed.ci == pytest.approx(first.ci, rel=0.01)  # ...but not the conclusion


def test_false_alarms_and_detections_over_many_seeds():
    """The statistical promise, checked by simulation: at the threshold itself the gate fails in few runs (the
    nominal rate is 2.5%); identical models never fail; a slowdown twice the threshold is nearly always caught."""
    trials = 60
    identical = sum(decide(*measure(0.0, seed=s, rounds=200), resamples=500).regression for s in range(trials))
    at_threshold = sum(decide(*measure(0.05, seed=s, rounds=200), resamples=500).regression for s in range(trials))
    double = sum(decide(*measure(0.10, seed=s, rounds=200), resamples=500).regression for s in range(trials))
    assert identical == 0
    assert at_threshold <= 4  # 2.5% of 60 is 1.5; 4 leaves room for seeded bad luck, not for a broken gate
    assert double >= trials - 1


def test_pairing_cancels_drift_that_an_unpaired_bootstrap_counts_as_noise():
    cand, base = measure(0.0, seed=5, rounds=400)
    paired = decide(cand, base, paired=True)
    unpaired = decide(cand, base, paired=False)
    assert paired.mde < unpaired.mde
    assert not unpaired.paired


def test_mde_grows_with_the_noise():
    quiet = decide(*measure(0.0, seed=7, jitter=0.01))
    loud = decide(*measure(0.0, seed=7, jitter=0.08))
    assert loud.mde > 2.5 * quiet.mde
    assert not quiet.warnings
    assert any("minimum detectable effect" in w for w in decide(*measure(0.0, seed=7, rounds=40, jitter=0.3)).warnings)


def test_mde_formula():
    # (z_0.975 + z_0.80) = 1.95996 + 0.84162 = 2.80158
    assert minimum_detectable_effect(0.01) == pytest.approx(math.expm1(0.0280158), rel=1e-5)
    assert minimum_detectable_effect(0.0) == 0.0


def test_noise_free_timings_give_a_point_interval():
    d = decide([1.1] * 50, [1.0] * 50)
    assert d.ratio == pytest.approx(1.1)
    assert d.ci == pytest.approx((1.1, 1.1))
    assert d.mde == pytest.approx(0.0, abs=1e-12)
    assert d.verdict == SLOWER and d.regression


def test_too_few_rounds_warns():
    d = decide([1.0, 1.1, 1.0, 1.05], [1.0, 1.0, 1.02, 0.99])
    assert any("only 4 rounds" in w for w in d.warnings)


def test_block_length():
    # n ** (1/3), but never under a turn's 5 timed runs (nor over n): 1, 1, 2, 3, 7, 10 without the turns.
    assert SamplingPolicy().turn_runs == 5
    assert [block_length(n) for n in (1, 3, 8, 27, 300, 1000)] == [1, 3, 5, 5, 7, 10]


@pytest.mark.parametrize(
    "args, message",
    [
        (([], [1.0]), "needs timings"),
        (([1.0, 2.0], [1.0]), "differ in length"),
        (([1.0, 0.0], [1.0, 1.0]), "positive"),
    ],
)
def test_bad_timings_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        decide(*args)


@pytest.mark.parametrize("text, value", [("5%", 0.05), ("0.05", 0.05), (" 2.5 % ", 0.025), ("0%", 0.0), (".1", 0.1)])
def test_parse_fraction(text, value):
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("abc", "--threshold 'abc' is not a percentage"),
        ("-5%", "is negative"),
        ("5", "is ambiguous; write 5% for a percentage"),
        ("150%", "is too large"),
        ("", "is not a percentage"),
    ],
)
def test_parse_fraction_refuses(text, message):
    with pytest.raises(UsageError, match=message):
        parse_fraction(text)


def test_median_ratio_is_the_ratio_of_medians():
    cand = [3.0, 1.0, 2.0, 10.0, 2.0]
    base = [1.0, 1.0, 1.0, 1.0, 2.0]
    assert decide(cand, base, resamples=100).ratio == statistics.median(cand) / statistics.median(base)
