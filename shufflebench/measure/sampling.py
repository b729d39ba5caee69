"""Timing loop: warm-up runs, then timed runs until the median is known precisely enough.

STANDARD LIBRARY ONLY: this file is shipped to ARM boards next to `board_runner.py` and `environment.py`, where numpy
may be the only third-party package, and it must import both as ``shufflebench.measure.sampling`` and as a top-level
``sampling`` module.

The stopping rule is distribution-free. Latency samples are skewed and multi-modal (frequency changes, page faults,
a neighbour's burst), so a mean and a normal approximation overstate what is known. The confidence interval of the
median uses order statistics: for n samples sorted ascending, ``[x_(l), x_(n-l+1)]`` covers the true median with
probability ``1 - 2 * P(B <= l-1)``, ``B ~ Binomial(n, 1/2)``, whatever the distribution (given independent runs).
Sampling stops as soon as that interval lies within ``±target_rel_ci`` of the median, and not before ``min_time_s``
of timed runs.

Runs are not always independent. On shared or virtual machines the speed of the whole CPU switches between states that
last tens of milliseconds to seconds (seen here: ShuffleNet V2 alternating between a 5.3 ms and a 7.1 ms mode, a run
followed by a run of the same mode 85% of the time). Consecutive runs then repeat each other, 3000 runs carry the
information of a few hundred, and the binomial interval above is far too narrow: thirty runs that all fell in one state
"reach" ±1% around a median the next invocation misses by 25%. Two guards, both from simulation-output analysis:
``min_time_s`` makes every measurement span several such states, and `dependence_factor` estimates by batch means how
many runs make one independent run's worth, so the interval is computed for the effective sample size.

The clock is injectable, so the loop is tested with a fake clock and seeded noise, deterministically.
"""

from __future__ import annotations

import bisect
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable, Optional, Sequence

try:
    import resource
except ImportError:  # not on every platform a board may run: then no per-run CPU time is recorded
    resource = None  # type: ignore[assignment]

STOP_REASONS = ("precision", "budget", "max_runs", "interrupted")


