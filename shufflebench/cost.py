"""Whole-model cost from a layer table: multiply-adds, params, other element operations, and memory access cost.

Units are spelled out in every name: ``flops_madd`` are multiply-adds (the papers' "FLOPs"), ``mac_elements`` and
``mac_bytes`` are the ShuffleNet V2 memory access cost, and ``arithmetic_intensity`` is multiply-adds per byte moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .layer_table import Coverage, LayerTable


@dataclass(frozen=True)
class CostSummary:
    """Totals of one model at one input shape, in both MAC views (eager and deployed), and what the counter
    understood of the model (``coverage``: estimated and unknown operators, and how much MAC rests on estimates)."""

    flops_madd: int
    params: int
    other_ops: dict[str, int]
    mac_elements: dict[str, int]
    mac_bytes: dict[str, int]
    coverage: Coverage = Coverage(0, 0)

    @property
    def arithmetic_intensity(self) -> dict[str, float]:
        """Multiply-adds per byte of memory traffic, per view."""
        return {view: (self.flops_madd / b if b else 0.0) for view, b in self.mac_bytes.items()}

    def to_dict(self) -> dict:
        """Plain JSON-able data, the derived arithmetic intensity included."""
        return {
            "flops_madd": self.flops_madd,
            "params": self.params,
            "other_ops": dict(self.other_ops),
            "mac_elements": dict(self.mac_elements),
            "mac_bytes": dict(self.mac_bytes),
            "arithmetic_intensity": self.arithmetic_intensity,
            "coverage": self.coverage.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CostSummary":
        """Inverse of `to_dict` (extra keys of the enclosing result are ignored)."""
        return cls(int(data["flops_madd"]), int(data["params"]), dict(data["other_ops"]), dict(data["mac_elements"]),
                   dict(data["mac_bytes"]), Coverage.from_dict(data["coverage"]))


def summarize(table: LayerTable) -> CostSummary:
    """Add up a layer table."""
    return CostSummary(
        flops_madd=table.flops_madd,
        params=table.params,
        other_ops=table.other_ops_by_kind(),
        mac_elements={"eager": table.total("mac_elements"), "deployed": table.total("mac_elements_deployed")},
        mac_bytes={"eager": table.total("mac_bytes"), "deployed": table.total("mac_bytes_deployed")},
        coverage=table.coverage,
    )


def final_fc_madd(table: LayerTable) -> int:
    """Multiply-adds of the last fully connected layer (0 when there is none): what a paper figure that leaves the
    classifier out does not count."""
    from .ops import OpKind

    linears = [layer for layer in table.layers if layer.kind is OpKind.LINEAR]
    return linears[-1].flops_madd if linears else 0
