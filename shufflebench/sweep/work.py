"""What a sweep worker does with one architecture: rebuild it, count it, measure it on one device, or predict it
from one device's calibration.

Plain functions, no Ray: the engine runs them in Ray tasks and actors, a benchmark's plain loop calls them directly,
and a measurement goes through the same library as ``shufflebench profile`` (`PreparedModel`, `profile_model`), a
prediction through ``shufflebench predict``'s (`predict_model`), so a sweep's numbers are those commands' numbers.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable

from ..cost import CostSummary
from ..devices import DeviceProfile
from ..errors import UsageError
from ..measure.sampling import SamplingPolicy
from ..models import ModelRef, resolve_model, seeded
from ..prepared import PreparedModel
from ..profile import ProfileResult, profile_model
from .space import Architecture, file_digest, space_builders

if TYPE_CHECKING:
    from ..latency.calibration import Calibration

#: measure(model, device, policy) -> ProfileResult: `profile_model` by default; tests and benchmarks pass their own
#: (it must be importable by name on the workers, or picklable by value).
Measure = Callable[[PreparedModel, DeviceProfile, SamplingPolicy], ProfileResult]


class SpaceModel(PreparedModel):
    """A `PreparedModel` whose module comes from one builder of a user's space (not from ``module:callable``)."""

    def __init__(self, ref: ModelRef, builder: Callable[[], Any]) -> None:
        super().__init__(ref)
        self._builder = builder

    @cached_property
    def module(self) -> Any:
        """Built once and seeded, like every other model (`ModelRef.build`)."""
        import torch

        module = seeded(self._builder)
        if not isinstance(module, torch.nn.Module):
            raise UsageError(f"{self.label}: the builder returned {type(module).__name__}, not a torch.nn.Module")
        return module.eval()


def prepare_architecture(arch: Architecture, cost: CostSummary | None = None) -> PreparedModel:
    """The `PreparedModel` of ``arch`` on this machine (the user's package and the ``.onnx`` files must be here
    too); with ``cost``, the counts the count task already made are reused instead of traced again."""
    if arch.source == "zoo":
        model = PreparedModel(resolve_model(arch.target, batch=arch.input_shape[0]))
    elif arch.source == "onnx":
        if not os.path.isfile(arch.target):
            raise UsageError(f"{arch.target} is not on this machine (a sweep over .onnx files needs them at the same "
                             "path on every node)")
        if file_digest(arch.target) != arch.digest:
            raise UsageError(f"{arch.target} changed since the sweep was planned (its SHA-256 differs)")
        model = PreparedModel(resolve_model(arch.target, batch=arch.input_shape[0], input_shape=arch.input_shape))
    else:
        space, _, name = arch.target.rpartition("/")
        builders = space_builders(space)
        if name not in builders:
            raise UsageError(f"the space {space} no longer offers {name!r}")
        model = SpaceModel(ModelRef(arch.target, "callable", arch.input_shape, target=arch.target), builders[name][0])
    if cost is not None:
        model.__dict__["cost"] = cost  # cached_property's own slot: measure_models reads model.cost, not the trace
    return model


def count_architecture(arch: Architecture) -> CostSummary:
    """Multiply-adds, params and MAC of ``arch`` (no hardware)."""
    return prepare_architecture(arch).cost


@dataclass(frozen=True)
class DeviceRun:
    """One architecture measured on one device: profile's result, where it ran, when (Unix time) and for how long."""

    result: ProfileResult
    worker: str
    started_at: float
    duration_s: float


def measure_architecture(arch: Architecture, cost: CostSummary, device: DeviceProfile, policy: SamplingPolicy,
                         measure: Measure = profile_model) -> DeviceRun:
    """Measure ``arch`` on ``device`` as ``shufflebench profile`` does (outputs checked against torch first)."""
    started_at, started = time.time(), time.perf_counter()
    result = measure(prepare_architecture(arch, cost), device, policy)
    return DeviceRun(result, worker_name(), started_at, time.perf_counter() - started)


@dataclass(frozen=True)
class PredictionRun:
    """One architecture predicted from one device's calibration: the latency, the calibration's label, where."""

    predicted_ms: float
    predictor: str
    worker: str


def predict_architecture(arch: Architecture, cost: CostSummary, calibration: "Calibration") -> PredictionRun:
    """Predict ``arch`` on ``calibration``'s device as ``shufflebench predict`` does (nothing is measured)."""
    from ..latency.predictor import predict_model

    prediction = predict_model(prepare_architecture(arch, cost), calibration)
    return PredictionRun(prediction.predicted_ms, f"calibration {calibration.label}",
                         worker_name())


def worker_name() -> str:
    """``host:pid`` of this process, recorded with each row."""
    return f"{socket.gethostname()}:{os.getpid()}"
