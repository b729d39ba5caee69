"""Where a command takes its calibration from (light: the command line imports it before any command runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..devices import DeviceProfile
from ..errors import UsageError

if TYPE_CHECKING:
    from .calibration import Calibration


@dataclass(frozen=True)
class CalibrationSource:
    """A calibration file (``--calibration``), else the store of calibrations (`calibration.calibrations_dir`)."""

    path: Path | None = None

    def resolve(self, device: DeviceProfile, environment: Mapping[str, Any] | None = None) -> "Calibration | None":
        """The calibration file, or the stored calibration of ``device`` for ``environment`` (a measurement's:
        its fingerprint must match) or, without one, the device's newest; None when the store has none."""
        from .calibration import find_calibration, load_calibration

        if self.path is not None:
            return load_calibration(self.path)
        return find_calibration(device, environment)

    def require(self, device: DeviceProfile) -> "Calibration":
        """`resolve`, refusing with one line when there is no calibration at all."""
        from .calibration import calibrations_dir

        calibration = self.resolve(device)
        if calibration is None and device.counted:  # calibrate refuses it: point at what can be calibrated
            raise UsageError(f"device {device.name} counts instructions and has no calibration; predict for a timed "
                             "device (e.g. --device cpu, arm-emulated) or give --calibration FILE")
        if calibration is None:
            raise UsageError(f"no calibration of device {device.name} in {calibrations_dir()}; make one with "
                             f"shufflebench calibrate --device {device.name} (or give --calibration FILE)")
        return calibration
