"""A prediction in brief: what `profile` and `compare` show next to a measurement (plain data, no numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class PredictionSummary:
    """A model's predicted latency (milliseconds, with its 95% interval), its FLOPs-theoretical latency, the gap by
    cause (milliseconds), which calibration made it, whether its graph is exact, and the device's measured peaks
    (multiply-adds per second, memory bandwidth in bytes per second)."""

    predicted_ms: float
    interval_ms: tuple[float, float]
    theoretical_ms: float
    causes_ms: dict[str, float]
    calibration: str
    graph: str
    peak_madd_per_s: float
    memory_bandwidth_bytes_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_ms": self.predicted_ms, "interval_ms": list(self.interval_ms),
                "theoretical_ms": self.theoretical_ms, "causes_ms": dict(self.causes_ms),
                "calibration": self.calibration, "graph": self.graph, "peak_madd_per_s": self.peak_madd_per_s,
                "memory_bandwidth_bytes_per_s": self.memory_bandwidth_bytes_per_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PredictionSummary":
        low, high = data["interval_ms"]
        return cls(float(data["predicted_ms"]), (float(low), float(high)), float(data["theoretical_ms"]),
                   {k: float(v) for k, v in data["causes_ms"].items()}, str(data["calibration"]), str(data["graph"]),
                   float(data["peak_madd_per_s"]), float(data["memory_bandwidth_bytes_per_s"]))
