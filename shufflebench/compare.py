"""Theoretical versus actual speedup of several models on one device (`compare`).

Every model is counted, then all are measured interleaved round-robin (`profile.measure_models`), so drift hits them
alike. Against the baseline model each gets:

* theoretical speedup = baseline multiply-adds / model multiply-adds,
* MAC ratio           = baseline deployed MAC / model deployed MAC,
* actual speedup      = baseline median latency / model median latency, with a bootstrap confidence interval over
  the paired rounds (`measure.ratio`),
* efficiency          = actual / theoretical speedup (1.0 means FLOPs told the whole truth).

On a counted device the actual speedup is the ratio of the primary counted figure (estimated cycles where caches
are simulated, else instructions; `profile.speedup`), and ``counted_speedups`` holds the ratio of every counted
figure (instructions, estimated cycles, loads, stores...).

The papers' published latencies (``data/published.toml``) are shown beside the measured ones where they exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .devices import DeviceProfile
from .errors import UsageError
from .measure.ratio import Ratio
from .measure.sampling import SamplingPolicy
from .models import ModelRef
from .prepared import PreparedModel
from .profile import ProfileResult, measure_models, speedup
from .published import latency_for
from .runners.base import Progress

if TYPE_CHECKING:
    from .latency.source import CalibrationSource

COMPARE_SCHEMA = "shufflebench.compare/2"
#: Keys of a profile result that a comparison holds once for all models, not in every model's entry.
_SHARED_KEYS = ("schema", "device_profile", "environment", "session")


@dataclass(frozen=True)
class PaperSpeed:
    """A latency the paper printed for this variant, and the speedup it implies against the baseline's."""

    latency_ms: float
    device: str
    source: str
    speedup_vs_baseline: float | None


@dataclass(frozen=True)
class ComparedModel:
    """One model of a comparison: its profile and how it stands against the baseline model (``counted_speedups``:
    baseline count / model count of every counted figure, on a counted device)."""

    result: ProfileResult
    theoretical_speedup: float | None
    mac_ratio: float
    actual_speedup: Ratio
    paper: PaperSpeed | None
    counted_speedups: dict[str, float] | None = None
    predicted_speedup: float | None = None

    @property
    def efficiency(self) -> float | None:
        """Actual over theoretical speedup."""
        return self.actual_speedup.estimate / self.theoretical_speedup if self.theoretical_speedup else None

    def to_dict(self) -> dict[str, Any]:
        entry = {k: v for k, v in self.result.to_dict().items() if k not in _SHARED_KEYS}
        entry["vs_baseline"] = {
            "theoretical_speedup": self.theoretical_speedup,
            "mac_ratio": self.mac_ratio,
            "actual_speedup": self.actual_speedup.to_dict(),
            "efficiency": self.efficiency,
            "predicted_speedup": self.predicted_speedup,
            "counted_speedups": self.counted_speedups,
        }
        entry["paper"] = None if self.paper is None else self.paper.__dict__
        return entry


@dataclass(frozen=True)
class Comparison:
    """Several models measured interleaved on one device, each against the baseline model."""

    device: DeviceProfile
    baseline: str
    models: tuple[ComparedModel, ...]

    @property
    def emulated(self) -> bool:
        return any(m.result.emulated for m in self.models)

    @property
    def interrupted(self) -> bool:
        """Ctrl-C ended the measurement: the rounds finished before it are what is compared."""
        return any(m.result.interrupted for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable comparison (what ``--format json`` prints)."""
        first = self.models[0].result
        return {
            "schema": COMPARE_SCHEMA,
            "device": self.device.name,
            "device_profile": self.device.to_dict(),
            "emulated": self.emulated,
            "baseline": self.baseline,
            "models": [m.to_dict() for m in self.models],
            "environment": first.environment,
            "session": first.session,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Comparison":
        """Inverse of `to_dict` (every model gets the comparison's environment and session)."""
        shared = {key: data[key] for key in _SHARED_KEYS[1:]}
        models = []
        for entry in data["models"]:
            vs, paper = entry["vs_baseline"], entry["paper"]
            models.append(ComparedModel(ProfileResult.from_dict({**entry, **shared}), vs["theoretical_speedup"],
                                        vs["mac_ratio"], Ratio.from_dict(vs["actual_speedup"]),
                                        PaperSpeed(**paper) if paper else None, vs.get("counted_speedups"),
                                        vs.get("predicted_speedup")))
        return cls(DeviceProfile.from_dict(data["device_profile"]), data["baseline"], tuple(models))


def with_baseline(refs: Sequence[ModelRef], baseline: ModelRef | None) -> tuple[list[ModelRef], int]:
    """The models to measure and the index of the baseline among them: the first model when none is named, the
    named one where it is among the models, else the named one added at the end. A model given twice (also through
    an alias or flags that spell the same variant) and a comparison of fewer than two models are refused."""
    refs = list(refs)
    labels = [ref.label for ref in refs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise UsageError(f"model {twice[0]} is given twice; compare measures each model once")
    if baseline is not None and baseline.label not in labels:
        refs, labels = [*refs, baseline], [*labels, baseline.label]
    if len(refs) < 2:
        raise UsageError(f"compare needs two different models or more (or --baseline); got only {labels[0]}")
    return refs, labels.index(baseline.label) if baseline is not None else 0


def compare_models(models: Sequence[PreparedModel], device: DeviceProfile, policy: SamplingPolicy, *,
                   baseline: int = 0, on_progress: Progress = None, breakdown: bool = False,
                   calibration: "CalibrationSource | None" = None) -> Comparison:
    """Measure ``models`` interleaved on ``device`` (``policy.budget_s`` per model) and compare each with
    ``models[baseline]``; with ``breakdown`` each model also gets its operator breakdown, with a calibration its
    predicted latency and speedup (`profile.measure_models`)."""
    results = measure_models(models, device, policy, on_progress=on_progress, breakdown=breakdown,
                             calibration=calibration)
    return compare_results(results, baseline)


def compare_results(results: Sequence[ProfileResult], baseline: int = 0) -> Comparison:
    """The comparison of finished measurements against ``results[baseline]``."""
    base = results[baseline]
    base_paper = latency_for(base.model.name, base.model.variant)
    models = []
    for result in results:
        ratio = speedup(result, base)
        theoretical = base.cost.flops_madd / result.cost.flops_madd if result.cost.flops_madd else None
        mac_ratio = base.cost.mac_bytes["deployed"] / result.cost.mac_bytes["deployed"]
        published = latency_for(result.model.name, result.model.variant)
        paper = None if published is None else PaperSpeed(
            published.latency_ms, published.device, published.source,
            base_paper.latency_ms / published.latency_ms if base_paper else None)
        predicted = (base.prediction.predicted_ms / result.prediction.predicted_ms
                     if base.prediction and result.prediction else None)
        models.append(ComparedModel(result, theoretical, mac_ratio, ratio, paper, counted_speedups(result, base),
                                    predicted))
    return Comparison(base.device, base.model.label, tuple(models))


def counted_speedups(result: ProfileResult, base: ProfileResult) -> dict[str, float] | None:
    """``base / result`` of every figure both counted (None for timed results)."""
    if result.counters is None or base.counters is None:
        return None
    mine, theirs = result.counters.figures, base.counters.figures
    return {name: theirs[name] / value for name, value in mine.items() if name in theirs and value}
