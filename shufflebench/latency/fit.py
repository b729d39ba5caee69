"""The predictor of one kernel kind: a roofline fitted to the calibration, and a learned correction where it helps.

For a kernel with ``madd`` multiply-adds and ``bytes`` of memory traffic on a device of measured peak compute ``P``
(multiply-adds per second) and memory bandwidth ``B`` (bytes per second), the base prediction is a roofline::

    t = overhead + max(madd / (P * compute_efficiency), bytes / (B * memory_efficiency))

with three numbers per kind fitted to the calibration's kernels by minimizing the squared *relative* error: the
fixed cost of a kernel of that kind, and the shares of the device's peaks that kind reaches (a depthwise convolution
reaches a few percent of peak compute, a blocked 1x1 convolution most of it; element-wise kernels working in cache
reach more than the memory bandwidth).

Kinds without multiply-adds (element-wise, data movement) get a second memory level where it fits their kernels
better: the bytes beyond a working set of ``spill_bytes`` cost ``1 / spill_efficiency`` more of the bandwidth's
time, ``t = overhead + bytes / (B * memory_efficiency) + max(0, bytes - spill_bytes) / (B * spill_efficiency)``. One
bandwidth fitted to kernels that mostly work in cache predicted the element-wise adds, reorders and concats of
1-10 MB 35-45% too fast; beyond about 1 MB (fitted per kind from `SPILL_GRID`) they were right within a few percent.

Grouped convolutions run one small matrix product per group, and a small product wastes part of every register
tile of the multiply kernel: their compute term is multiplied by ``(1 + tile_k / k) * (1 + tile_m / m)`` with ``k``
the reduction length of a group's product (input channels per group x taps) and ``m`` its output channels, ``tile_k``
and ``tile_m`` chosen per kind from `TILE_GRID` by cross-validated error ((0, 0): the plain roofline). At one
efficiency for all, 23 channels per group ran at 36 GMAdd/s where 180 ran at 63, and the G2 experiment's networks were
predicted 31% too fast with 8 groups and 19% too slow with 2. A dense convolution that onnxruntime keeps in the plain
layout (channels that are not multiples of its block) is one such product through the same multiply, so it gets the
same terms (`TILED_KINDS`): a 1x1 convolution 9 -> 108 is a product with a reduction of 9. The blocked layout's
kernels run code of their own over padded blocks and get none.

The learned correction multiplies the roofline term by ``exp(w . features + r)``: ``w`` by ridge least squares on
standardized shape features, and ``r`` what is left of the log error at the calibration's `NEIGHBOURS` nearest
kernels in that feature space (weighted by closeness, shrunk towards 0 by `NEIGHBOUR_SHRINK`), numpy only. The
linear part carries the trends (a kind slower per multiply-add on narrow or wide tensors); the neighbours carry
regions of shapes that run slower or faster than every trend says. onnxruntime's kernels work in fixed blocks (input
channels 128 at a time, output channels in sets of blocks), so a 1x1 convolution 192 -> 192 on 28x28 ran 1.3x slower
per multiply-add than 256 -> 128 beside it, and 320 -> 320 on 14x14 as long as 384 -> 384; neighbours average such
steps over nearby shapes rather than learn them, which is why they are shrunk. The correction is kept only where it
measurably helps: when it lowers the cross-validated mean relative error of that kind by at least `HELPS` of itself
and `MIN_GAIN` in all (and the kind has `MIN_CORRECTION_SAMPLES` kernels). The folds keep every copy of one kernel
shape together (a stack runs the same kernel ten times): a neighbour must never be the held-out kernel itself. Both
errors are stored, so a calibration shows the evidence.

Nothing here measures: these are pure functions of arrays.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from .kernels import Kernel, is_compute

HELPS = 0.10  # the correction must cut the cross-validated error by this share of itself
MIN_GAIN = 0.01  # and by at least this much (one point of mean relative error: below it is timing noise)
MIN_CORRECTION_SAMPLES = 15
MIN_KIND_SAMPLES = 4  # fewer kernels than this: the kind falls back to its group's pooled predictor
FOLDS = 5
RIDGE = 1.0
MAX_FACTOR = 4.0  # a correction never moves a roofline term by more than this factor either way
NEIGHBOURS = 32  # calibration kernels whose residual log error the correction averages
NEIGHBOUR_SHRINK = 8.0  # their mean is shrunk by NEIGHBOURS / (NEIGHBOURS + this): a few neighbours are noise
NEIGHBOUR_SOFTENING = 0.3  # weight 1 / (distance + this), in standard deviations: an exact match does not take all
_COMPUTE_GRID = np.logspace(-3.5, 0.0, 48)  # a kind never beats the device's measured peak rate
_MEMORY_GRID = np.logspace(-2.5, 2.0, 48)
SPILL_GRID = 2.0 ** np.arange(17.0, 25.5, 0.5)  # working sets tried for a second memory level: 128 KB to 32 MB
MIN_SPILL_COST = 0.1  # a second level's bytes cost at least this much more than the first level's
# Kinds whose compute term depends on the size of the matrix product each group runs: grouped convolutions, and
# dense ones in the plain layout, which run through the same matrix multiply (module docstring).
TILED_KINDS = frozenset({"conv.grouped", "conv.grouped+nchwc", "conv.pointwise", "conv.spatial"})
TILE_GRID = (0.0, 2.0, 4.0, 8.0, 16.0)  # tile_k and tile_m tried for them


@dataclass(frozen=True)
class Peaks:
    """The device's measured peaks: multiply-adds per second, memory bandwidth (tensors far larger than any cache)
    and the best bandwidth an element-wise or data-movement kernel reached (in cache), bytes per second."""

    madd_per_s: float
    memory_bandwidth_bytes_per_s: float
    cache_bandwidth_bytes_per_s: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Peaks":
        return cls(float(data["madd_per_s"]), float(data["memory_bandwidth_bytes_per_s"]),
                   float(data["cache_bandwidth_bytes_per_s"]))


@dataclass(frozen=True)
class Correction:
    """A multiplicative correction of the roofline term (module docstring): ``exp(bias + sum(weight * z) + r)``, ``z``
    the kernel's standardized features ``(feature - mean) / scale`` and ``r`` the shrunk, closeness-weighted mean of
    ``residuals`` at the `NEIGHBOURS` ``points`` (calibration kernels, standardized alike) nearest to ``z``."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    bias: float
    weights: tuple[float, ...]
    points: tuple[tuple[float, ...], ...] = ()
    residuals: tuple[float, ...] = ()
    _points: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_points", np.array(self.points, dtype=float).reshape(len(self.points),
                                                                                   len(self.features)))

    def standardized(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Each row's features as ``(feature - mean) / scale`` (a missing feature counts as its mean)."""
        return np.array([[(row.get(name, m) - m) / s for name, m, s in zip(self.features, self.mean, self.scale)]
                         for row in rows], dtype=float).reshape(len(rows), len(self.features))

    def log_factors(self, z: np.ndarray) -> np.ndarray:
        """The correction's log factors for standardized rows ``z`` (one per row), before the `MAX_FACTOR` clamp."""
        linear = self.bias + z @ np.array(self.weights, dtype=float)
        if not self.residuals:
            return linear
        residuals = np.array(self.residuals)
        count = min(NEIGHBOURS, len(residuals))
        distance = np.sqrt(((z[:, None, :] - self._points[None, :, :]) ** 2).sum(axis=2))
        nearest = np.argsort(distance, axis=1, kind="stable")[:, :count]
        weight = 1.0 / (np.take_along_axis(distance, nearest, axis=1) + NEIGHBOUR_SOFTENING)
        local = (weight * residuals[nearest]).sum(axis=1) / weight.sum(axis=1)
        return linear + local * count / (count + NEIGHBOUR_SHRINK)

    def factors(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """The factors for many kernels' features at once."""
        return np.clip(np.exp(self.log_factors(self.standardized(rows))), 1.0 / MAX_FACTOR, MAX_FACTOR)

    def factor(self, features: Mapping[str, float]) -> float:
        """The factor for one kernel's features."""
        return float(self.factors([features])[0])

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                "bias": self.bias, "weights": list(self.weights), "points": [list(p) for p in self.points],
                "residuals": list(self.residuals)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Correction":
        return cls(tuple(data["features"]), tuple(float(x) for x in data["mean"]),
                   tuple(float(x) for x in data["scale"]), float(data["bias"]),
                   tuple(float(x) for x in data["weights"]),
                   tuple(tuple(float(x) for x in p) for p in data["points"]),
                   tuple(float(x) for x in data["residuals"]))


@dataclass(frozen=True)
class Components:
    """One kernel's predicted time in microseconds, by part: fixed overhead, compute term, memory term (the
    roofline takes the larger of the last two)."""

    overhead_us: float
    compute_us: float
    memory_us: float

    @property
    def total_us(self) -> float:
        return self.overhead_us + max(self.compute_us, self.memory_us)

    @property
    def bound(self) -> str:
        """What limits the kernel: ``compute``, ``memory`` or ``overhead`` (the largest part)."""
        roof = max(self.compute_us, self.memory_us)
        if self.overhead_us >= roof:
            return "overhead"
        return "compute" if self.compute_us >= self.memory_us else "memory"


@dataclass(frozen=True)
class KindModel:
    """The predictor of one kernel kind (module docstring) and the evidence for it.

    compute_efficiency: share of the peak multiply-add rate reached (None for kinds without multiply-adds).
    memory_efficiency: effective bandwidth over the measured memory bandwidth. spill_bytes / spill_efficiency: the
    second memory level (module docstring; None where one level fits best). tile_k / tile_m: the small-product
    factor of `TILED_KINDS` (module docstring; 0 for other kinds). cv_error / cv_error_corrected: mean
    relative error of the roofline alone and with the correction, cross-validated. spread: standard deviation of
    the log error of the predictor in use, cross-validated.
    """

    kind: str
    overhead_us: float
    compute_efficiency: float | None
    memory_efficiency: float
    correction: Correction | None
    samples: int
    cv_error: float
    cv_error_corrected: float | None
    spread: float
    spill_bytes: float | None = None
    spill_efficiency: float | None = None
    tile_k: float = 0.0
    tile_m: float = 0.0

    def components(self, kernel: Kernel, peaks: Peaks) -> Components:
        """The predicted time of ``kernel`` by part."""
        factor = self.correction.factor(kernel.features()) if self.correction else 1.0
        compute = (kernel.madd * tile_factor(kernel, self.tile_k, self.tile_m)
                   / (peaks.madd_per_s * self.compute_efficiency) * 1e6 * factor if self.compute_efficiency else 0.0)
        memory = kernel.bytes / self.memory_efficiency
        if self.spill_bytes is not None and self.spill_efficiency:
            memory += max(0.0, kernel.bytes - self.spill_bytes) / self.spill_efficiency
        return Components(self.overhead_us, compute, memory / peaks.memory_bandwidth_bytes_per_s * 1e6 * factor)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, correction=None))  # the correction's own form, not a deep copy of its points
        data["correction"] = self.correction.to_dict() if self.correction else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "KindModel":
        correction = data.get("correction")
        return cls(str(data["kind"]), float(data["overhead_us"]),
                   None if data["compute_efficiency"] is None else float(data["compute_efficiency"]),
                   float(data["memory_efficiency"]), Correction.from_dict(correction) if correction else None,
                   int(data["samples"]), float(data["cv_error"]),
                   None if data["cv_error_corrected"] is None else float(data["cv_error_corrected"]),
                   float(data["spread"]), _optional(data.get("spill_bytes")), _optional(data.get("spill_efficiency")),
                   float(data.get("tile_k", 0.0)), float(data.get("tile_m", 0.0)))


