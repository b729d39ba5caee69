"""The one small interface every backend implements, and the data a measurement returns.

A runner takes a model (`ModelRef`) and a sampling policy and returns a `RunResult`: the raw samples as a
`Measurement`, the environment it ran in, the session options it used, and, when asked, the model's outputs for the
seeded inputs (so the caller can check them against torch before trusting the timing). The CLI never talks to
onnxruntime or torch directly; it asks `runner_for(profile)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from ..devices import DeviceProfile
from ..errors import MeasurementError, UsageError
from ..measure.sampling import SamplingPolicy
from ..measure.stats import Measurement
from ..models import ModelRef

#: on_progress(phase, runs_done, elapsed_s), phase "warmup" or "timed".
Progress = Optional[Callable[[str, int, float], None]]
#: check(index, {output name: array}): raise to refuse model ``index`` (its outputs are wrong). Local runners call it
#: before timing; a remote board cannot call back, so its outputs are checked when the answer arrives.
OutputCheck = Optional[Callable[[int, dict], None]]

INPUT_NAME = "input"  # the name `export` gives the single input
SEED = 0


@dataclass(frozen=True)
class RunResult:
    """One measurement of one model on one device."""

    measurement: Measurement
    environment: dict[str, Any]
    session: dict[str, Any]
    emulated: bool
    outputs: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    load_s: float | None = None
    node_profile: dict[str, Any] | None = field(default=None, compare=False, repr=False)


class Runner(Protocol):
    """What every backend offers: measure a model under a sampling policy."""

    profile: DeviceProfile

    def measure(self, ref: ModelRef, policy: SamplingPolicy, *, on_progress: Progress = None,
                return_outputs: bool = False, profile_runs: int = 0, check: OutputCheck = None) -> RunResult:
        """Time ``ref`` at its input shape; raise `SetupError` when the device cannot run it. ``profile_runs`` > 0
        adds a per-kernel time profile of that many runs (onnxruntime backends)."""
        ...

    def measure_many(self, refs: list[ModelRef], policy: SamplingPolicy, *, on_progress: Progress = None,
                     return_outputs: bool = False, profile_runs: int = 0,
                     check: OutputCheck = None) -> list[RunResult]:
        """Time several models interleaved round-robin (sample ``i`` of each from round ``i``), in the order given."""
        ...


class RunnerBase(ABC):
    """What every runner shares: its device profile, and `measure` as `measure_many` of one model."""

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile

    def measure(self, ref: ModelRef, policy: SamplingPolicy, **options: Any) -> RunResult:
        """Time one model (the keyword options of `Runner.measure`)."""
        return self.measure_many([ref], policy, **options)[0]

    @abstractmethod
    def measure_many(self, refs: list[ModelRef], policy: SamplingPolicy, **options: Any) -> list[RunResult]:
        """Time several models interleaved round-robin (see `Runner.measure_many`)."""


def runner_for(profile: DeviceProfile) -> Runner:
    """The runner for a device profile (reference-only profiles are refused)."""
    if not profile.runnable:
        raise UsageError(f"device {profile.name!r} is reference-only (published figures); it cannot run models")
    if profile.location in ("ssh", "emulated"):
        from .board import BoardRunner

        return BoardRunner(profile)
    if profile.backend == "torch":
        from .torch_eager import TorchRunner

        return TorchRunner(profile)
    from .onnxruntime_local import OnnxRuntimeRunner

    return OnnxRuntimeRunner(profile)


def seeded_inputs(shape: tuple[int, ...], seed: int = SEED) -> dict[str, Any]:
    """The inputs every backend feeds: uniform [-1, 1) floats from a fixed seed, identical on every platform."""
    from ..measure.board_runner import make_inputs

    return make_inputs({INPUT_NAME: {"shape": list(shape), "dtype": "float32"}}, seed)


def torch_reference(ref: ModelRef, seed: int = SEED):
    """torch's output for the seeded input (None for ONNX files, which have no torch model)."""
    if ref.source == "onnx":
        return None
    import torch

    feed = seeded_inputs(ref.input_shape, seed)[INPUT_NAME]
    with torch.inference_mode():
        return ref.build()(torch.from_numpy(feed)).numpy()


def check_outputs(label: str, expected, actual, *, rtol: float = 1e-3, atol: float = 1e-4) -> None:
    """Refuse a measurement whose outputs disagree with the reference: |a - e| <= atol + rtol * max|e|."""
    import numpy as np

    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        raise MeasurementError(f"{label}: output shape {actual.shape} differs from torch's {expected.shape}")
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    worst = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    if not worst <= atol + rtol * scale:
        raise MeasurementError(
            f"{label}: outputs disagree with torch (max abs difference {worst:.3g} against output scale "
            f"{scale:.3g}); not timing a model that computes something else"
        )
