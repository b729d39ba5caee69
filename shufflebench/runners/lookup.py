"""Which runner measures on a device: a name-to-class table, each runner imported only when it is asked for.

The base interface (`base`) never imports its implementations; this table sits above them, so the import graph reads
top-down: lookup -> {onnxruntime_local, torch_eager, board, counted} -> base.
"""

from __future__ import annotations

from typing import Callable

from ..devices import DeviceProfile
from ..errors import UsageError
from .base import RunnerBase


def _onnxruntime() -> type[RunnerBase]:
    from .onnxruntime_local import OnnxRuntimeRunner

    return OnnxRuntimeRunner


def _torch() -> type[RunnerBase]:
    from .torch_eager import TorchRunner

    return TorchRunner


def _board() -> type[RunnerBase]:
    from .board import BoardRunner

    return BoardRunner


def _counted() -> type[RunnerBase]:
    from .counted import CountedRunner

    return CountedRunner


#: runner name -> the class, imported on demand (heavy backends load only when used).
RUNNERS: dict[str, Callable[[], type[RunnerBase]]] = {
    "onnxruntime": _onnxruntime,
    "torch": _torch,
    "board": _board,
    "counted": _counted,
}


def runner_name(profile: DeviceProfile) -> str:
    """The runner of a device: ``counted`` for devices with a counter, ``board`` for SSH and emulated devices, else
    the profile's backend."""
    if profile.counted:
        return "counted"
    return "board" if profile.location in ("ssh", "emulated") else profile.backend


def runner_for(profile: DeviceProfile) -> RunnerBase:
    """The runner for a device profile (reference-only profiles are refused)."""
    if not profile.runnable:
        raise UsageError(f"device {profile.name!r} is reference-only (published figures); it cannot run models")
    return RUNNERS[runner_name(profile)]()(profile)
