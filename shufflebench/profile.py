"""Theoretical cost and measured latency of models on one device: the `profile` stage.

prepared model (layer table -> cost summary) -> a runner for the device measures every model interleaved -> outputs
checked against the reference -> one `ProfileResult` per model. A measurement whose outputs disagree with the
reference (`verify`) is refused, never reported. `compare`, `guidelines`, `regress` and `bench` all measure through
`measure_models`. On a counted device (``counter`` in its profile) a result carries per-inference `Counters`
instead of a latency `Measurement`; `speedup` compares two results of either kind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .breakdown import Breakdown, breakdown_of
from .cost import CostSummary
from .counters.figures import Counters, count_ratio
from .devices import DeviceProfile
from .errors import UsageError
from .latency.summary import PredictionSummary
from .measure.ratio import Ratio, median_ratio
from .measure.sampling import SamplingPolicy
from .measure.stats import Measurement
from .models import ModelIdentity
from .prepared import PreparedModel
from .runners.base import Progress
from .runners.lookup import runner_for
from .verify import check_outputs, reference_for

if TYPE_CHECKING:
    from .latency.calibration import Calibration
    from .latency.source import CalibrationSource

PROFILE_SCHEMA = "shufflebench.profile/2"
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
    prediction: PredictionSummary | None = None
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
    def peaks(self) -> tuple[float | None, float | None, str | None]:
        """Peak multiply-adds per second and memory bandwidth (bytes per second) with their source: the
        calibration's measured ones when a prediction was made, else the device profile's published ones."""
        if self.prediction is not None:
            return (self.prediction.peak_madd_per_s, self.prediction.memory_bandwidth_bytes_per_s,
                    f"calibration {self.prediction.calibration}")
        hardware = self.device.hardware
        if hardware and (hardware.peak_madd_per_s or hardware.memory_bandwidth_bytes_per_s):
            return hardware.peak_madd_per_s, hardware.memory_bandwidth_bytes_per_s, "device profile"
        return None, None, None

    @property
    def fraction_of_peak(self) -> dict[str, float] | None:
        """Achieved multiply-adds and deployed-MAC bandwidth as fractions of the device's peaks (`peaks`)."""
        peak_madd, bandwidth_peak, _ = self.peaks
        achieved, median = self.achieved_madd_per_s, self._median
        if not achieved or not median:
            return None
        fraction = {}
        if peak_madd:
            fraction["madd"] = achieved / peak_madd
        if bandwidth_peak:
            bandwidth = self.cost.mac_bytes["deployed"] / median
            fraction["bandwidth"] = bandwidth / bandwidth_peak
        return fraction or None

    @property
    def interrupted(self) -> bool:
        """Ctrl-C ended the measurement: its samples are what finished before it (a count is never partial)."""
        return self.measurement is not None and self.measurement.interrupted

    @property
    def measured_over_predicted(self) -> float | None:
        """Measured median latency over the predicted one (None without a prediction)."""
        median = self._median
        if self.prediction is None or not self.prediction.predicted_ms or median is None:
            return None
        return median * 1e3 / self.prediction.predicted_ms

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
            "fraction_of_peak_source": self.peaks[2] if self.fraction_of_peak else None,
            "environment": self.environment,
            "session": self.session,
            "warnings": list(self.warnings),
        }
        if self.breakdown is not None:
            data["breakdown"] = self.breakdown.to_dict()
        data["prediction"] = None if self.prediction is None else {
            **self.prediction.to_dict(), "measured_over_predicted": self.measured_over_predicted}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProfileResult":
        """Inverse of `to_dict`: statistics and warnings are recomputed from the raw samples (or counts)."""
        breakdown, prediction = data.get("breakdown"), data.get("prediction")
        latency, counters = data.get("latency"), data.get("counters")
        return cls(ModelIdentity.from_dict(data), DeviceProfile.from_dict(data["device_profile"]),
                   CostSummary.from_dict(data), Measurement.from_dict(latency) if latency is not None else None,
                   dict(data["environment"]), dict(data["session"]), bool(data["emulated"]),
                   breakdown=Breakdown.from_dict(breakdown) if breakdown is not None else None,
                   prediction=PredictionSummary.from_dict(prediction) if prediction is not None else None,
                   counters=Counters.from_dict(counters) if counters is not None else None)


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
                   on_progress: Progress = None, verify: bool = True, breakdown: bool = False,
                   calibration: "CalibrationSource | None" = None) -> list[ProfileResult]:
    """Count every model, then measure them interleaved round-robin on ``device`` (drift on a noisy machine hits all
    alike; sample ``i`` of every model comes from the same round, each model timed warm in its turn),
    ``policy.budget_s`` seconds per model. Outputs are checked against the reference before they are trusted
    (unless ``verify`` is off); ``breakdown`` adds each model's operator breakdown (onnxruntime backends);
    ``calibration`` adds each model's predicted latency when the source holds a calibration for the device as
    measured (`latency.calibration.CalibrationSource`)."""
    if breakdown and device.backend != "onnxruntime":
        raise UsageError(f"--breakdown uses onnxruntime's profiler; device {device.name} runs {device.backend}")
    costs = [model.cost for model in models]  # counted first: a model that cannot be counted is never timed
    # A calibration file is read before measuring, so a bad one is refused before anything is measured; the store
    # is searched after, by the measurement's own environment.
    given = calibration.resolve(device) if calibration is not None and calibration.path is not None else None
    runner = runner_for(device)
    references = [reference_for(model, device) if verify else None for model in models]

    def check(index: int, outputs: dict) -> None:
        reference = references[index]
        if reference is not None:
            check_outputs(f"{models[index].label} on {device.name}", reference, next(iter(outputs.values())))

    wanted = any(reference is not None for reference in references)
    runs = runner.measure(models, policy, on_progress=on_progress, return_outputs=wanted,
                          profile_runs=BREAKDOWN_RUNS if breakdown else 0, check=check if wanted else None)
    results = [ProfileResult(model.identity, device, cost, run.measurement, run.environment, run.session,
                             run.emulated, breakdown=breakdown_of(model, run.node_profile)
                             if breakdown and run.node_profile else None, counters=run.counters)
               for model, cost, run in zip(models, costs, runs)]
    if calibration is None or not results or device.counted:
        return results
    try:
        found = given or calibration.resolve(device, results[0].environment)
    except UsageError as exc:
        # A stored calibration this version cannot read (an older format): the measurements stand without a
        # prediction, and each result says why.
        note = f"no prediction: {exc}"
        return [replace(r, environment={**r.environment, "warnings": [*r.environment["warnings"], note]})
                for r in results]
    return with_predictions(results, models, found)


def with_predictions(results: Sequence[ProfileResult], models: Sequence[PreparedModel],
                     calibration: "Calibration | None") -> list[ProfileResult]:
    """Each result with the prediction of ``calibration`` (a `latency.calibration.Calibration`) beside its
    measurement, and the calibration's warnings among the result's; None leaves the results as they are."""
    if calibration is None:
        return list(results)
    from .latency.predictor import predict_model

    notes = [f"prediction: {warning}" for warning in calibration.warnings]
    return [replace(result, prediction=predict_model(model, calibration).summary(),
                    environment={**result.environment, "warnings": [*result.environment["warnings"], *notes]})
            for result, model in zip(results, models)]


def profile_model(model: PreparedModel, device: DeviceProfile, policy: SamplingPolicy, *,
                  on_progress: Progress = None, verify: bool = True, breakdown: bool = False,
                  calibration: "CalibrationSource | None" = None) -> ProfileResult:
    """Count ``model`` and measure it on ``device``: `measure_models` of one."""
    return measure_models([model], device, policy, on_progress=on_progress, verify=verify, breakdown=breakdown,
                          calibration=calibration)[0]