@dataclass(frozen=True)
class SamplingPolicy:
    """How many runs to take and when to stop (times in seconds).

    warmup_runs: runs before timing starts (always all taken; timed and kept apart, never mixed with the samples).
    min_runs: timed runs always taken, whatever the budget.
    max_runs: timed runs never exceeded.
    budget_s: wall time in seconds PER MODEL measured, WARM-UP RUNS INCLUDED (it is what the user waits for): a call
        that interleaves n models may run ``n * budget_s``. It is checked after each timed round once `min_runs` are
        taken, so a slow model can overrun it by up to ``warmup + min_runs`` runs; it never cuts the warm-up or the
        first `min_runs` runs short.
    target_rel_ci: stop when the median's confidence interval lies within ± this fraction of the median (0.01 = ±1%).
    confidence: coverage of that interval (0.95 = 95%).
    check_every: timed runs between two precision checks, after the first check at `min_runs`.
    min_time_s: seconds of timed runs before the precision rule may stop sampling (the budget still ends it first):
        a measurement shorter than the machine's slow and fast spells reports one spell as if it were the whole.
    turn_runs: when several models are interleaved, the timed runs each model takes in a row per round (its turn;
        never more than min_runs).
    settle_runs: untimed runs at the start of each turn. A model that runs right after another finds its weights and
        buffers evicted and runs cold for a few runs (medians of 40 turns on the 2-core x86 build machine, runs 1 to
        6 of a turn: ShuffleNet V2 0.5x 2.11, 1.93, 1.69, 1.64, 1.64, 1.64 ms; 1.0x 4.87, 4.67, 4.45, 4.37, 4.32,
        4.30 ms, within 0.3% of its steady 4.28 ms from the sixth run on); a user who runs one model over and over
        sees the warm time, so the turns are timed warm. With one model there are no turns: every run follows a
        run of itself.
    """

    warmup_runs: int = 10
    min_runs: int = 20
    max_runs: int = 100000
    budget_s: float = 10.0
    target_rel_ci: float = 0.01
    confidence: float = 0.95
    check_every: int = 10
    min_time_s: float = 2.0
    turn_runs: int = 5
    settle_runs: int = 5

    def __post_init__(self) -> None:
        for name in ("warmup_runs", "min_runs", "max_runs", "check_every", "turn_runs", "settle_runs"):
            value = getattr(self, name)
            # bool is an int subclass; True runs is a caller's mistake, not 1 run.
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"SamplingPolicy.{name}={value!r} is not an integer")
        if self.warmup_runs < 0:
            raise ValueError(f"SamplingPolicy.warmup_runs={self.warmup_runs} is negative; allowed: 0 or more")
        if self.min_runs < 1:
            raise ValueError(f"SamplingPolicy.min_runs={self.min_runs} is too small; allowed: 1 or more")
        if self.max_runs < self.min_runs:
            raise ValueError(
                f"SamplingPolicy.max_runs={self.max_runs} is below min_runs={self.min_runs}; allowed: {self.min_runs} or more"
            )
        if self.turn_runs < 1:
            raise ValueError(f"SamplingPolicy.turn_runs={self.turn_runs} is too small; allowed: 1 or more")
        if self.settle_runs < 0:
            raise ValueError(f"SamplingPolicy.settle_runs={self.settle_runs} is negative; allowed: 0 or more")
        if self.check_every < 1:
            raise ValueError(f"SamplingPolicy.check_every={self.check_every} is too small; allowed: 1 or more")
        for name in ("budget_s", "target_rel_ci", "confidence", "min_time_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"SamplingPolicy.{name}={value!r} is not a finite number")
        if self.budget_s <= 0:
            raise ValueError(f"SamplingPolicy.budget_s={self.budget_s} is not positive; allowed: seconds > 0")
        if self.target_rel_ci <= 0:
            raise ValueError(
                f"SamplingPolicy.target_rel_ci={self.target_rel_ci} is not positive; allowed: a fraction > 0 (0.01 = ±1%)"
            )
        if self.min_time_s < 0:
            raise ValueError(f"SamplingPolicy.min_time_s={self.min_time_s} is negative; allowed: seconds >= 0")
        if not 0 < self.confidence < 1:
            raise ValueError(f"SamplingPolicy.confidence={self.confidence} is out of range; allowed: 0 < confidence < 1")

    def to_dict(self) -> dict:
        """The policy as plain JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SamplingPolicy":
        """Build a policy from `to_dict` output; missing fields take their defaults, unknown fields are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"SamplingPolicy: unknown field {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
        return cls(**data)


@dataclass(frozen=True)
class Samples:
    """What `collect` returns: raw timings in seconds, never rounded.

    samples_s: timed runs in the order taken.
    warmup_s: warm-up runs in the order taken (kept apart; never part of any statistic).
    stop_reason: "precision" (the median's CI reached the target), "budget", "max_runs" or "interrupted" (Ctrl-C
        ended sampling; the rounds finished before it are kept).
    elapsed_s: wall time of the whole call on the same clock, warm-up and checks included.
    cpu_s: CPU seconds the process used during each timed run (every thread), in run order; empty where the
        platform (or the clock: CUDA events) gives no comparable CPU time.
    involuntary_switches: context switches the scheduler forced on the process's threads during each timed run.
    steal_s: CPU seconds the hypervisor took from this machine's CPUs during the whole call (all CPUs together),
        None where the system does not report steal time.
    """

    samples_s: tuple
    warmup_s: tuple
    stop_reason: str
    policy: SamplingPolicy
    elapsed_s: float
    cpu_s: tuple = ()
    involuntary_switches: tuple = ()
    steal_s: Optional[float] = None

    def to_dict(self) -> dict:
        """Plain JSON-able data (lists of floats in seconds, the policy as a dict)."""
        return {
            "samples_s": list(self.samples_s),
            "warmup_s": list(self.warmup_s),
            "stop_reason": self.stop_reason,
            "policy": self.policy.to_dict(),
            "elapsed_s": self.elapsed_s,
            "cpu_s": list(self.cpu_s),
            "involuntary_switches": list(self.involuntary_switches),
            "steal_s": self.steal_s,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Samples":
        """Inverse of `to_dict`."""
        if data.get("stop_reason") not in STOP_REASONS:
            raise ValueError(f"Samples: stop_reason={data.get('stop_reason')!r}; allowed: {', '.join(STOP_REASONS)}")
        return cls(
            samples_s=tuple(float(x) for x in data["samples_s"]),
            warmup_s=tuple(float(x) for x in data["warmup_s"]),
            stop_reason=data["stop_reason"],
            policy=SamplingPolicy.from_dict(data["policy"]),
            elapsed_s=float(data["elapsed_s"]),
            cpu_s=tuple(float(x) for x in data["cpu_s"]),
            involuntary_switches=tuple(int(x) for x in data["involuntary_switches"]),
            steal_s=None if data["steal_s"] is None else float(data["steal_s"]),
        )


#: usage() -> (CPU seconds of the whole process so far, involuntary context switches so far).
Usage = Callable[[], tuple]


def process_usage() -> tuple:
    """CPU seconds this process has used (all its threads) and the involuntary context switches of its threads."""
    return time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def steal_seconds() -> Optional[float]:
    """Steal time of all CPUs so far (seconds) from /proc/stat, None where the system does not report it."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields_ = handle.readline().split()
        return int(fields_[8]) / os.sysconf("SC_CLK_TCK") if fields_[0] == "cpu" and len(fields_) > 8 else None
    except (OSError, ValueError, IndexError, AttributeError):
        return None


_SAME_AS_CLOCK = "the process's CPU time when the clock is time.perf_counter, else nothing"


# Ranks more than 20 standard deviations (sqrt(n)/2 each) below n/2 carry a binomial mass under exp(-200) ~ 1e-87:
# starting the cumulative sum there loses nothing for any confidence a person would ask for, and keeps the cost at
# O(sqrt(n)) instead of O(n) for the 100000-run case.
_TAIL_SIGMAS = 20.0


def median_ci_ranks(n: int, confidence: float) -> Optional[tuple]:
    """1-based ranks ``(l, u)`` of the order statistics bounding the median's distribution-free CI.

    The interval ``[x_(l), x_(u)]`` with ``u = n - l + 1`` and the largest ``l`` whose coverage
    ``1 - 2 * P(Binomial(n, 1/2) <= l - 1)`` is at least `confidence`. Returns None when even ``[min, max]`` covers
    less than `confidence` (n < 6 at 95%: ``1 - 2 / 2**n < 0.95``). Example: n=20 at 95% gives (6, 15).
    """
    if n < 1:
        return None
    alpha_half = (1.0 - confidence) / 2.0
    start = max(0, int(n / 2.0 - _TAIL_SIGMAS * math.sqrt(n) / 2.0))
    log_norm = math.lgamma(n + 1) - n * math.log(2.0)
    pmf = math.exp(log_norm - math.lgamma(start + 1) - math.lgamma(n - start + 1))  # P(B == k)
    cdf = 0.0  # P(B <= k - 1)
    k = start
    # Walk up to the first k with P(B <= k) > alpha/2. Then l = k is the largest rank whose coverage
    # 1 - 2 * P(B <= l - 1) = 1 - 2 * cdf still reaches the confidence. P(B <= n // 2) >= 1/2 > alpha/2 ends the walk.
    while cdf + pmf <= alpha_half:
        cdf += pmf
        pmf *= (n - k) / (k + 1)
        k += 1
    if k == 0:
        return None  # even [min, max] covers less than asked: 1 - 2 / 2**n < confidence
    return k, n - k + 1


def dependence_factor(samples: Sequence[float]) -> float:
    """How many runs, in the order taken, carry one independent run's worth of information about the median (>= 1).

    The median's interval rests on the count of runs below it, a sum of indicators with variance ``n p (1 - p)`` when
    runs are independent. Batch means (Law and Kelton's method for correlated simulation output) estimate the true
    variance: cut the indicator series into ``k`` consecutive batches of ``b = floor(sqrt(n))`` runs; the factor is
    ``b * Var(batch means) / (p (1 - p))``, the integrated autocorrelation time. It is used only when a chi-square test
    (95%, ``k - 1`` degrees of freedom, Wilson-Hilferty) says it is above 1, so independent runs keep their exact
    interval; below 25 runs (fewer than 5 batches of 5) it is 1.
    """
    n = len(samples)
    size = math.isqrt(n)
    batches = n // size if size else 0
    if size < 5 or batches < 5:
        return 1.0
    mid = statistics.median(samples)
    below = [1.0 if x < mid else 0.5 if x == mid else 0.0 for x in samples[: batches * size]]
    p = statistics.fmean(below)
    if p * (1.0 - p) == 0.0:
        return 1.0
    means = [statistics.fmean(below[i : i + size]) for i in range(0, batches * size, size)]
    factor = size * statistics.variance(means) / (p * (1.0 - p))
    dof = batches - 1
    z = statistics.NormalDist().inv_cdf(0.95)
    critical = (1.0 - 2.0 / (9.0 * dof) + z * math.sqrt(2.0 / (9.0 * dof))) ** 3  # chi2_0.95(dof) / dof
    return factor if factor > critical else 1.0


def dependent_median_ci_ranks(n: int, confidence: float, dependence: float) -> Optional[tuple]:
    """`median_ci_ranks` for ``n`` runs that carry the information of ``n / dependence`` independent ones.

    The interval of ``n_eff = floor(n / dependence)`` runs, ranks ``(l, u)``, is carried to the same quantile levels of
    the ``n`` runs: lower rank ``floor((l - 1) * n / n_eff) + 1``. Example: 100 runs at dependence 4 are worth 25,
    whose ranks (8, 18) become (29, 72) instead of the independent (40, 61). None when ``n_eff`` is too small.
    """
    if dependence <= 1.0:
        return median_ci_ranks(n, confidence)
    effective = int(n / dependence)
    ranks = median_ci_ranks(effective, confidence)
    if ranks is None:
        return None
    lower = (ranks[0] - 1) * n // effective + 1
    return lower, n - lower + 1


def median_ci(
    samples: Sequence[float], confidence: float = 0.95, dependence: Optional[float] = None
) -> Optional[tuple]:
    """Confidence interval ``(lo, hi)`` of the median of `samples` (IN RUN ORDER), in the samples' unit.

    Order statistics at the ranks from `dependent_median_ci_ranks`, with `dependence_factor` of the samples unless
    given; None when there are too few (effective) samples for `confidence`.
    """
    if dependence is None:
        dependence = dependence_factor(samples)
    ranks = dependent_median_ci_ranks(len(samples), confidence, dependence)
    if ranks is None:
        return None
    ordered = sorted(samples)
    return ordered[ranks[0] - 1], ordered[ranks[1] - 1]


class _MedianTracker:
    """One model's timed runs, in run order and sorted, and whether their median is known precisely enough.

    The sorted copy grows by insertion (a full sort at each check would cost O(n log n) at 100000 runs), and the O(n)
    dependence factor is refreshed only once the runs have grown by a tenth since it was last computed, so checking
    stays near-linear overall.
    """

    def __init__(self, policy: SamplingPolicy) -> None:
        self.policy = policy
        self.samples: list = []
        self.ordered: list = []
        self.cpu: list = []
        self.switches: list = []
        self._dependence = 1.0
        self._dependence_at = 0

    def append(self, duration: float, cpu: Optional[float] = None, switches: Optional[int] = None) -> None:
        """Take one more timed run (seconds), with the process's CPU seconds and forced switches during it."""
        self.samples.append(duration)
        bisect.insort(self.ordered, duration)
        if cpu is not None:
            self.cpu.append(cpu)
            self.switches.append(switches)

    def keep(self, runs: int) -> None:
        """Keep the first ``runs`` timed runs only."""
        while len(self.samples) > runs:
            del self.ordered[bisect.bisect_left(self.ordered, self.samples.pop())]
        del self.cpu[runs:], self.switches[runs:]

    def _within(self, ranks: Optional[tuple], mid: float) -> bool:
        if ranks is None:
            return False
        allowed_dev = self.policy.target_rel_ci * abs(mid)
        return mid - self.ordered[ranks[0] - 1] <= allowed_dev and self.ordered[ranks[1] - 1] - mid <= allowed_dev

    def precise_enough(self, final: bool = False) -> bool:
        """Whether the median's interval meets the target; `final` recomputes the dependence factor whatever its age."""
        n = len(self.samples)
        confidence = self.policy.confidence
        half = n // 2  # the median straight from the sorted list (statistics.median would sort it again)
        mid = self.ordered[half] if n % 2 else (self.ordered[half - 1] + self.ordered[half]) / 2.0
        # The dependent interval is never narrower than the independent one, which is cheap: try that first.
        if not self._within(median_ci_ranks(n, confidence), mid):
            return False
        if final or n >= self._dependence_at * 1.1:
            self._dependence = dependence_factor(self.samples)
            self._dependence_at = n
        return self._within(dependent_median_ci_ranks(n, confidence, self._dependence), mid)


def collect(
    run_once: Callable[[], object],
    policy: SamplingPolicy = SamplingPolicy(),
    clock: Callable[[], float] = time.perf_counter,
    on_progress: Optional[Callable[[str, int, float], None]] = None,
) -> Samples:
    """Time `run_once` under `policy` and return the raw samples (seconds, unrounded): the interleaved loop of
    `collect_interleaved` with one model, so there is one timing loop and one stopping rule.

    on_progress(phase, runs_done, elapsed_s) is called after every run, phase "warmup" or "timed".
    """
    return collect_interleaved([run_once], policy, clock=clock, on_progress=on_progress)[0]


def turn_shape(policy: SamplingPolicy, count: int) -> tuple[int, int]:
    """The untimed settling runs and the timed runs of one model's turn when ``count`` models are interleaved:
    none and one for a model measured alone; a turn never holds more timed runs than the fewest a caller asked for
    (``min_runs`` 3 stays a short measurement)."""
    return (policy.settle_runs, min(policy.turn_runs, policy.min_runs)) if count > 1 else (0, 1)


def collect_interleaved(
    run_onces: Sequence[Callable[[], object]],
    policy: SamplingPolicy = SamplingPolicy(),
    clock: Callable[[], float] = time.perf_counter,
    on_progress: Optional[Callable[[str, int, float], None]] = None,
    usage: Optional[Usage] | str = _SAME_AS_CLOCK,
) -> list:
    """Time several models round-robin, so drift on a noisy machine hits all of them alike (THE timing loop: one
    model is measured as an interleaved run of one).

    Each run is timed alone as ``clock()`` after minus ``clock()`` before; precision checks and callbacks fall outside
    those brackets. Each round gives every model a turn, the starting model rotating from round to round (A B C,
    B C A, C A B, ...) so no model always goes first. With several models a turn is ``policy.settle_runs`` untimed
    runs (the model warms up again after the others evicted it) and ``policy.turn_runs`` timed ones; with one model,
    one timed run. Sample ``i`` of every model comes from the same round and the same place in its turn: the lists
    are paired, which a paired comparison (a latency ratio per pair) relies on. Warm-up rounds (one run of each
    model) come first and are kept apart. Sampling stops when every model's median CI (at ``policy.confidence``,
    widened for dependent runs) lies within ``±policy.target_rel_ci`` of its median, checked once ``min_runs`` timed
    runs are taken and every ``check_every`` after, once ``min_time_s`` of timed rounds have passed; or when the
    budget is spent: ``budget_s`` PER MODEL, so ``budget_s * len(run_onces)`` seconds on `clock` since the call began,
    warm-up and settling included; or at ``max_runs`` timed runs (the last turn is cut to fit). A run that ends on
    budget or max_runs is checked once more, so stop_reason is "precision" whenever the final samples meet the target.
    Ctrl-C ends it too, keeping every finished round (stop_reason "interrupted"; with no timed round finished, the
    KeyboardInterrupt goes on). Returns one `Samples` per model, in the order given; ``elapsed_s`` is the whole
    call's.

    Around each timed run ``usage()`` records what the run got of the CPU (the process's CPU time and involuntary
    context switches, outside the timed bracket), so a run another process preempted can be told apart
    (`stats.Measurement.contended`). By default that is `process_usage` with the real wall clock and nothing with
    another clock (a fake one in tests, CUDA events), whose times are not comparable with CPU time.

    on_progress(phase, runs_done, elapsed_s) is called after every round (runs_done: warm-up rounds, or timed runs
    of each model).
    """
    count = len(run_onces)
    if count == 0:
        raise ValueError("collect_interleaved needs at least one run_once")
    if usage is _SAME_AS_CLOCK:
        usage = process_usage if clock is time.perf_counter and resource is not None else None
    budget = policy.budget_s * count
    measure_usage: Usage = usage if callable(usage) else process_usage
    steal_before = steal_seconds() if callable(usage) else None
    started = clock()

    settle, turn = turn_shape(policy, count)

    def warmup_round(index: int) -> None:
        for k in range(count):
            which = (index + k) % count
            before = clock()
            run_onces[which]()
            warmups[which].append(clock() - before)

    def timed_run(which: int) -> None:
        if not callable(usage):
            before = clock()
            run_onces[which]()
            trackers[which].append(clock() - before)
            return
        cpu_before, switches_before = measure_usage()
        before = clock()
        run_onces[which]()
        after = clock()
        cpu_after, switches_after = measure_usage()
        trackers[which].append(after - before, cpu_after - cpu_before, switches_after - switches_before)

    def timed_round(index: int, runs: int) -> None:
        for k in range(count):
            which = (index + k) % count
            for _ in range(settle):
                run_onces[which]()  # untimed: the model warms up again after the others ran
            for _ in range(runs):
                timed_run(which)

    warmups: list[list[float]] = [[] for _ in range(count)]
    for r in range(policy.warmup_runs):
        warmup_round(r)
        if on_progress is not None:
            on_progress("warmup", r + 1, clock() - started)
    trackers = [_MedianTracker(policy) for _ in range(count)]
    timed_from = clock()
    stop_reason = None
    rounds = 0
    taken = 0  # timed runs of each model in finished rounds
    next_check = policy.min_runs
    try:
        while stop_reason is None:
            runs = min(turn, policy.max_runs - taken)
            timed_round(rounds, runs)
            rounds += 1
            taken += runs
            now = clock()
            if on_progress is not None:
                on_progress("timed", taken, now - started)
            if taken < policy.min_runs:
                continue
            ending = taken >= policy.max_runs or now - started >= budget
            checking = taken >= next_check and now - timed_from >= policy.min_time_s
            while next_check <= taken:  # the next scheduled check lies past this round
                next_check += policy.check_every
            if checking or ending:
                if all(tracker.precise_enough(final=ending) for tracker in trackers):
                    stop_reason = "precision"
                elif taken >= policy.max_runs:
                    stop_reason = "max_runs"
                elif now - started >= budget:
                    stop_reason = "budget"
    except KeyboardInterrupt:
        # Ctrl-C keeps every finished round (nothing measured is lost); the round it cut short is dropped so the
        # models stay paired. Before the first timed round there is nothing to keep.
        for tracker in trackers:
            tracker.keep(taken)
        if taken == 0:
            raise
        stop_reason = "interrupted"
    elapsed = clock() - started
    steal_after = steal_seconds() if steal_before is not None else None
    steal = steal_after - steal_before if steal_after is not None and steal_before is not None else None
    return [Samples(tuple(t.samples), tuple(w), stop_reason, policy, elapsed, tuple(t.cpu), tuple(t.switches), steal)
            for t, w in zip(trackers, warmups)]