def tile_factor(kernel: Kernel, tile_k: float, tile_m: float) -> float:
    """How much longer a kernel's multiply-adds take for the size of each group's matrix product (module
    docstring): 1 with no tile terms."""
    if not (tile_k or tile_m):
        return 1.0
    k, m = kernel.per_group_product
    return (1.0 + tile_k / k) * (1.0 + tile_m / m)


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


# --- the roofline ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Roof:
    overhead: float
    compute_efficiency: float | None
    memory_efficiency: float
    spill_us: float | None = None  # the second level's working set, as microseconds at the memory bandwidth
    spill_efficiency: float | None = None

    def term(self, compute: np.ndarray, memory: np.ndarray) -> np.ndarray:
        roof = memory / self.memory_efficiency
        if self.spill_us is not None and self.spill_efficiency:
            roof = roof + np.maximum(memory - self.spill_us, 0.0) / self.spill_efficiency
        if self.compute_efficiency:
            roof = np.maximum(roof, compute / self.compute_efficiency)
        return roof


def _best_overhead(times: np.ndarray, roof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For roofline terms ``roof`` (grid x samples), the overhead minimizing the relative squared error, clipped
    to [0, smallest time], and that error."""
    weights = 1.0 / times ** 2
    overhead = ((times - roof) * weights).sum(axis=-1, keepdims=True) / weights.sum()
    overhead = np.clip(overhead, 0.0, times.min())
    loss = (((overhead + roof - times) / times) ** 2).sum(axis=-1)
    return overhead[..., 0], loss


def _relative_loss(roof: _Roof, compute: np.ndarray, memory: np.ndarray, times: np.ndarray) -> float:
    return float((((roof.overhead + roof.term(compute, memory)) / times - 1.0) ** 2).sum())


def _with_spill(memory: np.ndarray, times: np.ndarray, one_level: _Roof,
                spill_grid_us: Sequence[float]) -> _Roof:
    """The best two-level memory roofline over the working sets ``spill_grid_us`` (microseconds at the memory
    bandwidth), or ``one_level`` where none fits better: for each working set a weighted least-squares line in the
    bytes and the bytes beyond it (weights 1/time: relative errors), kept only where the bytes beyond cost at least
    `MIN_SPILL_COST` more."""
    none = np.zeros_like(memory)
    best, best_loss = one_level, _relative_loss(one_level, none, memory, times)
    weights = 1.0 / times
    for spill_us in spill_grid_us:
        beyond = np.maximum(memory - spill_us, 0.0)
        if not np.any(beyond > 0) or np.all(beyond > 0):
            continue  # every kernel on one side of it: no second level to see
        design = np.column_stack([np.ones_like(memory), memory, beyond])
        overhead, per_us, beyond_per_us = np.linalg.lstsq(design * weights[:, None], times * weights, rcond=None)[0]
        if per_us <= 0 or beyond_per_us < MIN_SPILL_COST * per_us:
            continue  # not a second level: the bytes beyond it cost (nearly) what the others do
        roof = _Roof(float(np.clip(overhead, 0.0, times.min())), None, float(1.0 / per_us), float(spill_us),
                     float(1.0 / beyond_per_us))
        loss = _relative_loss(roof, none, memory, times)
        if loss < best_loss:
            best, best_loss = roof, loss
    return best


def fit_roofline(compute: np.ndarray, memory: np.ndarray, times: np.ndarray,
                 spill_grid_us: Sequence[float] = ()) -> _Roof:
    """Overhead and efficiencies for times ``times`` (microseconds) of kernels whose time at the device's peaks is
    ``compute`` and ``memory`` (microseconds): a grid search, then a finer one around the best point. Kinds without
    multiply-adds try a second memory level at each working set of ``spill_grid_us`` (`_with_spill`)."""
    has_compute = bool(np.any(compute > 0))
    compute_grid = _COMPUTE_GRID if has_compute else np.array([np.inf])
    memory_grid = _MEMORY_GRID
    for _ in range(2):
        roof = np.maximum(compute[None, None, :] / compute_grid[:, None, None],
                          memory[None, None, :] / memory_grid[None, :, None])
        overhead, loss = _best_overhead(times, roof)
        i, j = np.unravel_index(int(np.argmin(loss)), loss.shape)
        best = (float(overhead[i, j]), float(compute_grid[i]), float(memory_grid[j]))
        if has_compute:
            compute_grid = np.minimum(best[1] * np.logspace(-0.1, 0.1, 21), 1.0)
        memory_grid = best[2] * np.logspace(-0.1, 0.1, 21)
    roof = _Roof(best[0], best[1] if has_compute else None, best[2])
    return roof if has_compute else _with_spill(memory, times, roof, spill_grid_us)


# --- the correction -------------------------------------------------------------------------------------------------

def _fit_correction(names: Sequence[str], features: np.ndarray, log_error: np.ndarray) -> Correction:
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    standard = (features - mean) / scale
    design = np.hstack([np.ones((len(standard), 1)), standard])
    penalty = RIDGE * np.eye(design.shape[1])
    penalty[0, 0] = 0.0  # the bias is not shrunk
    solution = np.linalg.solve(design.T @ design + penalty, design.T @ log_error)
    residuals = log_error - design @ solution  # what the linear part leaves, for the neighbours
    # Rounded: the file stays readable, and a thousandth of a standard deviation moves no neighbour.
    return Correction(tuple(names), tuple(float(x) for x in mean), tuple(float(x) for x in scale),
                      float(solution[0]), tuple(float(x) for x in solution[1:]),
                      tuple(tuple(round(float(x), 3) for x in row) for row in standard),
                      tuple(round(float(x), 4) for x in residuals))


@dataclass(frozen=True)
class _Fitted:
    roof: _Roof
    correction: Correction | None

    def predict(self, compute: np.ndarray, memory: np.ndarray, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        term = self.roof.term(compute, memory)
        if self.correction is not None:
            term = term * self.correction.factors(rows)
        return self.roof.overhead + term


def _fit(compute: np.ndarray, memory: np.ndarray, times: np.ndarray, rows: Sequence[Mapping[str, float]],
         corrected: bool, spill_grid_us: Sequence[float]) -> _Fitted:
    roof = fit_roofline(compute, memory, times, spill_grid_us)
    if not corrected:
        return _Fitted(roof, None)
    names = sorted(rows[0])
    features = np.array([[row[name] for name in names] for row in rows])
    term = roof.term(compute, memory)
    excess = np.maximum(times - roof.overhead, 0.05 * times)
    return _Fitted(roof, _fit_correction(names, features, np.log(excess / term)))


def _cross_validated(compute: np.ndarray, memory: np.ndarray, times: np.ndarray,
                     rows: Sequence[Mapping[str, float]], corrected: bool,
                     spill_grid_us: Sequence[float]) -> np.ndarray:
    """Each kernel's prediction from a fit without its fold (`shape_folds`)."""
    fold_of = shape_folds(rows, min(FOLDS, len(times)))
    predicted = np.empty_like(times)
    index = np.arange(len(times))
    for fold in sorted(set(fold_of.tolist())):
        test, train = fold_of == fold, fold_of != fold
        fitted = _fit(compute[train], memory[train], times[train], [rows[i] for i in index[train]], corrected,
                      spill_grid_us)
        predicted[test] = fitted.predict(compute[test], memory[test], [rows[i] for i in index[test]])
    return predicted


def shape_folds(rows: Sequence[Mapping[str, float]], folds: int) -> np.ndarray:
    """The cross-validation fold of each kernel: kernels of one shape (equal features) always share a fold, so no
    fit is tested on a copy of a kernel it was fitted on; by position where that leaves a single fold."""
    keys = np.array([zlib.crc32(repr(sorted(row.items())).encode()) % folds for row in rows], dtype=int)
    if len(set(keys.tolist())) < min(2, folds):
        return np.arange(len(rows)) % folds
    return keys


def _spill_grid_us(peaks: Peaks) -> list[float]:
    """`SPILL_GRID` as microseconds at the device's memory bandwidth (the unit of the memory term)."""
    return [float(size) / peaks.memory_bandwidth_bytes_per_s * 1e6 for size in SPILL_GRID]


def _fit_kind_at(kind: str, times: np.ndarray, compute: np.ndarray, memory: np.ndarray,
                 rows: Sequence[Mapping[str, float]], peaks: Peaks, spill_grid: Sequence[float],
                 tile: tuple[float, float]) -> KindModel:
    """A kind's predictor from its kernels' times and roofline terms (``compute`` already carries the tile factor):
    the roofline, and the correction where it helps (module docstring)."""
    base_cv = _cross_validated(compute, memory, times, rows, False, spill_grid) if len(times) >= 2 else times
    base_error = float(np.mean(np.abs(base_cv - times) / times))
    corrected_error = None
    use = False
    chosen_cv = base_cv
    if len(times) >= MIN_CORRECTION_SAMPLES and len({tuple(sorted(r)) for r in rows}) == 1:
        corrected_cv = _cross_validated(compute, memory, times, rows, True, spill_grid)
        corrected_error = float(np.mean(np.abs(corrected_cv - times) / times))
        use = corrected_error <= (1.0 - HELPS) * base_error and base_error - corrected_error >= MIN_GAIN
        if use:
            chosen_cv = corrected_cv
    fitted = _fit(compute, memory, times, rows, use, spill_grid)
    spread = float(np.std(np.log(np.maximum(chosen_cv, 1e-3) / times)))
    roof = fitted.roof
    spill_bytes = None if roof.spill_us is None else roof.spill_us * peaks.memory_bandwidth_bytes_per_s / 1e6
    return KindModel(kind, roof.overhead, roof.compute_efficiency, roof.memory_efficiency, fitted.correction,
                     len(times), base_error, corrected_error, spread, spill_bytes, roof.spill_efficiency, *tile)


def fit_kind(kind: str, kernels: Sequence[Kernel], times_us: Sequence[float], peaks: Peaks) -> KindModel:
    """The predictor of ``kind`` from its calibration kernels and their times (microseconds); for `TILED_KINDS`
    with the tile terms of `TILE_GRID` whose roofline has the lowest cross-validated error (the correction is
    decided after, on that roofline)."""
    times = np.asarray(times_us, dtype=float)
    madd = np.array([k.madd / peaks.madd_per_s * 1e6 for k in kernels])
    memory = np.array([k.bytes / peaks.memory_bandwidth_bytes_per_s * 1e6 for k in kernels])
    rows = [k.features() for k in kernels]
    spill_grid = _spill_grid_us(peaks)
    if not any(is_compute(k.kind) for k in kernels):
        return _fit_kind_at(kind, times, np.zeros_like(times), memory, rows, peaks, spill_grid, (0.0, 0.0))

    def tiled(tile: tuple[float, float]) -> np.ndarray:
        return madd * np.array([tile_factor(k, *tile) for k in kernels])

    tile = (0.0, 0.0)
    if kind in TILED_KINDS and len(times) >= FOLDS:
        def error(candidate: tuple[float, float]) -> float:
            predicted = _cross_validated(tiled(candidate), memory, times, rows, False, spill_grid)
            return float(np.mean(np.abs(predicted / times - 1.0)))

        tile = min(((a, b) for a in TILE_GRID for b in TILE_GRID), key=error)
    return _fit_kind_at(kind, times, tiled(tile), memory, rows, peaks, spill_grid, tile)


# --- the whole graph --------------------------------------------------------------------------------------------------

def robust_line(x: Sequence[float], y: Sequence[float], iterations: int = 20) -> tuple[float, float]:
    """Intercept and slope of ``y = a + b x`` by iteratively reweighted least squares with Huber weights (a few
    graphs measured in a bad spell do not tilt the line)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    design = np.vstack([np.ones_like(xs), xs]).T
    weights = np.ones_like(ys)
    coefficients = np.zeros(2)
    for _ in range(iterations):
        w = np.sqrt(weights)
        coefficients = np.linalg.lstsq(design * w[:, None], ys * w, rcond=None)[0]
        residual = ys - design @ coefficients
        scale = 1.4826 * float(np.median(np.abs(residual - np.median(residual)))) or 1.0
        limit = 1.345 * scale
        weights = np.where(np.abs(residual) <= limit, 1.0, limit / np.maximum(np.abs(residual), 1e-12))
    return float(coefficients[0]), float(coefficients[1])
