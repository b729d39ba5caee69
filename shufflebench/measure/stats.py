"""`Measurement`: raw latency samples plus the statistics derived from them, lazily.

Modelled on ``torch.utils.benchmark.Measurement`` and pyperf: the object keeps what was measured (samples and warm-up
runs in seconds, why sampling stopped, the policy it ran under) and derives median, mean, p90, IQR, min, max and the
median's 95% confidence interval on first use. Nothing is rounded before it is stored; display code rounds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional, Sequence

from .sampling import STOP_REASONS, Samples, SamplingPolicy, dependence_factor, median_ci

# IQR above this fraction of the median marks a noisy measurement (torch.utils.benchmark warns at the same level).
NOISY_IQR_FRACTION = 0.10
# From this dependence factor on (a third of the runs' worth of information or less) a measurement is flagged as
# drifting: its interval is already widened for it, but the machine's state in the next invocation is anyone's guess.
# Independent runs reach 3 by chance rarely (batch-means factor ~ chi2(k-1)/(k-1): 0.14% at 10 batches, 1.7% at 5).
DRIFTING_DEPENDENCE = 3.0

# A run is CONTENDED (another task had the CPU during it) when its process was switched out involuntarily, or when
# its wall time exceeds the CPU time the process got by more than this fraction of it plus this floor (seconds): a
# run that computes the whole time gets at least its wall time in CPU. The floor covers the clock reads inside the
# CPU bracket and timer granularity.
DESCHEDULED_FRACTION = 0.03
DESCHEDULED_FLOOR_S = 20e-6
# From this share of contended runs on, a measurement warns "contended:".
CONTENDED_WARNING_SHARE = 0.10

_MS = 1000.0  # seconds -> milliseconds


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default "linear" method) of sorted data."""
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Measurement:
    """Raw timings of one model under one setting, in seconds, and statistics derived from them on first use.

    samples_s: timed runs, in order. warmup_s: warm-up runs, in order, never part of a statistic.
    stop_reason: "precision", "budget", "max_runs" or "interrupted" (see `sampling.collect_interleaved`).
    policy: the `SamplingPolicy` used. cpu_s, involuntary_switches: per timed run, the CPU seconds the process got
    and the times its threads were switched out involuntarily (empty when not recorded). steal_s: the hypervisor's
    steal time during the measurement (seconds, all CPUs; None when unknown).
    """

    samples_s: tuple
    warmup_s: tuple = ()
    stop_reason: str = "precision"
    policy: SamplingPolicy = field(default_factory=SamplingPolicy)
    cpu_s: tuple = ()
    involuntary_switches: tuple = ()
    steal_s: Optional[float] = None

    def __post_init__(self) -> None:
        if not self.samples_s:
            raise ValueError("Measurement needs at least one sample")
        if self.stop_reason not in STOP_REASONS:
            raise ValueError(f"Measurement.stop_reason={self.stop_reason!r}; allowed: {', '.join(STOP_REASONS)}")
        # Tuples keep the frozen object hashable-ish and stop callers from appending to a list they passed in.
        object.__setattr__(self, "samples_s", tuple(float(x) for x in self.samples_s))
        object.__setattr__(self, "warmup_s", tuple(float(x) for x in self.warmup_s))
        object.__setattr__(self, "cpu_s", tuple(float(x) for x in self.cpu_s))
        object.__setattr__(self, "involuntary_switches", tuple(int(x) for x in self.involuntary_switches))

    @classmethod
    def from_samples(cls, samples: Samples) -> "Measurement":
        """Wrap what `sampling.collect` returned."""
        return cls(samples.samples_s, samples.warmup_s, samples.stop_reason, samples.policy, samples.cpu_s,
                   samples.involuntary_switches, samples.steal_s)

    @cached_property
    def contended(self) -> tuple:
        """Per timed run: did another task have the CPU during it? True when the process was switched out
        involuntarily (any of its threads: the rule for several threads, whose CPU time adds up past the wall time),
        or when the run's wall time exceeds the CPU time the process got by more than 3% plus 20 us (a single thread
        computing the whole run gets its whole wall time). Empty when CPU time was not recorded."""
        if len(self.cpu_s) != self.runs:
            return ()
        return tuple(switches > 0 or wall - cpu > DESCHEDULED_FRACTION * wall + DESCHEDULED_FLOOR_S
                     for wall, cpu, switches in zip(self.samples_s, self.cpu_s, self.involuntary_switches))

    @property
    def contended_runs(self) -> Optional[int]:
        """How many timed runs were contended (None when CPU time was not recorded)."""
        return sum(self.contended) if self.contended else None

    @cached_property
    def uncontended_median(self) -> Optional[float]:
        """Median of the runs no other task disturbed (seconds); None when unknown or when every run was."""
        clean = [wall for wall, busy in zip(self.samples_s, self.contended) if not busy]
        return statistics.median(clean) if clean else None

    @property
    def mostly_contended(self) -> bool:
        """More than half the runs were contended: the median is then the contended machine's latency."""
        return bool(self.contended_runs) and 2 * (self.contended_runs or 0) > self.runs

    # cached_property writes to the instance __dict__ directly, so it works on a frozen dataclass.
    @cached_property
    def _ordered(self) -> tuple:
        return tuple(sorted(self.samples_s))

    @property
    def interrupted(self) -> bool:
        """Ctrl-C ended sampling: the samples are what finished before it."""
        return self.stop_reason == "interrupted"

    @property
    def runs(self) -> int:
        """Number of timed runs."""
        return len(self.samples_s)

    @cached_property
    def median(self) -> float:
        """Median latency in seconds."""
        return statistics.median(self._ordered)

    @cached_property
    def mean(self) -> float:
        """Mean latency in seconds."""
        return statistics.fmean(self.samples_s)

    @cached_property
    def p90(self) -> float:
        """90th percentile latency in seconds (linear interpolation between ranks)."""
        return _quantile(self._ordered, 0.90)

    @cached_property
    def iqr(self) -> float:
        """Interquartile range (p75 - p25) in seconds."""
        return _quantile(self._ordered, 0.75) - _quantile(self._ordered, 0.25)

    @property
    def min(self) -> float:
        """Fastest run in seconds."""
        return self._ordered[0]

    @property
    def max(self) -> float:
        """Slowest run in seconds."""
        return self._ordered[-1]

    @cached_property
    def dependence(self) -> float:
        """How many consecutive runs make one independent run's worth (>= 1; see `sampling.dependence_factor`)."""
        return dependence_factor(self.samples_s)

    @property
    def effective_runs(self) -> int:
        """The independent runs the samples are worth: ``runs / dependence``, rounded down."""
        return int(self.runs / self.dependence)

    @cached_property
    def ci95(self) -> Optional[tuple]:
        """Distribution-free 95% confidence interval ``(lo, hi)`` of the median in seconds, widened for dependent
        runs; None below 6 (effective) runs."""
        return median_ci(self.samples_s, 0.95, self.dependence)

    @cached_property
    def ci(self) -> Optional[tuple]:
        """The median's confidence interval at the policy's confidence (what the stopping rule used), in seconds."""
        return median_ci(self.samples_s, self.policy.confidence, self.dependence)

    @property
    def rel_ci(self) -> float:
        """Largest distance from the median to an end of `ci`, as a fraction of the median (inf when unknown)."""
        if self.ci is None or self.median == 0:
            return math.inf
        return max(self.median - self.ci[0], self.ci[1] - self.median) / abs(self.median)

    @cached_property
    def warnings(self) -> tuple:
        """One-line warnings about how far the numbers can be trusted (empty when none)."""
        found = []
        if self.median > 0 and self.iqr / self.median > NOISY_IQR_FRACTION:
            found.append(
                f"noisy: IQR is {self.iqr / self.median:.1%} of the median (over {NOISY_IQR_FRACTION:.0%}); "
                "close other programs, pin threads or measure longer"
            )
        if self.dependence >= DRIFTING_DEPENDENCE:
            found.append(
                f"drifting: consecutive runs repeat each other ({self.runs} runs are worth about "
                f"{self.effective_runs} independent ones); the machine's speed changed while measuring, so another "
                "invocation may land outside the CI: compare models interleaved (compare, regress), not across runs"
            )
        if self.contended_runs and self.contended_runs > CONTENDED_WARNING_SHARE * self.runs:
            clean = self.uncontended_median
            found.append(
                f"contended: {self.contended_runs} of {self.runs} runs ({self.contended_runs / self.runs:.0%}) were "
                "descheduled or preempted by another process; "
                + (f"the uncontended runs' median is {clean * _MS:.4g} ms" if clean is not None else
                   "no run was free of it") + "; quiet the machine or pin the process to a free core"
            )
        if self.steal_s is not None and self.steal_s > 0.05 * self._wall_s():
            found.append(f"stolen: the hypervisor took {self.steal_s:.2g} s of CPU during a {self._wall_s():.2g} s "
                         "measurement; this virtual machine shares its cores")
        if self.stop_reason == "interrupted":
            found.append(f"interrupted: Ctrl-C ended sampling after {self.runs} runs; the result is incomplete")
        elif self.stop_reason != "precision":
            reached = "unknown (too few runs)" if math.isinf(self.rel_ci) else f"±{self.rel_ci:.1%}"
            limit = (
                f"the {self.policy.budget_s:g} s budget"
                if self.stop_reason == "budget"
                else f"max_runs={self.policy.max_runs}"
            )
            found.append(
                f"imprecise: stopped on {limit} after {self.runs} runs before the median's "
                f"{self.policy.confidence:.0%} CI reached ±{self.policy.target_rel_ci:.1%} (reached {reached})"
            )
        return tuple(found)

    def _wall_s(self) -> float:
        return sum(self.samples_s) + sum(self.warmup_s)

    def to_dict(self) -> dict:
        """Plain JSON-able data in milliseconds (unrounded), with the raw samples; `from_dict` reads it back."""
        ci95 = None if self.ci95 is None else [self.ci95[0] * _MS, self.ci95[1] * _MS]
        clean = self.uncontended_median
        return {
            "median_ms": self.median * _MS,
            "mean_ms": self.mean * _MS,
            "p90_ms": self.p90 * _MS,
            "iqr_ms": self.iqr * _MS,
            "min_ms": self.min * _MS,
            "max_ms": self.max * _MS,
            "ci95_ms": ci95,
            "samples_ms": [x * _MS for x in self.samples_s],
            "warmup_ms": [x * _MS for x in self.warmup_s],
            "stop_reason": self.stop_reason,
            "runs": self.runs,
            "effective_runs": self.effective_runs,
            "contended_runs": self.contended_runs,
            "uncontended_median_ms": None if clean is None else clean * _MS,
            "cpu_ms": [x * _MS for x in self.cpu_s],
            "involuntary_switches": list(self.involuntary_switches),
            "steal_s": self.steal_s,
            "warnings": list(self.warnings),
            "policy": self.policy.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Measurement":
        """Inverse of `to_dict`: rebuilds from the raw samples; the derived keys are recomputed, not trusted."""
        # Measurements stored by earlier versions (baseline files keep them) have no CPU time: none is made up.
        return cls(
            samples_s=tuple(x / _MS for x in data["samples_ms"]),
            warmup_s=tuple(x / _MS for x in data["warmup_ms"]),
            stop_reason=data["stop_reason"],
            policy=SamplingPolicy.from_dict(data["policy"]),
            cpu_s=tuple(x / _MS for x in data.get("cpu_ms", ())),
            involuntary_switches=tuple(int(x) for x in data.get("involuntary_switches", ())),
            steal_s=data.get("steal_s"),
        )

    def __repr__(self) -> str:
        ci = "" if self.ci95 is None else f", 95% CI [{self.ci95[0] * _MS:.4g}, {self.ci95[1] * _MS:.4g}] ms"
        return f"<Measurement median {self.median * _MS:.4g} ms over {self.runs} runs{ci}, stop: {self.stop_reason}>"
