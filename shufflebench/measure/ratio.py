"""The ratio of two latency medians with a bootstrap confidence interval.

Samples measured interleaved (`sampling.collect_interleaved`) are paired: sample ``i`` of both models comes from
the same round (and the same place in the models' turns), so a slow moment of the machine hits both. The bootstrap
resamples these pairs (called rounds below), in circular blocks of about ``n ** (1/3)`` consecutive ones, which
keeps the pairing and the short-range correlation of consecutive runs (caches, turbo budget) inside the resampled
data. Unpaired samples are resampled apart. Seeded, so the same samples always give the same interval.
`regress.decide` builds its verdicts on the same bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .sampling import SamplingPolicy

RESAMPLES = 2000
SEED = 0
# Resamples drawn at once: bounds the index array to _CHUNK * n integers (n = 5000 rounds -> 2 MB per chunk).
_CHUNK = 50


@dataclass(frozen=True)
class Ratio:
    """``estimate = median(numerator) / median(denominator)`` and its confidence interval ``[low, high]``.

    counted: a ratio of counts (`counters.figures.count_ratio`), not of timings: ``[low, high]`` is then the
    counters' reproducibility band, not a statistical interval.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    paired: bool
    counted: bool = False

    def to_dict(self) -> dict:
        """Plain JSON-able data: the estimate, its interval as ``ci``, confidence, pairing and whether counted."""
        return {"estimate": self.estimate, "ci": [self.low, self.high], "confidence": self.confidence,
                "paired": self.paired, "counted": self.counted}

    @classmethod
    def from_dict(cls, data: dict) -> "Ratio":
        """Inverse of `to_dict`."""
        return cls(float(data["estimate"]), float(data["ci"][0]), float(data["ci"][1]), float(data["confidence"]),
                   bool(data["paired"]), bool(data.get("counted", False)))


def block_length(n: int) -> int:
    """Rounds per bootstrap block: ``round(n ** (1/3))`` (the usual rate for a block bootstrap), and never fewer than
    a turn's timed runs (`sampling.SamplingPolicy.turn_runs`) nor than ``n``: the runs of one turn follow each other
    on one side of a pair, so a burst that slows a few of them hits one model only, and a block keeps such runs
    together."""
    return max(1, min(n, max(round(n ** (1.0 / 3.0)), SamplingPolicy().turn_runs)))


def _block_indices(rng, n: int, count: int, block: int):
    """``count`` rows of ``n`` round indices drawn as circular blocks of ``block`` consecutive rounds."""
    import numpy as np

    blocks = -(-n // block)
    starts = rng.integers(0, n, size=(count, blocks))
    idx = (starts[:, :, None] + np.arange(block)) % n
    return idx.reshape(count, blocks * block)[:, :n]


def bootstrap_log_ratios(candidate: Sequence[float], baseline: Sequence[float], *, paired: bool,
                         resamples: int = RESAMPLES, seed: int = SEED):
    """``resamples`` bootstrap values of ``log(median(candidate) / median(baseline))`` (a numpy array).

    Paired: one set of round indices per resample serves both lists. Unpaired: each list is resampled on its own.
    """
    import numpy as np

    cand = np.asarray(candidate, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    block_c, block_b = block_length(len(cand)), block_length(len(base))
    for start in range(0, resamples, _CHUNK):
        count = min(_CHUNK, resamples - start)
        idx_c = _block_indices(rng, len(cand), count, block_c)
        idx_b = idx_c if paired else _block_indices(rng, len(base), count, block_b)
        out[start:start + count] = np.log(np.median(cand[idx_c], axis=1)) - np.log(np.median(base[idx_b], axis=1))
    return out


def median_ratio(numerator: Sequence[float], denominator: Sequence[float], *, confidence: float = 0.95,
                 resamples: int = RESAMPLES, seed: int = SEED) -> Ratio:
    """Bootstrap (percentile) CI of the ratio of medians; paired by round when both have the same length."""
    import numpy as np

    if len(numerator) == 0 or len(denominator) == 0:
        raise ValueError("median_ratio needs samples on both sides")
    paired = len(numerator) == len(denominator)
    logs = bootstrap_log_ratios(numerator, denominator, paired=paired, resamples=resamples, seed=seed)
    tail = (1 - confidence) / 2
    low, high = (math.exp(q) for q in np.quantile(logs, [tail, 1 - tail]))
    return Ratio(float(np.median(numerator) / np.median(denominator)), float(low), float(high), confidence, paired)
