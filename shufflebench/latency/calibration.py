"""A device's calibration: what was measured, the predictors fitted to it, and where it is kept.

The file is plain JSON with a ``schema`` of ``shufflebench.calibration/<version>``: the device and the environment
it ran in (with a fingerprint), the design that was measured, the measured peaks, every graph's drift-normalized
kernel times (so a later version can fit again from the same data), and the fitted predictors. No pickles: a file of
another version is refused with one line saying what to do, never half-read.

Calibrations are kept in ``$SHUFFLEBENCH_CACHE/calibrations`` (default ``~/.cache/shufflebench/calibrations``), one
file per device and environment fingerprint, so ``--device D`` finds the one made on this machine with this
onnxruntime and these settings (`find_calibration`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..devices import DeviceProfile
from ..errors import UsageError
from ..files import write_json_atomic
from .fit import MIN_KIND_SAMPLES, KindModel, Peaks, fit_kind, robust_line
from .kernels import base_kind, is_compute
from .records import GraphRecord, anchored, is_network, kernel_time_us

CALIBRATION_SCHEMA = "shufflebench.calibration"
CALIBRATION_VERSION = 8  # 1: interleaved graphs timed cold, stems fitted with the kxk convolutions; 2: kinds fitted
# on kernel graphs alone, no stacks; 3: one element-wise kind, one memory level; 4: a linear correction only; 5:
# networks' kernels at their profiled times, not anchored to their end-to-end times; 6: no tile terms for dense
# convolutions in the plain layout; 7: one context factor per kind, whatever the network's size
#: The environment keys that make two calibrations interchangeable (no hostname: none is recorded).
FINGERPRINT_KEYS = ("machine", "cpu_model", "board_model", "emulated", "qemu_cpu", "threads", "provider",
                    "optimization_level")
POOLED = ("compute", "memory")  # the fallback predictors, one per group of kinds
# The reference kernel's spread between graphs above which the machine was busy: calm calibrations here moved it
# 13-14%; three measured in busy hours 35-40%, and they predicted 92-94% of unseen models within 10% against a calm
# run (43-77% before networks were anchored to their end-to-end times) where a calm one of the same design did 95%.
DISTURBED_SPREAD = 0.25
SIGMA_FLOOR = 0.03  # no whole-graph prediction is trusted to better than 3%
MIN_CONTEXT_KERNELS = 8  # a kind gets its own context factor from this many kernels in the networks
MIN_CONTEXT_NETWORKS = 3  # spread over at least this many networks
DEFAULT_SIGMA = 0.15  # without whole networks to check against
CONTEXT_FOLDS = 4  # the networks are split this many ways to cross-fit the context factors and sigma
# A memory-bound kind's context factor grows with the network's size when at least this many networks ran it; with
# fewer, a slope is not worth its noise.
MIN_SIZED_NETWORKS = 8
CONTEXT_SIZE_US = 1000.0  # the network size (its kernels' predicted time alone) at which a sized factor is quoted


def group_of(kind: str) -> str:
    """The group (`POOLED`) of a kernel kind: ``compute`` for convolutions and matrix products, else ``memory``."""
    return "compute" if is_compute(kind) else "memory"


def sized(kind: str) -> bool:
    """Whether a kind's (or group's) context factor depends on the network's size: the memory-bound ones, which are
    everything but the convolutions (a fully connected layer at batch 1 streams its weights once: memory-bound too).

    Alone, a kernel runs back to back with itself and finds its data in cache; in a network, everything the network
    touched since the kernel's last run stood between, so the larger the network, the colder its data. Measured on
    the calibration networks here: reorders ran 1.13x their time alone in networks of 1 ms and 1.28x in networks of
    5 ms, fully connected layers 0.91x and 1.49x; the convolutions, compute-bound, had factors of 0.97-1.05 and no
    trend with size.
    """
    return kind != "compute" and (not is_compute(kind) or base_kind(kind) == "gemm")


def calibrations_dir() -> Path:
    """Where calibrations are kept: ``$SHUFFLEBENCH_CACHE/calibrations`` or ``~/.cache/shufflebench/calibrations``."""
    root = os.environ.get("SHUFFLEBENCH_CACHE") or Path.home() / ".cache" / "shufflebench"
    return Path(root) / "calibrations"


def fingerprint(environment: Mapping[str, Any], device: DeviceProfile) -> str:
    """A short digest of what makes kernel times transferable: the device's name and settings, the machine, the
    CPU and the onnxruntime version."""
    picked = {key: environment.get(key) for key in FINGERPRINT_KEYS}
    picked["onnxruntime"] = (environment.get("versions") or {}).get("onnxruntime")
    picked["device"] = [device.name, device.provider, device.threads, device.optimization_level]
    return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ContextFactor:
    """A kind's in-network factor: ``factor`` in a network whose kernels are predicted `CONTEXT_SIZE_US` alone, times
    (size / `CONTEXT_SIZE_US`) ** ``slope`` in one of another size, the size held to ``sizes_us`` (the range of the
    calibration networks it was fitted on: no extrapolation)."""

    factor: float
    slope: float = 0.0
    sizes_us: tuple[float, float] = (CONTEXT_SIZE_US, CONTEXT_SIZE_US)

    def at(self, network_us: float) -> float:
        """The factor in a network whose kernels are predicted ``network_us`` microseconds alone."""
        low, high = self.sizes_us
        return self.factor * (min(max(network_us, low), high) / CONTEXT_SIZE_US) ** self.slope

    def to_dict(self) -> dict[str, Any]:
        return {"factor": self.factor, "slope": self.slope, "sizes_us": list(self.sizes_us)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ContextFactor":
        low, high = data["sizes_us"]
        return cls(float(data["factor"]), float(data["slope"]), (float(low), float(high)))


@dataclass(frozen=True)
class GraphModel:
    """What a whole graph costs beyond its kernels, and how far to trust a prediction.

    run_overhead_us + per_kernel_us x kernels: the time of a run outside the kernels' own times (session, dispatch,
    allocation), fitted on the short calibration graphs. context: what the kernel kinds still miss on networks they
    were not fitted on (cross-fitted, `fit_records`): the median over those networks of their kernels' measured
    over predicted times, per kernel kind where the networks ran at least `MIN_CONTEXT_KERNELS` of it in
    `MIN_CONTEXT_NETWORKS` networks, else per group (``compute``: convolutions and matrix products; ``memory``: the
    others); 1.0 without whole networks. sigma: standard deviation of the log error of a whole-network prediction,
    each network predicted by kinds fitted without it.
    """

    run_overhead_us: float
    per_kernel_us: float
    context: dict[str, ContextFactor]
    sigma: float

    def context_for(self, kind: str, network_us: float) -> float:
        """The context factor of a kernel kind (its own, else its group's) in a network whose kernels are predicted
        ``network_us`` microseconds alone."""
        return (self.context.get(kind) or self.context[group_of(kind)]).at(network_us)

    def to_dict(self) -> dict[str, Any]:
        return {"run_overhead_us": self.run_overhead_us, "per_kernel_us": self.per_kernel_us,
                "context": {k: c.to_dict() for k, c in self.context.items()}, "sigma": self.sigma}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GraphModel":
        return cls(float(data["run_overhead_us"]), float(data["per_kernel_us"]),
                   {k: ContextFactor.from_dict(v) for k, v in data["context"].items()}, float(data["sigma"]))


@dataclass(frozen=True)
class Fitted:
    """Every predictor of a calibration: one per kernel kind with enough kernels, the pooled fallbacks, the graph."""

    kinds: dict[str, KindModel]
    pooled: dict[str, KindModel]
    graph: GraphModel

    def model_for(self, kind: str) -> tuple[KindModel, bool]:
        """The predictor of ``kind`` and whether it is a fallback (a kind the calibration never saw enough of): the
        same kind in the other layout, else the pooled predictor of its group."""
        if kind in self.kinds:
            return self.kinds[kind], False
        other = base_kind(kind) if "+" in kind else f"{kind}+nchwc"
        if other in self.kinds:
            return self.kinds[other], True
        return self.pooled[group_of(kind)], True

    def to_dict(self) -> dict[str, Any]:
        return {"kinds": {k: m.to_dict() for k, m in self.kinds.items()},
                "pooled": {k: m.to_dict() for k, m in self.pooled.items()}, "graph": self.graph.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Fitted":
        return cls({k: KindModel.from_dict(m) for k, m in data["kinds"].items()},
                   {k: KindModel.from_dict(m) for k, m in data["pooled"].items()}, GraphModel.from_dict(data["graph"]))


@dataclass(frozen=True)
class Calibration:
    """One device's calibration (module docstring).

    layout: how the device's onnxruntime lays tensors out (``nchwc_block``: the channel block of onnxruntime's
    blocked layout, 0 when it does not use it) and its version and optimization level, so a model's kernels can be
    reproduced on another machine. reference_us / reference_e2e_us: the reference kernel's and the reference graph's
    typical times, the unit every kernel and graph time was measured in.
    """

    created: str
    device: DeviceProfile
    emulated: bool
    environment: dict[str, Any]
    design: dict[str, Any]
    layout: dict[str, Any]
    peaks: Peaks
    reference_us: float
    reference_e2e_us: float
    records: tuple[GraphRecord, ...]
    fitted: Fitted
    path: Path | None = field(default=None, compare=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.environment, self.device)

    @property
    def label(self) -> str:
        """How reports name this calibration: device, fingerprint and date."""
        return f"{self.device.name} {self.fingerprint} ({self.created[:10]})"

    @property
    def reference_spread(self) -> float:
        """How much the reference kernel's typical time moved between graphs (interquartile range over median): the
        machine's drift during the calibration, which the ratios take out."""
        times = sorted(r.reference_us for r in self.records)
        if len(times) < 4:
            return 0.0
        quartiles = statistics.quantiles(times, n=4)
        return (quartiles[2] - quartiles[0]) / statistics.median(times)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What to know before trusting this calibration: that the machine was busy while it was measured."""
        spread = self.reference_spread
        if spread <= DISTURBED_SPREAD:
            return ()
        return (f"the machine was busy during this calibration (the reference kernel moved {spread:.0%} between "
                f"graphs, over {DISTURBED_SPREAD:.0%}; about 15% on a quiet machine): its predictions can be off by "
                f"far more than its interval says; calibrate again on a quiet machine (shufflebench calibrate "
                f"--device {self.device.name} --fresh)",)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": f"{CALIBRATION_SCHEMA}/{CALIBRATION_VERSION}",
            "created": self.created,
            "device": self.device.name,
            "device_profile": self.device.to_dict(),
            "emulated": self.emulated,
            "fingerprint": self.fingerprint,
            "environment": self.environment,
            "design": self.design,
            "layout": self.layout,
            "peaks": self.peaks.to_dict(),
            "reference_us": self.reference_us,
            "reference_e2e_us": self.reference_e2e_us,
            "reference_spread": self.reference_spread,
            "warnings": list(self.warnings),
            "fitted": self.fitted.to_dict(),
            "records": [r.to_dict() for r in self.records],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> "Calibration":
        """Read a calibration of this version; `UsageError` in one line for anything else."""
        where = str(path) if path is not None else "calibration"
        schema = str(data.get("schema", "")) if isinstance(data, Mapping) else ""
        if schema != f"{CALIBRATION_SCHEMA}/{CALIBRATION_VERSION}":
            if schema.startswith(CALIBRATION_SCHEMA + "/"):
                raise UsageError(f"{where} is a calibration of version {schema.rpartition('/')[2]}; this shufflebench "
                                 f"reads version {CALIBRATION_VERSION}: calibrate again (shufflebench calibrate "
                                 f"--device {data.get('device', 'D')})")
            raise UsageError(f"{where} is not a shufflebench calibration (schema {schema or 'missing'!r}; expected "
                             f"{CALIBRATION_SCHEMA}/{CALIBRATION_VERSION})")
        try:
            return cls(str(data["created"]), DeviceProfile.from_dict(data["device_profile"]), bool(data["emulated"]),
                       dict(data["environment"]), dict(data["design"]), dict(data["layout"]),
                       Peaks.from_dict(data["peaks"]), float(data["reference_us"]), float(data["reference_e2e_us"]),
                       tuple(GraphRecord.from_dict(r) for r in data["records"]), Fitted.from_dict(data["fitted"]),
                       path)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{where} is a damaged calibration ({type(exc).__name__}: {exc})") from None


# --- fitting a calibration from its records -------------------------------------------------------------------------

def _times(records: Iterable[GraphRecord], reference_us: float, reference_e2e_us: float,
           kind_of=lambda kind: kind) -> dict[str, tuple[list, list]]:
    by_kind: dict[str, tuple[list, list]] = {}
    for record in records:
        for sample in record.kernels:
            kernels, times = by_kind.setdefault(kind_of(sample.kernel.kind), ([], []))
            kernels.append(sample.kernel)
            times.append(kernel_time_us(record, sample, reference_us, reference_e2e_us))
    return by_kind


def _kernel_sums(fitted: "Fitted", record: GraphRecord, peaks: Peaks, reference_us: float,
                 reference_e2e_us: float) -> dict[str, tuple[float, float, int]]:
    """Per kernel kind: the record's kernels' measured and predicted times (microseconds) and their count."""
    sums: dict[str, tuple[float, float, int]] = {}
    for sample in record.kernels:
        measured, predicted, count = sums.get(sample.kernel.kind, (0.0, 0.0, 0))
        model = fitted.model_for(sample.kernel.kind)[0]
        sums[sample.kernel.kind] = (measured + kernel_time_us(record, sample, reference_us, reference_e2e_us),
                                    predicted + model.components(sample.kernel, peaks).total_us, count + 1)
    return sums


def network_size_us(sums: Mapping[str, tuple[float, float, int]]) -> float:
    """A network's size for its context factors: its kernels' predicted times alone, summed (microseconds)."""
    return sum(predicted for _, predicted, _ in sums.values())


def _factor(key: str, points: Sequence[tuple[float, float]]) -> ContextFactor:
    """One context factor from (network size, measured over predicted) points: sized (`sized`) where enough networks
    ran the kind, a robust line in log-log; else the median, so that every network counts once (a sum would be the
    largest stacks')."""
    logs = [math.log(ratio) for _, ratio in points]
    if not (sized(key) and len(points) >= MIN_SIZED_NETWORKS):
        return ContextFactor(math.exp(statistics.median(logs)))
    sizes = [size for size, _ in points]
    intercept, slope = robust_line([math.log(size / CONTEXT_SIZE_US) for size in sizes], logs)
    return ContextFactor(math.exp(intercept), slope, (min(sizes), max(sizes)))


def _context(sums: Sequence[dict[str, tuple[float, float, int]]]) -> dict[str, ContextFactor]:
    """Context factors from networks' kernel sums: per kind with enough kernels, and per group (`_factor`)."""
    points: dict[str, list[tuple[float, float]]] = {group: [] for group in POOLED}
    counts: dict[str, int] = {}
    for record in sums:
        size = network_size_us(record)
        groups: dict[str, list[float]] = {}
        for kind, (measured, predicted, count) in record.items():
            group = groups.setdefault(group_of(kind), [0.0, 0.0])
            group[0] += measured
            group[1] += predicted
            if measured > 0 and predicted > 0:
                points.setdefault(kind, []).append((size, measured / predicted))
                counts[kind] = counts.get(kind, 0) + count
        for key, (measured, predicted) in groups.items():
            if measured > 0 and predicted > 0:
                points[key].append((size, measured / predicted))
    return {key: (_factor(key, values) if values else ContextFactor(1.0))
            for key, values in points.items()
            if key in POOLED or (counts[key] >= MIN_CONTEXT_KERNELS and len(values) >= MIN_CONTEXT_NETWORKS)}


def _kind_models(records: Sequence[GraphRecord], peaks: Peaks, reference_us: float,
                 reference_e2e_us: float) -> Fitted:
    """One predictor per kind with enough kernels in ``records``, and the pooled fallbacks (no graph terms)."""
    kinds = {kind: fit_kind(kind, kernels, times, peaks)
             for kind, (kernels, times) in _times(records, reference_us, reference_e2e_us).items()
             if len(times) >= MIN_KIND_SAMPLES}
    pooled = {group: fit_kind(group, kernels, times, peaks)
              for group, (kernels, times) in _times(records, reference_us, reference_e2e_us, group_of).items()}
    return Fitted(kinds, pooled, GraphModel(0.0, 0.0, {group: ContextFactor(1.0) for group in POOLED}, 0.0))


def fit_records(records: Sequence[GraphRecord], peaks: Peaks, reference_us: float, reference_e2e_us: float, *,
                exclude: Sequence[str] = ()) -> Fitted:
    """The predictors of a calibration; groups in ``exclude`` are left out entirely (a family held out).

    Kernel kinds are fitted on every kernel of the calibration: those of the kernel graphs (each alone) and those of
    the whole networks and stacks (`is_network`: each where a network runs it, after and before other kernels). A
    kind's time inside a network is not its time alone: 1x1 convolutions with a fused ReLU6 in MobileNet-like
    networks ran 15% slower than the kernels alone predicted. The run overhead comes from the short graphs (their
    end-to-end time beyond their kernels, as a line in the number of kernels); a network's kernels are scaled to add
    up to its end-to-end time beyond that overhead (`anchored`), so the profile only splits the time between them.

    The context factors and the uncertainty are cross-fitted (`CONTEXT_FOLDS` folds of the networks): each network's
    kernels are predicted by kinds fitted without its fold, and the factors are what those held-out networks' kernels
    measured over what was predicted, per kind where the networks ran at least `MIN_CONTEXT_KERNELS` of it in
    `MIN_CONTEXT_NETWORKS` networks, else per group (`_context`): medians, or for memory-bound kinds a line in the
    network's size (`sized`). sigma is the held-out networks' end-to-end error.
    """
    kept = [r for r in records if r.group not in exclude]
    short = [r for r in kept if not is_network(r)]
    outside = [r.e2e_ratio * reference_e2e_us - reference_us
               - sum(kernel_time_us(r, s, reference_us, reference_e2e_us) for s in r.kernels) for r in short]
    run_overhead, per_kernel = robust_line([r.executed for r in short], outside)
    networks = [anchored(r, reference_e2e_us, run_overhead, per_kernel) for r in kept if is_network(r)]
    kinds = _kind_models(short + networks, peaks, reference_us, reference_e2e_us)
    folds = min(CONTEXT_FOLDS, len(networks))
    held_out: list[dict[str, tuple[float, float, int]]] = [{} for _ in networks]
    for fold in range(folds):
        without = _kind_models(short + [r for i, r in enumerate(networks) if i % folds != fold], peaks,
                               reference_us, reference_e2e_us)
        for i, record in enumerate(networks):
            if i % folds == fold:
                held_out[i] = _kernel_sums(without, record, peaks, reference_us, reference_e2e_us)
    graph = GraphModel(run_overhead, per_kernel, _context(held_out), 0.0)
    sizes = [network_size_us(sums) for sums in held_out]
    errors = [math.log(max(run_overhead + per_kernel * record.executed + record.reference_us
                           + sum(graph.context_for(kind, size) * p for kind, (_, p, _) in sums.items()), 1e-3)
                       / (record.e2e_ratio * reference_e2e_us))
              for record, sums, size in zip(networks, held_out, sizes)]
    sigma = max(SIGMA_FLOOR, math.sqrt(statistics.fmean(e * e for e in errors)) if errors else DEFAULT_SIGMA)
    return Fitted(kinds.kinds, kinds.pooled, replace(graph, sigma=sigma))


def layout_of(records: Sequence[GraphRecord], probe: str) -> int:
    """The channel block of onnxruntime's blocked layout on the device (0: not used), read from the layout probe
    graph (a 1x1 convolution to `PROBE_CHANNELS` channels): its output channels are padded to a multiple of the
    block."""
    from .design import PROBE_CHANNELS, nchwc_block

    for record in records:
        if record.case == probe:
            for sample in record.kernels:
                if sample.kernel.domain and base_kind(sample.kernel.kind) == "conv.pointwise":
                    return nchwc_block(sample.kernel.outputs[0][1], PROBE_CHANNELS)
    return 0


def new_calibration(device: DeviceProfile, environment: Mapping[str, Any], emulated: bool, design: Mapping[str, Any],
                    records: Sequence[GraphRecord], peaks_of, layout: Mapping[str, Any]) -> Calibration:
    """Fit a calibration to freshly measured records (``peaks_of(records, reference_us, reference_e2e_us)`` measures
    the peaks)."""
    reference_us = statistics.median(r.reference_us for r in records)
    reference_e2e_us = statistics.median(r.reference_e2e_us for r in records)
    peaks = peaks_of(records, reference_us, reference_e2e_us)
    fitted = fit_records(records, peaks, reference_us, reference_e2e_us)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return Calibration(created, device, emulated, dict(environment), dict(design), dict(layout), peaks, reference_us,
                       reference_e2e_us, tuple(records), fitted)


def refit(calibration: Calibration, *, exclude: Sequence[str] = ()) -> Calibration:
    """The same calibration fitted again without the graph groups in ``exclude`` (no measuring)."""
    fitted = fit_records(calibration.records, calibration.peaks, calibration.reference_us,
                         calibration.reference_e2e_us, exclude=exclude)
    return replace(calibration, fitted=fitted)


# --- files and the store --------------------------------------------------------------------------------------------

def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration file; `UsageError` in one line when it is missing, not JSON, or of another version."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"calibration {str(path)!r} does not exist; make one with: shufflebench calibrate "
                         "--device D --output FILE") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable calibration: {exc}") from None
    return Calibration.from_dict(data, path)


def stored_path(calibration: Calibration) -> Path:
    """Where the store keeps ``calibration``: one file per device and fingerprint."""
    return calibrations_dir() / f"{calibration.device.name}-{calibration.fingerprint}.json"


def save_calibration(calibration: Calibration, path: Path) -> Path:
    """Write a calibration atomically."""
    return write_json_atomic(path, calibration.to_dict())


def find_calibration(device: DeviceProfile, environment: Mapping[str, Any] | None = None) -> Calibration | None:
    """The stored calibration of ``device``: the one with the fingerprint of ``environment`` when it is given (a
    measurement's own environment), else the newest one of that device. None when there is none."""
    folder = calibrations_dir()
    if environment is not None:
        path = folder / f"{device.name}-{fingerprint(environment, device)}.json"
        return load_calibration(path) if path.is_file() else None
    candidates = sorted(folder.glob(f"{device.name}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return load_calibration(candidates[0]) if candidates else None

