"""Outputs checked against a reference before a latency is trusted: a model that computes something else is refused.

The reference is the model's exact answer as far as it can be had: torch in float64 (weights and seeded input cast
up) where the model runs in float64. A float32 engine cannot be closer to it than float32 arithmetic allows, and how
far that is depends on the model (a deep net with unnormalized batch norms amplifies rounding a thousandfold; a net
whose outputs are about 1e-6 has tiny absolute errors). So the tolerance is derived from torch float32's own distance
to the float64 answer on this very input, with a floor relative to the output's scale: a device output passes when

    max |device - float64| <= max(8 x max |torch float32 - float64|, 1e-5 x max |float64|)

and never through an absolute term, which would accept anything for outputs near zero. Where the model cannot run in
float64, the reference is torch float32 and the tolerance 1e-3 of the output's scale. For an ``.onnx`` file (no torch
module) on a board the reference is this machine's onnxruntime, at 1e-3 of the scale; for an ``.onnx`` file here
nothing is checked (the local onnxruntime is itself the reference), and torch devices are the reference themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .devices import DeviceProfile
from .errors import MeasurementError
from .prepared import PreparedModel

#: A float32 engine may be this many times further from the float64 answer than torch float32 is.
FLOAT32_FACTOR = 8.0
#: ... and always this far, relative to the largest output magnitude (float32 keeps about 7 digits).
RELATIVE_FLOOR = 1e-5
#: Relative tolerance against a float32 reference (no float64 answer to derive one from).
FLOAT32_REFERENCE_RTOL = 1e-3


@dataclass(frozen=True)
class Reference:
    """What a device's output must match: ``values`` within ``tolerance`` (max absolute difference), and where the
    reference came from (``source``, for the message)."""

    values: Any
    tolerance: float
    source: str


def reference_for(model: PreparedModel, device: DeviceProfile) -> Reference | None:
    """The reference ``model``'s output on ``device`` must match, or None when there is nothing to check against."""
    import numpy as np

    if device.backend == "torch":
        return None
    if not model.is_onnx:
        exact = model.float64_output
        own = model.torch_output
        if exact is not None:
            scale = _scale(exact)
            float32_error = float(np.max(np.abs(own.astype(np.float64) - exact))) if exact.size else 0.0
            tolerance = max(FLOAT32_FACTOR * float32_error, RELATIVE_FLOOR * scale)
            return Reference(exact, tolerance, "torch float64")
        return Reference(own, FLOAT32_REFERENCE_RTOL * _scale(own), "torch float32")
    if device.location == "local":
        return None
    local = model.onnxruntime_output
    return Reference(local, FLOAT32_REFERENCE_RTOL * _scale(local), "this machine's onnxruntime")


def _scale(values: Any) -> float:
    import numpy as np

    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else 0.0


def check_outputs(label: str, reference: Reference, actual: Any) -> None:
    """Refuse a measurement whose outputs disagree with the reference (see the module docstring for the rule)."""
    import numpy as np

    expected = np.asarray(reference.values, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        raise MeasurementError(f"{label}: output shape {actual.shape} differs from the reference's {expected.shape}")
    same_nonfinite = np.array_equal(~np.isfinite(expected), ~np.isfinite(actual))
    finite = np.isfinite(expected) & np.isfinite(actual)
    worst = float(np.max(np.abs(actual[finite] - expected[finite]))) if finite.any() else 0.0
    if not same_nonfinite or not worst <= reference.tolerance:
        raise MeasurementError(
            f"{label}: outputs disagree with {reference.source} (max abs difference {worst:.3g}, allowed "
            f"{reference.tolerance:.3g} at output scale {_scale(expected):.3g}); not timing a model that computes "
            "something else"
        )
