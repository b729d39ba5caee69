"""What ``sweep report`` shows: the store's rows, and per device the Pareto front of latency against multiply-adds.

The front answers "what is the most compute I can have for a given latency on this device": a row is on it when no
other row on the same device is at least as fast with at least as many multiply-adds (and better in one).
Multiply-adds stand in for capacity here (the store holds no accuracy); the front is taken on measured median
latencies, so two rows whose confidence intervals overlap may swap places in another run. A device with predictions
only (predict mode) gets its front on predicted latency, said by its ``basis``; measured and predicted rows are never
mixed in one front.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import UsageError
from .store import STORE_SCHEMA, Store, StoredRow

REPORT_SCHEMA = "shufflebench.sweep-report/1"


MEASURED, PREDICTED = "measured", "predicted"


def latency_basis(rows: Sequence[StoredRow]) -> str | None:
    """What one device's front is taken on: ``measured`` when any row is measured, else ``predicted`` when any row
    has a prediction, else None."""
    if any(row.status == "ok" and row.median_ms is not None for row in rows):
        return MEASURED
    return PREDICTED if any(row.predicted_ms is not None for row in rows) else None


def latency_ms(row: StoredRow, basis: str | None) -> float | None:
    """The row's latency on ``basis``: its measured median, or its prediction."""
    if basis == MEASURED:
        return row.median_ms if row.status == "ok" else None
    return row.predicted_ms if basis == PREDICTED else None


def pareto_front(rows: Sequence[StoredRow]) -> list[StoredRow]:
    """The rows of one device no other row beats (faster or equal with more or equal multiply-adds, better in one),
    fastest first, on the device's `latency_basis`; rows without that latency or counts are left out."""
    basis = latency_basis(rows)
    timed = [(latency, row.cost.flops_madd, row) for row in rows if row.cost is not None
             for latency in [latency_ms(row, basis)] if latency is not None]
    front: list[StoredRow] = []
    best_madd = -1
    for _, madd, row in sorted(timed, key=lambda item: (item[0], -item[1])):
        if madd > best_madd:
            front.append(row)
            best_madd = madd
    return front


@dataclass(frozen=True)
class SweepReport:
    """The store's rows (one per architecture and device; one per architecture without any device row, counts only),
    the devices, and each device's Pareto front (architecture keys, fastest first)."""

    store: str
    rows: tuple[StoredRow, ...]
    devices: tuple[str, ...]
    pareto: dict[str, tuple[str, ...]]
    basis: dict[str, str | None]  # per device: what its front and its order are taken on (`latency_basis`)
    architectures: int
    counted: int
    emulated: tuple[str, ...]

    def front(self, device: str) -> list[StoredRow]:
        """The rows of ``device``'s Pareto front, fastest first."""
        by_key = {row.key: row for row in self.rows if row.device == device}
        return [by_key[key] for key in self.pareto.get(device, ())]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON (``sweep report --format json``): the latency summary of each row; the raw samples
        stay in the store."""
        return {"schema": REPORT_SCHEMA, "store": self.store, "store_schema": STORE_SCHEMA,
                "architectures": self.architectures, "counted": self.counted, "devices": list(self.devices),
                "emulated": list(self.emulated), "rows": [row.to_dict() for row in self.rows],
                "pareto": {device: list(keys) for device, keys in self.pareto.items()},
                "pareto_basis": dict(self.basis)}


def read_report(store: Store, devices: Sequence[str] = ()) -> SweepReport:
    """The report of a store (of ``devices`` only, when given; `UsageError` for a device the store has no row of)."""
    known = store.devices()
    for device in devices:
        if device not in known:
            raise UsageError(f"the store has no row for device {device!r}; it has: {', '.join(known) or 'none'}")
    rows = store.rows(devices)
    with_rows = {row.key for row in rows}
    architectures = store.architectures()
    if not devices:  # architectures no device has a row for: their counts alone
        rows += [StoredRow(arch, None, cost, None, 0, None, None, None, None, False, ())
                 for arch, cost in architectures if arch.key not in with_rows]
    shown = tuple(devices) or tuple(known)
    pareto = {device: tuple(row.key for row in pareto_front([r for r in rows if r.device == device]))
              for device in shown}
    basis = {device: latency_basis([r for r in rows if r.device == device]) for device in shown}
    emulated = tuple(device for device in shown if any(r.emulated for r in rows if r.device == device))
    return SweepReport(str(store.path), tuple(rows), shown, pareto, basis, len(architectures),
                       sum(1 for _, cost in architectures if cost is not None), emulated)
