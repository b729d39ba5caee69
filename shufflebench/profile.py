"""Theoretical cost and measured latency of models on one device: the `profile` stage.

prepared model (layer table -> cost summary) -> a runner for the device measures every model interleaved -> outputs
checked against the reference -> one `ProfileResult` per model. A measurement whose outputs disagree with the
reference (`verify`) is refused, never reported. `compare`, `guidelines`, `regress` and `bench` all measure through
`measure_models`. On a counted device (``counter`` in its profile) a result carries per-inference `Counters`
instead of a latency `Measurement`; `speedup` compares two results of either kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .breakdown import Breakdown, breakdown_of
from .cost import CostSummary
from .counters.figures import Counters, count_ratio
from .devices import DeviceProfile
from .errors import UsageError
from .measure.ratio import Ratio, median_ratio
from .measure.sampling import SamplingPolicy
from .measure.stats import Measurement
from .models import ModelIdentity
from .prepared import PreparedModel
from .runners.base import Progress
from .runners.lookup import runner_for
from .verify import check_outputs, reference_for

PROFILE_SCHEMA = "shufflebench.profile/3"
BREAKDOWN_RUNS = 50  # profiled runs for an operator breakdown (after the timed runs, in a session of their own)


@dataclass(frozen=True)
class ProfileResult:
    """One model's counts and its measurement on one device, and the operator breakdown when it was asked for.

    measurement: the timed latency (None on a counted device); counters: the per-inference counts of a counted
    device (None otherwise).
    """

    model: ModelIdentity
    device: DeviceProfile
    cost: CostSummary
    measurement: Measurement | None
    environment: dict[str, Any]
    session: dict[str, Any]
    emulated: bool
    breakdown: Breakdown | None = None
    counters: Counters | None = None

    def __post_init__(self) -> None:
        if (self.measurement is None) == (self.counters is None):
            raise ValueError("a profile result holds either a timed measurement or counters")

    @property
    def counted(self) -> bool:
        """Counted on a counted device, not timed."""
        return self.counters is not None

    @property
    def timed(self) -> Measurement:
        """The latency measurement, for code that only works with timings; ValueError for a counted result."""
        if self.measurement is None:
            raise ValueError(f"{self.model.label} on {self.device.name} was counted, not timed")
        return self.measurement

    @property
    def _median(self) -> float | None:
        median = self.measurement.median if self.measurement is not None else 0.0
        return median if median > 0 else None

    @property
    def throughput_per_s(self) -> float | None:
        """Images per second at the measured batch (None for a zero median, or when counted)."""
        median = self._median
        return self.model.input_shape[0] / median if median else None

    @property
    def achieved_madd_per_s(self) -> float | None:
        """Multiply-adds per second at the median latency (None when counted)."""
        median = self._median
        return self.cost.flops_madd / median if median else None

    @property
    def fraction_of_peak(self) -> dict[str, float] | None:
        """Achieved multiply-adds and deployed-MAC bandwidth as fractions of the device's published peaks."""
        hardware, achieved, median = self.device.hardware, self.achieved_madd_per_s, self._median
        if not hardware or not achieved or not median:
            return None
        fraction = {}
        if hardware.peak_madd_per_s:
            fraction["madd"] = achieved / hardware.peak_madd_per_s
        if hardware.memory_bandwidth_bytes_per_s:
            bandwidth = self.cost.mac_bytes["deployed"] / median
            fraction["bandwidth"] = bandwidth / hardware.memory_bandwidth_bytes_per_s
        return fraction or None

    @property
    def warnings(self) -> tuple[str, ...]:
        """What limits trust in the figures: the measurement's (or the counters') warnings, then the environment's."""
        own = self.measurement.warnings if self.measurement is not None else ()
        counted = self.counters.warnings if self.counters is not None else ()
        return (*own, *counted, *self.environment["warnings"])

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable result (what ``--format json`` prints and ``--output`` writes)."""
        data: dict[str, Any] = {
            "schema": PROFILE_SCHEMA,
            **self.model.to_dict(),
            "device": self.device.name,
            "device_profile": self.device.to_dict(),
            "emulated": self.emulated,
            **self.cost.to_dict(),
            "latency": self.measurement.to_dict() if self.measurement is not None else None,
            "counters": self.counters.to_dict() if self.counters is not None else None,
            "throughput_per_s": self.throughput_per_s,
            "achieved_madd_per_s": self.achieved_madd_per_s,
            "fraction_of_peak": self.fraction_of_peak,
            "environment": self.environment,
            "session": self.session,
            "warnings": list(self.warnings),
        }
        if self.breakdown is not None:
            data["breakdown"] = self.breakdown.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProfileResult":
        """Inverse of `to_dict`: statistics and warnings are recomputed from the raw samples (or counts)."""
        breakdown, latency, counters = data.get("breakdown"), data.get("latency"), data.get("counters")
        return cls(ModelIdentity.from_dict(data), DeviceProfile.from_dict(data["device_profile"]),
                   CostSummary.from_dict(data), Measurement.from_dict(latency) if latency is not None else None,
                   dict(data["environment"]), dict(data["session"]), bool(data["emulated"]),
                   Breakdown.from_dict(breakdown) if breakdown is not None else None,
                   Counters.from_dict(counters) if counters is not None else None)


def speedup(result: ProfileResult, baseline: ProfileResult) -> Ratio:
    """How many times faster ``result`` is than ``baseline``: the ratio of their median latencies with a bootstrap
    interval over paired rounds, or on a counted device the ratio of their primary counted figure (estimated
    cycles, else instructions) with the counters' reproducibility band."""
    if result.counters is not None and baseline.counters is not None:
        return count_ratio(baseline.counters, result.counters)
    if result.measurement is None or baseline.measurement is None:
        raise ValueError("speedup needs two timed or two counted results")
    return median_ratio(baseline.measurement.samples_s, result.measurement.samples_s)


