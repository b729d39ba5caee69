"""The latency verdict of `regress`: pure functions of two lists of timings, no clock, no I/O.

What is compared is the RATIO OF MEDIANS, candidate over baseline (1.10 = the candidate takes 10% longer). Its
confidence interval comes from a bootstrap over the measurement ROUNDS: when candidate and baseline were measured
interleaved (`sampling.collect_interleaved`), sample ``i`` of both comes from the same round (and the same place in
their turns), and such a pair (a "round" below) is resampled as a whole, so whatever slowed the machine down during
that round (a neighbour's burst, a frequency step) hits both sides of the ratio alike and mostly cancels. Rounds are
resampled in circular blocks of about ``n ** (1/3)`` rounds, which keeps the short-range correlation of consecutive
runs (caches, turbo budget) inside the resampled data instead of pretending each run was independent. Samples stored
from another run are not paired; they are resampled apart.

The bootstrap is seeded, so the same timings always give the same interval and the same verdict.

Verdicts, with ``lo, hi`` the interval of the ratio at ``confidence`` and ``m = min_effect``:

* ``slower``                 -- ``lo > 1 + m``: the candidate is slower by more than the minimum effect, with confidence;
* ``faster``                 -- ``hi < 1 / (1 + m)``: faster by more than the minimum effect, with confidence;
* ``no significant change``  -- anything else.

The minimum effect keeps a statistically real but irrelevant difference from being called a change: two onnxruntime
sessions of the very same model differ through memory placement alone, and a run's interval does not cover that,
because it is fixed for the life of the sessions. Measured with ShuffleNet V2 1.0x against itself on a 2-core x86
machine, the ratio ranged from 0.997 to 1.017 over 40 runs; the default of 2% sits above that.

A REGRESSION (what makes `regress` exit 1) is ``slower`` with ``lo > 1 + threshold``: the whole interval lies above
the threshold. So a candidate whose true slowdown is at or below the threshold fails in at most ``(1 - confidence) / 2``
of runs (2.5% at the default 95%), however noisy the machine; the noise only decides how far beyond the threshold a
slowdown must be to be caught, which is what the minimum detectable effect reports.

Minimum detectable effect (MDE): with ``se`` the bootstrap standard error of the log ratio measured in this run, the
smallest true change the interval separates from "no change" with 80% power is
``exp((z(1 - alpha/2) + z(0.80)) * se) - 1``. The gate fails with 80% power for slowdowns from
``(1 + threshold) * (1 + MDE) - 1`` on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

from ..errors import UsageError
from ..measure.ratio import RESAMPLES, SEED, bootstrap_log_ratios, block_length  # noqa: F401  (re-exported)

SLOWER = "slower"
FASTER = "faster"
NO_CHANGE = "no significant change"
VERDICTS = (SLOWER, FASTER, NO_CHANGE)

DEFAULT_THRESHOLD = 0.05
DEFAULT_MIN_EFFECT = 0.02
DEFAULT_CONFIDENCE = 0.95
POWER = 0.80
# Below this many rounds a bootstrap of the median says little (the median of 10 values has few distinct resamples).
MIN_ROUNDS = 10

_FRACTION = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(%?)\s*$")


def parse_fraction(text: str, option: str = "--threshold") -> float:
    """``"5%"`` or ``"0.05"`` -> 0.05; `UsageError` for anything else, negatives and 100% or more.

    A bare number of 1 or more (``"5"``) is refused as ambiguous rather than read as 500% or as 5%.
    """
    match = _FRACTION.match(str(text))
    if not match:
        raise UsageError(f"{option} {text!r} is not a percentage; write e.g. 5% or 0.05")
    value = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    if value < 0:
        raise UsageError(f"{option} {text!r} is negative; allowed: 0% up to (not including) 100%")
    if not match.group(2) and value >= 1:
        raise UsageError(f"{option} {text!r} is ambiguous; write {text}% for a percentage, or a fraction below 1")
    if value >= 1:
        raise UsageError(f"{option} {text!r} is too large; allowed: 0% up to (not including) 100%")
    return value


def percent(fraction: float, signed: bool = True) -> str:
    """0.1023 -> ``+10.2%`` (``-3.0%`` for negative changes; no sign with ``signed=False``)."""
    return f"{fraction * 100:+.1f}%" if signed else f"{fraction * 100:.1f}%"


@dataclass(frozen=True)
class Decision:
    """The verdict on one candidate/baseline pair, and everything it rests on.

    ratio: median(candidate) / median(baseline). ci: ``(lo, hi)`` of that ratio at ``confidence``.
    mde: minimum detectable effect as a fraction (0.02 = 2%), see the module docstring. threshold, min_effect:
    fractions. verdict: one of `VERDICTS`. regression: the gate fails (``slower`` and ``lo > 1 + threshold``).
    paired: the rounds were paired (interleaved measurement). rounds: ``(candidate, baseline)`` sample counts.
    """

    ratio: float
    ci: tuple
    confidence: float
    mde: float
    threshold: float
    min_effect: float
    verdict: str
    regression: bool
    paired: bool
    rounds: tuple
    resamples: int
    seed: int
    block: int
    warnings: tuple = ()

    @property
    def change(self) -> float:
        """ratio - 1: +0.10 means 10% slower."""
        return self.ratio - 1.0

    def describe(self) -> str:
        """One line: verdict, change, its interval, and where it stands against the threshold."""
        interval = f"{self.confidence:.0%} CI {percent(self.ci[0] - 1)} to {percent(self.ci[1] - 1)}"
        head = f"{self.verdict}: {percent(self.change)} ({interval})"
        if self.verdict == SLOWER:
            if self.regression:
                return f"{head}, beyond the {percent(self.threshold, False)} threshold"
            return f"{head}, not shown to exceed the {percent(self.threshold, False)} threshold"
        return head

    def to_dict(self) -> dict:
        """Plain JSON-able data (fractions and ratios unrounded)."""
        return {
            "ratio": self.ratio,
            "change": self.change,
            "ci": list(self.ci),
            "confidence": self.confidence,
            "mde": self.mde,
            "threshold": self.threshold,
            "min_effect": self.min_effect,
            "verdict": self.verdict,
            "regression": self.regression,
            "paired": self.paired,
            "rounds": list(self.rounds),
            "resamples": self.resamples,
            "seed": self.seed,
            "block": self.block,
            "summary": self.describe(),
            "warnings": list(self.warnings),
        }


def verdict_of(lo: float, hi: float, min_effect: float) -> str:
    """`SLOWER` when ``lo > 1 + min_effect``, `FASTER` when ``hi < 1 / (1 + min_effect)``, else `NO_CHANGE`: the
    verdict on a ratio known to lie in ``[lo, hi]`` (a confidence interval, or an exact ratio with lo = hi)."""
    if lo > 1 + min_effect:
        return SLOWER
    if hi < 1 / (1 + min_effect):
        return FASTER
    return NO_CHANGE


def minimum_detectable_effect(se_log: float, confidence: float = DEFAULT_CONFIDENCE, power: float = POWER) -> float:
    """Smallest true change (fraction) an interval at ``confidence`` excludes "no change" for, with ``power``."""
    normal = NormalDist()
    return math.expm1((normal.inv_cdf(1 - (1 - confidence) / 2) + normal.inv_cdf(power)) * se_log)


def decide(candidate_s: Sequence[float], baseline_s: Sequence[float], *, threshold: float = DEFAULT_THRESHOLD,
           min_effect: float = DEFAULT_MIN_EFFECT, confidence: float = DEFAULT_CONFIDENCE, paired: bool = True,
           resamples: int = RESAMPLES, seed: int = SEED) -> Decision:
    """The verdict on candidate vs baseline timings (seconds, or any unit shared by both lists).

    Paired timings must have equal lengths (sample ``i`` of both from the same round). Raises `ValueError` on empty or
    mismatched input, non-positive times, or parameters out of range.
    """
    import numpy as np

    if not candidate_s or not baseline_s:
        raise ValueError("decide needs timings of both candidate and baseline")
    if paired and len(candidate_s) != len(baseline_s):
        raise ValueError(f"paired timings differ in length: {len(candidate_s)} candidate, {len(baseline_s)} baseline")
    if min(min(candidate_s), min(baseline_s)) <= 0:
        raise ValueError("timings must be positive")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} is out of range; allowed: 0 < confidence < 1")
    if threshold < 0 or min_effect < 0:
        raise ValueError("threshold and min_effect are fractions >= 0")
    if resamples < 100:
        raise ValueError(f"resamples={resamples} is too few; allowed: 100 or more")

    ratio = float(np.median(candidate_s) / np.median(baseline_s))
    logs = bootstrap_log_ratios(candidate_s, baseline_s, paired=paired, resamples=resamples, seed=seed)
    alpha = 1 - confidence
    lo, hi = (float(math.exp(q)) for q in np.quantile(logs, [alpha / 2, 1 - alpha / 2]))
    se_log = float(np.std(logs, ddof=1))
    mde = minimum_detectable_effect(se_log, confidence)

    verdict = verdict_of(lo, hi, min_effect)
    regression = verdict == SLOWER and lo > 1 + threshold

    warnings = []
    n = min(len(candidate_s), len(baseline_s))
    if n < MIN_ROUNDS:
        warnings.append(f"only {n} rounds: too few for a bootstrap interval to mean much; measure longer")
    detectable = (1 + threshold) * (1 + mde) - 1
    if mde > threshold:
        warnings.append(
            f"noisy: the minimum detectable effect is {percent(mde, False)}, above the {percent(threshold, False)} "
            f"threshold; only slowdowns from about {percent(detectable, False)} are caught reliably -- raise --budget "
            "or quiet the machine"
        )
    rounds = (len(candidate_s), len(baseline_s))
    return Decision(ratio, (lo, hi), confidence, mde, threshold, min_effect, verdict, regression, paired, rounds,
                    resamples, seed, block_length(n), tuple(warnings))
