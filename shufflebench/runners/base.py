"""The one small interface every backend implements, and the data a measurement returns.

A runner takes prepared models (`PreparedModel`) and a sampling policy and returns one `RunResult` per model: the raw
samples as a `Measurement` (on a counted device the per-inference `Counters` instead), the environment it ran in, the session options it used, and, when asked, the model's
outputs for the seeded input (so the caller can check them before trusting the timing). Several models are always
measured interleaved round-robin (one model is an interleaved run of one). Runners are found by name in `lookup`;
this module imports none of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

from ..counters.figures import Counters
from ..devices import DeviceProfile
from ..measure.sampling import SamplingPolicy
from ..measure.stats import Measurement
from ..prepared import PreparedModel

#: on_progress(phase, runs_done, elapsed_s), phase "warmup" or "timed".
Progress = Optional[Callable[[str, int, float], None]]
#: check(index, {output name: array}): raise to refuse model ``index`` (its outputs are wrong). Local runners call it
#: before timing; a remote board cannot call back, so its outputs are checked when the answer arrives.
OutputCheck = Optional[Callable[[int, dict], None]]


@dataclass(frozen=True)
class RunResult:
    """One measurement of one model on one device: timed (``measurement``) or counted (``counters``)."""

    measurement: Measurement | None
    environment: dict[str, Any]
    session: dict[str, Any]
    emulated: bool
    outputs: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    load_s: float | None = None
    node_profile: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    counters: Counters | None = None


class Runner(Protocol):
    """What every backend offers: measure models interleaved under a sampling policy."""

    profile: DeviceProfile

    def measure(self, models: Sequence[PreparedModel], policy: SamplingPolicy, *, on_progress: Progress = None,
                return_outputs: bool = False, profile_runs: int = 0, check: OutputCheck = None) -> list[RunResult]:
        """Time ``models`` interleaved round-robin, in turns (sample ``i`` of each from the same round), in the
        order given; raise `SetupError` when the device cannot run them. ``profile_runs`` > 0 adds a per-kernel
        time profile of that many runs (onnxruntime backends)."""
        ...


class RunnerBase(ABC):
    """What every runner shares: the device profile it measures on."""

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile

    @abstractmethod
    def measure(self, models: Sequence[PreparedModel], policy: SamplingPolicy, *, on_progress: Progress = None,
                return_outputs: bool = False, profile_runs: int = 0, check: OutputCheck = None) -> list[RunResult]:
        """See `Runner.measure`."""
