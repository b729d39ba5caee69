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
from .records import GraphRecord

CALIBRATION_SCHEMA = "shufflebench.calibration"
CALIBRATION_VERSION = 2  # 1: interleaved graphs timed cold, stems fitted with the kxk convolutions
#: The environment keys that make two calibrations interchangeable (no hostname: none is recorded).
FINGERPRINT_KEYS = ("machine", "cpu_model", "board_model", "emulated", "qemu_cpu", "threads", "provider",
                    "optimization_level")
POOLED = ("compute", "memory")  # the fallback predictors, one per group of kinds
SIGMA_FLOOR = 0.03  # no whole-graph prediction is trusted to better than 3%
MIN_CONTEXT_KERNELS = 8  # a kind gets its own context factor from this many kernels in the networks
MIN_CONTEXT_NETWORKS = 3  # spread over at least this many networks
DEFAULT_SIGMA = 0.15  # without whole networks to check against


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
class GraphModel:
    """What a whole graph costs beyond its kernels, and how far to trust a prediction.

    run_overhead_us + per_kernel_us x kernels: the time of a run outside the kernels' own times (session, dispatch,
    allocation), fitted on the short calibration graphs. context: the factor between the kernels' times inside whole
    networks and their predictions from the isolated kernels, per kernel kind where the networks ran at least
    `MIN_CONTEXT_KERNELS` of it in `MIN_CONTEXT_NETWORKS` networks, else per group (``compute``: convolutions and matrix products; ``memory``: the
    others); 1.0 without whole networks. Inside a network a kernel finds other data in the caches than alone: a
    fully connected layer's weights, say, are evicted by the layers before it. sigma: standard deviation of the log
    error of a whole-network prediction (each network left out of the context factors in turn).
    """

    run_overhead_us: float
    per_kernel_us: float
    context: dict[str, float]
    sigma: float

    def context_for(self, kind: str) -> float:
        """The context factor of a kernel kind: its own, else its group's."""
        return self.context.get(kind) or self.context["compute" if is_compute(kind) else "memory"]

    def to_dict(self) -> dict[str, Any]:
        return {"run_overhead_us": self.run_overhead_us, "per_kernel_us": self.per_kernel_us,
                "context": dict(self.context), "sigma": self.sigma}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GraphModel":
        return cls(float(data["run_overhead_us"]), float(data["per_kernel_us"]),
                   {k: float(v) for k, v in data["context"].items()}, float(data["sigma"]))


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
        return self.pooled["compute" if is_compute(kind) else "memory"], True

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

def _times(records: Iterable[GraphRecord], reference_us: float, kind_of=lambda kind: kind) -> dict[str, tuple[list, list]]:
    by_kind: dict[str, tuple[list, list]] = {}
    for record in records:
        for sample in record.kernels:
            kernels, times = by_kind.setdefault(kind_of(sample.kernel.kind), ([], []))
            kernels.append(sample.kernel)
            times.append(sample.ratio * reference_us)
    return by_kind


def _kernel_sums(fitted: "Fitted", record: GraphRecord, peaks: Peaks,
                 reference_us: float) -> dict[str, tuple[float, float, int]]:
    """Per kernel kind: the record's kernels' measured and predicted times (microseconds) and their count."""
    sums: dict[str, tuple[float, float, int]] = {}
    for sample in record.kernels:
        measured, predicted, count = sums.get(sample.kernel.kind, (0.0, 0.0, 0))
        model = fitted.model_for(sample.kernel.kind)[0]
        sums[sample.kernel.kind] = (measured + sample.ratio * reference_us,
                                    predicted + model.components(sample.kernel, peaks).total_us, count + 1)
    return sums


def _context(sums: Sequence[dict[str, tuple[float, float, int]]]) -> dict[str, float]:
    """Context factors from networks' kernel sums: per kind with enough kernels, and per group."""
    totals: dict[str, list[float]] = {group: [0.0, 0.0, 0.0, 0.0] for group in POOLED}
    for record in sums:
        for kind, (measured, predicted, count) in record.items():
            for key in (kind, "compute" if is_compute(kind) else "memory"):
                total = totals.setdefault(key, [0.0, 0.0, 0.0, 0.0])
                total[0] += measured
                total[1] += predicted
                total[2] += count
                total[3] += 1  # networks (a network counts once per kind, and once more per group: harmless)
    return {key: (measured / predicted if predicted > 0 else 1.0)
            for key, (measured, predicted, count, networks) in totals.items()
            if key in POOLED or (count >= MIN_CONTEXT_KERNELS and networks >= MIN_CONTEXT_NETWORKS)}


def fit_records(records: Sequence[GraphRecord], peaks: Peaks, reference_us: float, reference_e2e_us: float, *,
                exclude: Sequence[str] = ()) -> Fitted:
    """The predictors of a calibration; groups in ``exclude`` are left out entirely (a family held out).

    Kernel kinds are fitted on the kernels of every graph but the whole networks. The run overhead comes from the
    short graphs (kernels, chains, peaks: their end-to-end time is least disturbed by a busy machine): their
    end-to-end time minus their kernels' times, as a line in the number of kernels. The whole networks (groups
    ``model/...``) give the context factors (`GraphModel`: their kernels' profiled times over the isolated kernels'
    predictions, summed per kind; no end-to-end time involved) and the uncertainty (each network's end-to-end time
    against its prediction, the network left out of the context factors).
    """
    kept = [r for r in records if r.group not in exclude]
    short = [r for r in kept if not r.group.startswith("model/")]
    networks = [r for r in kept if r.group.startswith("model/")]
    kinds = {kind: fit_kind(kind, kernels, times, peaks)
             for kind, (kernels, times) in _times(short, reference_us).items() if len(times) >= MIN_KIND_SAMPLES}
    pooled = {group: fit_kind(group, kernels, times, peaks)
              for group, (kernels, times) in _times(short, reference_us,
                                                    lambda k: "compute" if is_compute(k) else "memory").items()}
    outside = [r.e2e_ratio * reference_e2e_us - (sum(s.ratio for s in r.kernels) + 1.0) * reference_us
               for r in short]
    run_overhead, per_kernel = robust_line([r.executed for r in short], outside)
    isolated = Fitted(kinds, pooled, GraphModel(0.0, 0.0, {group: 1.0 for group in POOLED}, 0.0))
    sums = [_kernel_sums(isolated, r, peaks, reference_us) for r in networks]
    context = _context(sums)
    errors = []
    for i, record in enumerate(networks):
        others = GraphModel(0.0, 0.0, _context(sums[:i] + sums[i + 1:]), 0.0)
        predicted = (run_overhead + per_kernel * record.executed + reference_us
                     + sum(others.context_for(kind) * p for kind, (_, p, _) in sums[i].items()))
        errors.append(math.log(predicted / (record.e2e_ratio * reference_e2e_us)))
    sigma = max(SIGMA_FLOOR, math.sqrt(statistics.fmean(e * e for e in errors)) if errors else DEFAULT_SIGMA)
    return Fitted(kinds, pooled, GraphModel(run_overhead, per_kernel, context, sigma))


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
    """Fit a calibration to freshly measured records (``peaks_of(records, reference_us)`` measures the peaks)."""
    reference_us = statistics.median(r.reference_us for r in records)
    reference_e2e_us = statistics.median(r.reference_e2e_us for r in records)
    peaks = peaks_of(records, reference_us)
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

