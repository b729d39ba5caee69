"""The `devices` result: the shipped device profiles as a table (JSON: each profile's own fields)."""

from __future__ import annotations

from typing import Any, Sequence

from rich.table import Table

from ..devices import DeviceProfile

DEVICES_SCHEMA = "shufflebench.devices/1"


def devices_data(profiles: Sequence[DeviceProfile]) -> dict[str, Any]:
    """What ``devices --format json`` prints."""
    return {"schema": DEVICES_SCHEMA, "devices": [p.to_dict() for p in profiles]}


def render_devices(profiles: Sequence[DeviceProfile]) -> Table:
    """One row per profile: name, backend (and provider), where it runs (and what counts it), threads, batch,
    description."""
    table = Table(show_header=True, header_style="bold")
    for column in ("device", "backend", "where", "threads", "batch", "description"):
        table.add_column(column, overflow="fold")
    for p in profiles:
        where = "reference only" if not p.runnable else p.location
        if p.counted:
            where += f", counted by {p.counter}"
        backend = f"{p.backend} {p.provider}" if p.backend == "onnxruntime" else p.backend
        table.add_row(p.name, backend, where, str(p.threads), str(p.batch), p.description)
    return table