def measure_models(models: Sequence[PreparedModel], device: DeviceProfile, policy: SamplingPolicy, *,
                   on_progress: Progress = None, verify: bool = True, breakdown: bool = False) -> list[ProfileResult]:
    """Count every model, then measure them interleaved round-robin on ``device`` (drift on a noisy machine hits all
    alike; sample ``i`` of every model comes from round ``i``), ``policy.budget_s`` seconds per model. Outputs are
    checked against the reference before they are trusted (unless ``verify`` is off); ``breakdown`` adds each
    model's operator breakdown (onnxruntime backends)."""
    if breakdown and device.backend != "onnxruntime":
        raise UsageError(f"--breakdown uses onnxruntime's profiler; device {device.name} runs {device.backend}")
    costs = [model.cost for model in models]  # counted first: a model that cannot be counted is never timed
    runner = runner_for(device)
    references = [reference_for(model, device) if verify else None for model in models]

    def check(index: int, outputs: dict) -> None:
        if references[index] is not None:
            check_outputs(f"{models[index].label} on {device.name}", references[index], next(iter(outputs.values())))

    wanted = any(reference is not None for reference in references)
    runs = runner.measure(models, policy, on_progress=on_progress, return_outputs=wanted,
                          profile_runs=BREAKDOWN_RUNS if breakdown else 0, check=check if wanted else None)
    return [ProfileResult(model.identity, device, cost, run.measurement, run.environment, run.session, run.emulated,
                          breakdown_of(model, run.node_profile) if breakdown and run.node_profile else None,
                          run.counters)
            for model, cost, run in zip(models, costs, runs)]


def profile_model(model: PreparedModel, device: DeviceProfile, policy: SamplingPolicy, *,
                  on_progress: Progress = None, verify: bool = True, breakdown: bool = False) -> ProfileResult:
    """Count ``model`` and measure it on ``device``: `measure_models` of one."""
    return measure_models([model], device, policy, on_progress=on_progress, verify=verify, breakdown=breakdown)[0]
