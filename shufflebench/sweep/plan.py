"""What a sweep run has to do, how far it got, and what it did: plain data, no Ray.

`plan_sweep` compares the search space with the store: architectures not counted yet (or whose counting failed)
are counted, in measure mode every architecture not yet measured on a device (or whose measurement failed) is
measured there, and in predict mode every architecture without a prediction for a device is predicted from that
device's calibration. Everything already in the store is left alone, so a rerun, or the run after an interruption, does
only what is missing. A `Stage` (counting, or one device) keeps the tally as results arrive and says its rate and
time left; a `SweepSummary` is the run's result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..devices import DeviceProfile
from ..errors import UsageError
from .space import Architecture
from .store import Store

if TYPE_CHECKING:
    from ..latency.calibration import Calibration

SWEEP_SCHEMA = "shufflebench.sweep/1"
COUNT_STAGE = "count"


class Mode(str, Enum):
    """count: multiply-adds, params and MAC only; measure: also latency on each device; predict: latency from each
    device's calibration (`shufflebench calibrate`), nothing measured."""

    COUNT = "count"
    MEASURE = "measure"
    PREDICT = "predict"


@dataclass(frozen=True)
class SweepPlan:
    """The work of one run: the architectures to count, and per device the architectures to measure (or, in predict
    mode, to predict from ``calibrations[device]``), in space order; ``done_before`` says how many of each stage the
    store already held."""

    mode: Mode
    architectures: tuple[Architecture, ...]
    devices: tuple[DeviceProfile, ...]
    to_count: tuple[Architecture, ...]
    per_device: dict[str, tuple[Architecture, ...]]
    done_before: dict[str, int]
    calibrations: Mapping[str, "Calibration"] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing left to do."""
        return not self.to_count and not any(self.per_device.values())


def check_mode(mode: Mode | str, devices: Sequence[Any] | None) -> Mode:
    """The mode, checked against the devices given (None: none given): count mode takes no device."""
    try:
        chosen = Mode(mode)
    except ValueError:
        raise UsageError(f"--mode {mode!r} is not offered; allowed: {', '.join(m.value for m in Mode)}") from None
    if chosen is Mode.COUNT and devices:
        raise UsageError("--device is for measure and predict modes; count mode needs no device")
    return chosen


def check_devices(mode: Mode, devices: Sequence[DeviceProfile]) -> None:
    """`check_mode`, then: measure and predict modes need at least one device, each given once, each able to run
    models."""
    check_mode(mode, devices)
    if mode is not Mode.COUNT and not devices:
        raise UsageError(f"{mode.value} mode needs a device: give --device (or --mode count)")
    names = [profile.name for profile in devices]
    if len(set(names)) != len(names):
        raise UsageError(f"a device is given twice: {', '.join(names)}")
    for profile in devices:
        if not profile.runnable:
            raise UsageError(f"device {profile.name!r} is reference-only (published figures); it cannot run models")
        if profile.counted:
            raise UsageError(f"device {profile.name!r} counts instructions; a sweep stores latencies: give the "
                             "device it counts for (compare and regress take counted devices)")


def calibrations_for(mode: Mode, devices: Sequence[DeviceProfile]) -> dict[str, "Calibration"]:
    """In predict mode, each device's stored calibration (`UsageError` in one line for a device without one, saying
    how to make it); nothing in the other modes."""
    if mode is not Mode.PREDICT:
        return {}
    from ..latency.source import CalibrationSource

    return {device.name: CalibrationSource().require(device) for device in devices}


def plan_sweep(store: Store, architectures: Sequence[Architecture], devices: Sequence[DeviceProfile],
               mode: Mode, calibrations: Mapping[str, "Calibration"] | None = None) -> SweepPlan:
    """File the architectures in the store and work out what is missing (after `check_devices`). Predict mode
    takes each device's calibration from ``calibrations`` (by device name), else from the store of calibrations,
    and refuses in one line a device that has none, before anything runs."""
    check_devices(mode, devices)
    given = calibrations or {}
    chosen = calibrations_for(mode, [device for device in devices if device.name not in given])
    if mode is Mode.PREDICT:
        chosen.update({device.name: given[device.name] for device in devices if device.name in given})
    store.add_architectures(architectures)
    counted = set(store.counts([arch.key for arch in architectures]))
    to_count = tuple(arch for arch in architectures if arch.key not in counted)
    per_device: dict[str, tuple[Architecture, ...]] = {}
    done_before = {COUNT_STAGE: len(architectures) - len(to_count)}
    for profile in devices:
        done = store.predicted(profile.name) if mode is Mode.PREDICT else store.measured(profile.name)
        per_device[profile.name] = tuple(arch for arch in architectures if arch.key not in done)
        done_before[profile.name] = len(architectures) - len(per_device[profile.name])
    return SweepPlan(mode, tuple(architectures), tuple(devices), to_count, per_device, done_before, chosen)


@dataclass
class Stage:
    """The tally of one stage (counting, or one device) during a run. Times are Unix seconds.

    started_at: when its first piece of work started (None before); finished_at: when its last result arrived.
    stopped: why the stage was given up in this run (its remaining work left for the next run), if it was.
    """

    name: str
    total: int
    done_before: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    emulated: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    stopped: str | None = None

    @property
    def left(self) -> int:
        """Work not finished (neither done nor failed)."""
        return self.total - self.done - self.failed

    def rate_per_min(self, now: float | None = None) -> float | None:
        """Architectures finished (done or failed) per minute since the stage started, up to ``now`` (its last
        result when ``now`` is not given or nothing is left); None before anything finished."""
        end = self.finished_at if now is None or self.left == 0 else now
        finished = self.done + self.failed
        if self.started_at is None or end is None or finished == 0 or end <= self.started_at:
            return None
        return 60.0 * finished / (end - self.started_at)

    def eta_s(self, now: float) -> float | None:
        """Seconds left at the rate so far (0 when nothing is left; None before the first result)."""
        if self.left == 0:
            return 0.0
        rate = self.rate_per_min(now)
        return None if not rate else 60.0 * self.left / rate

    def to_dict(self) -> dict[str, Any]:
        rate = self.rate_per_min()
        return {"stage": self.name, "total": self.total, "done_before": self.done_before, "done": self.done,
                "failed": self.failed, "retried": self.retried, "left": self.left, "emulated": self.emulated,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "per_minute": rate if rate is None or math.isfinite(rate) else None, "stopped": self.stopped}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Stage":
        return cls(data["stage"], data["total"], data["done_before"], data["done"], data["failed"], data["retried"],
                   data["emulated"], data["started_at"], data["finished_at"], data["stopped"])


@dataclass(frozen=True)
class SweepSummary:
    """What one run did: each stage's tally, whether it was interrupted, the store it wrote, the cluster it ran on."""

    mode: Mode
    store: str  # the store's path
    architectures: int  # in the space
    stages: tuple[Stage, ...]  # counting, then each device
    interrupted: bool  # by Ctrl-C: what finished is in the store
    elapsed_s: float
    cluster: str  # "local (embedded)", the address joined, or "none (nothing to do)"
    failures: dict[str, str] = field(default_factory=dict)  # "<key> on <device>" or "<key> (counting)" -> reasons

    @property
    def failed(self) -> int:
        return sum(stage.failed for stage in self.stages)

    @property
    def exit_code(self) -> int:
        """130 when interrupted, 1 when something failed or a device was given up, else 0."""
        if self.interrupted:
            return 130
        return 1 if self.failed or any(stage.stopped for stage in self.stages) else 0

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable summary (``sweep --format json``)."""
        return {"schema": SWEEP_SCHEMA, "mode": self.mode.value, "store": self.store,
                "architectures": self.architectures, "stages": [stage.to_dict() for stage in self.stages],
                "interrupted": self.interrupted, "elapsed_s": self.elapsed_s, "cluster": self.cluster,
                "failures": dict(self.failures)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SweepSummary":
        if data.get("schema") != SWEEP_SCHEMA:
            raise UsageError(f"sweep summary has schema {data.get('schema')!r}; expected {SWEEP_SCHEMA}")
        return cls(Mode(data["mode"]), data["store"], data["architectures"],
                   tuple(Stage.from_dict(stage) for stage in data["stages"]), data["interrupted"], data["elapsed_s"],
                   data["cluster"], dict(data["failures"]))
