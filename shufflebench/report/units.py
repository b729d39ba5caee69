"""Human-readable numbers with explicit units (M, G multiply-adds; KiB, MiB)."""

from __future__ import annotations


def si(value: float, unit: str = "", digits: int = 1) -> str:
    """``146_000_000 -> '146.0M'`` (decimal prefixes, as the papers quote MFLOPs and params)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}f}{prefix}{unit}"
    return f"{value:.0f}{unit}" if float(value).is_integer() else f"{value:.{digits}f}{unit}"


def binary_bytes(value: float) -> str:
    """``3_145_728 -> '3.0 MiB'``."""
    for factor, prefix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(value) >= factor:
            return f"{value / factor:.1f} {prefix}"
    return f"{value:.0f} B"


def shape(dims) -> str:
    """``(1, 3, 224, 224) -> '1x3x224x224'``."""
    return "x".join(str(d) for d in dims)
