"""The papers' published speeds (``data/published.toml``), loaded and validated, for showing beside measured ones.

Latency entries are single-image latencies in milliseconds (ShuffleNet V1 Table 8). Guideline entries are the
ShuffleNet V2 section-2 tables: for each variant of a micro-network, throughput at the x1, x2 and x4 channel widths
in the paper's GPU and ARM columns.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

_LATENCY_KEYS = {"model", "variant", "latency_ms", "device", "source"}
_GUIDELINE_KEYS = {"experiment", "option", "source", "gpu_unit", "arm_unit", "rows"}
_CLAIM_KEYS = {"key", "text", "source"}


@dataclass(frozen=True)
class PublishedLatency:
    """A latency the paper printed for one model variant on one device (milliseconds)."""

    model: str
    variant: tuple[tuple[str, Any], ...]
    latency_ms: float
    device: str
    source: str


@dataclass(frozen=True)
class GuidelineRow:
    """One row of a ShuffleNet V2 guideline table: the variant and throughput at x1, x2, x4 (GPU, ARM)."""

    value: Any
    gpu: tuple[float, float, float]
    arm: tuple[float, float, float]


@dataclass(frozen=True)
class GuidelineTable:
    """One ShuffleNet V2 guideline experiment as published."""

    experiment: str
    option: str
    source: str
    gpu_unit: str
    arm_unit: str
    rows: tuple[GuidelineRow, ...]

    def row(self, value: Any) -> GuidelineRow | None:
        """The row for a variant value (compared as text, so ``1`` and ``"1"`` match)."""
        return next((r for r in self.rows if str(r.value) == str(value)), None)


def _check(entry: dict, allowed: set[str], where: str) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise ValueError(f"published.toml {where}: unknown key {sorted(unknown)[0]!r}; allowed: {sorted(allowed)}")


@lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    text = resources.files("shufflebench").joinpath("data/published.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def published_latencies() -> list[PublishedLatency]:
    """Every published latency, in file order."""
    out = []
    for i, entry in enumerate(_load().get("latency", [])):
        _check(entry, _LATENCY_KEYS, f"latency #{i + 1}")
        out.append(PublishedLatency(entry["model"], tuple(sorted(entry["variant"].items())), float(entry["latency_ms"]),
                                    entry["device"], entry["source"]))
    return out


def latency_for(model: str, variant: dict[str, Any]) -> PublishedLatency | None:
    """The published latency whose variant options all match ``variant`` (other options at any value)."""
    for entry in published_latencies():
        if entry.model == model and all(variant.get(k) == v for k, v in entry.variant):
            return entry
    return None


def guideline_tables() -> dict[str, GuidelineTable]:
    """The four guideline tables, keyed by micro-network name (g1..g4)."""
    tables = {}
    for i, entry in enumerate(_load().get("guideline", [])):
        _check(entry, _GUIDELINE_KEYS, f"guideline #{i + 1}")
        rows = tuple(GuidelineRow(r["value"], tuple(r["gpu"]), tuple(r["arm"])) for r in entry["rows"])
        tables[entry["experiment"]] = GuidelineTable(entry["experiment"], entry["option"], entry["source"],
                                                     entry["gpu_unit"], entry["arm_unit"], rows)
    return tables


@dataclass(frozen=True)
class Claim:
    """A claim a paper makes in words (not a table figure), with where it says it."""

    text: str
    source: str


def claim(key: str) -> Claim:
    """The published claim stored under ``key``; KeyError when the data file has none."""
    for i, entry in enumerate(_load().get("claim", [])):
        _check(entry, _CLAIM_KEYS, f"claim #{i + 1}")
        if entry["key"] == key:
            return Claim(entry["text"], entry["source"])
    raise KeyError(key)
