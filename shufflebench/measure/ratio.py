"""The ratio of two latency medians with a bootstrap confidence interval.

Samples measured interleaved (`sampling.collect_interleaved`) are paired: sample ``i`` of both models comes from
round ``i``, so a slow moment of the machine hits both. The bootstrap resamples *rounds* (pairs), which keeps that
pairing; unpaired samples (different counts) are resampled independently. Seeded, so the same samples always give
the same interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Ratio:
    """``estimate = median(numerator) / median(denominator)`` and its confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    confidence: float
    paired: bool

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "ci": [self.low, self.high], "confidence": self.confidence,
                "paired": self.paired}


def median_ratio(numerator: Sequence[float], denominator: Sequence[float], *, confidence: float = 0.95,
                 resamples: int = 4000, seed: int = 0) -> Ratio:
    """Bootstrap (percentile) CI of the ratio of medians; paired by index when both have the same length."""
    a = np.asarray(numerator, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("median_ratio needs samples on both sides")
    rng = np.random.default_rng(seed)
    paired = a.size == b.size
    if paired:
        idx = rng.integers(0, a.size, size=(resamples, a.size))
        ratios = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    else:
        ratios = (np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1)
                  / np.median(b[rng.integers(0, b.size, size=(resamples, b.size))], axis=1))
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return Ratio(float(np.median(a) / np.median(b)), float(low), float(high), confidence, paired)
