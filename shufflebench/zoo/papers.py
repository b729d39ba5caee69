"""The papers' published cost figures (``shufflebench/data/papers.toml``) as frozen data.

Loading checks the file's shape only (keys, types), so it needs no torch; a figure's `ModelSpec` is resolved through
the registry when first asked for (`PaperFigure.spec`), which imports the zoo.
"""

from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import allowed
from .registry import ModelSpec

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "variant": dict,
    "flops_madd": (int, float),
    "tolerance": (int, float),
    "excludes_fc": bool,
    "source": str,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {"params": (int, float), "params_tolerance": (int, float), "note": str}


@dataclass(frozen=True)
class PaperFigure:
    """One published figure: the network it describes, its multiply-adds (and parameters), how closely a count must
    agree, and where it comes from."""

    model: str
    variant: tuple[tuple[str, Any], ...]
    flops_madd: float
    tolerance: float
    excludes_fc: bool
    source: str
    params: float | None = None
    params_tolerance: float | None = None
    note: str = ""

    @property
    def spec(self) -> ModelSpec:
        """The fully resolved spec (options not given take their defaults); `UsageError` if the file names a model or
        option the registry does not know."""
        return _resolve(self.model, self.variant)

    @property
    def flops_allowance(self) -> float:
        """Largest absolute difference in multiply-adds that still agrees with the figure."""
        return self.tolerance * self.flops_madd

    @property
    def params_allowance(self) -> float | None:
        """Largest absolute difference in parameters that still agrees: the relative params tolerance, or half a unit
        of the last printed digit in millions (0.05M for "1.4M"), whichever is larger; ``None`` without params."""
        if self.params is None:
            return None
        relative = (self.tolerance if self.params_tolerance is None else self.params_tolerance) * self.params
        exponent = Decimal(repr(self.params / 1e6)).normalize().as_tuple().exponent
        rounding = 0.5 * 10.0 ** min(0, int(exponent)) * 1e6
        return max(relative, rounding)


@functools.lru_cache(maxsize=None)
def _resolve(model: str, variant: tuple[tuple[str, Any], ...]) -> ModelSpec:
    from .catalog import resolve_spec  # the networks (and torch) only when a figure's spec is asked for

    return resolve_spec(model, dict(variant))


def load_figures(path: str | Path) -> list[PaperFigure]:
    """Read and check a figures file; `ValueError` naming the figure and key for unknown or missing keys and wrong
    types."""
    path = Path(path)
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    extra = set(data) - {"figure"}
    if extra:
        raise ValueError(f"{path}: unknown top-level key {sorted(extra)[0]!r}; allowed: figure")
    return [_figure(path, index, entry) for index, entry in enumerate(data.get("figure", []), start=1)]


def _figure(path: Path, index: int, entry: dict[str, Any]) -> PaperFigure:
    where = f"{path.name}: figure {index} ({entry.get('model', '?')})"
    known = {**_REQUIRED, **_OPTIONAL}
    for key in entry:
        if key not in known:
            raise ValueError(f"{where}: unknown key {key!r}; allowed: {allowed(known)}")
    for key in _REQUIRED:
        if key not in entry:
            raise ValueError(f"{where}: missing key {key!r}")
    for key, value in entry.items():
        kinds = known[key]
        # bool is an int in Python; a number field must not accept true/false.
        if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool):
            raise ValueError(f"{where}: {key}={value!r} has the wrong type")
    for key in ("flops_madd", "params"):
        if key in entry and not (math.isfinite(entry[key]) and entry[key] > 0):
            raise ValueError(f"{where}: {key}={entry[key]!r} must be a positive number")
    for key in ("tolerance", "params_tolerance"):
        if key in entry and not 0 < entry[key] < 1:
            raise ValueError(f"{where}: {key}={entry[key]!r} must be a fraction between 0 and 1")
    return PaperFigure(
        model=entry["model"],
        variant=tuple(sorted(entry["variant"].items())),
        flops_madd=float(entry["flops_madd"]),
        tolerance=float(entry["tolerance"]),
        excludes_fc=entry["excludes_fc"],
        source=entry["source"],
        params=None if "params" not in entry else float(entry["params"]),
        params_tolerance=None if "params_tolerance" not in entry else float(entry["params_tolerance"]),
        note=entry.get("note", ""),
    )


@functools.lru_cache(maxsize=1)
def _packaged() -> tuple[PaperFigure, ...]:
    with resources.as_file(resources.files("shufflebench") / "data" / "papers.toml") as path:
        return tuple(load_figures(path))


def all_figures() -> list[PaperFigure]:
    """Every figure in the packaged ``papers.toml``, in file order."""
    return list(_packaged())


def figures_for(spec: ModelSpec) -> list[PaperFigure]:
    """The figures published for exactly this network (same model and every option equal)."""
    return [figure for figure in _packaged() if figure.model == spec.name and figure.spec == spec]
