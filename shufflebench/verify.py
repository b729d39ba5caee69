"""Outputs checked against a reference before a latency is trusted: a model that computes something else is refused.

The reference is torch's output for the seeded input; for an ``.onnx`` file (no torch module) on a board it is this
machine's onnxruntime; for an ``.onnx`` file on this machine nothing is checked (the local onnxruntime is itself the
reference), and torch devices are the reference themselves.
"""

from __future__ import annotations

from typing import Any

from .devices import DeviceProfile
from .errors import MeasurementError
from .prepared import PreparedModel


def reference_for(model: PreparedModel, device: DeviceProfile) -> Any | None:
    """What ``model``'s output on ``device`` must match, or None when there is nothing to check against."""
    if device.backend == "torch":
        return None
    if not model.is_onnx:
        return model.torch_output
    if device.location == "local":
        return None
    return model.onnxruntime_output


RTOL = 1e-3  # of the reference's largest magnitude
ATOL = 1e-4


def check_outputs(label: str, expected: Any, actual: Any) -> None:
    """Refuse a measurement whose outputs disagree with the reference: |a - e| <= ATOL + RTOL * max|e|."""
    import numpy as np

    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        raise MeasurementError(f"{label}: output shape {actual.shape} differs from torch's {expected.shape}")
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    worst = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    if not worst <= ATOL + RTOL * scale:
        raise MeasurementError(
            f"{label}: outputs disagree with torch (max abs difference {worst:.3g} against output scale "
            f"{scale:.3g}); not timing a model that computes something else"
        )
