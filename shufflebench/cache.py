"""The export cache: ONNX files made from torch models, kept by content, bounded in size.

Files live in ``$SHUFFLEBENCH_CACHE/onnx`` (default ``~/.cache/shufflebench/onnx``). Each use of a file marks it
used (its modification time), and after every new export the least recently used files are removed until the cache
holds at most ``$SHUFFLEBENCH_CACHE_LIMIT`` (default 4 GiB; ``500MB``, ``2GiB`` or plain bytes). The file just made
is never removed, even alone above the limit. ``shufflebench cache`` shows it, ``shufflebench cache --clear`` empties
it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

CACHE_ENV = "SHUFFLEBENCH_CACHE"
LIMIT_ENV = "SHUFFLEBENCH_CACHE_LIMIT"
DEFAULT_LIMIT = 4 << 30
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20,
          "gib": 1 << 30, "tib": 1 << 40}


def cache_dir() -> Path:
    """Where exported models are kept: ``$SHUFFLEBENCH_CACHE/onnx`` or ``~/.cache/shufflebench/onnx``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "shufflebench"
    return Path(root) / "onnx"


def parse_size(text: str, option: str) -> int:
    """``4GiB``, ``500MB``, ``1e9`` -> bytes; `UsageError` naming ``option`` otherwise."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise UsageError(f"{option}={text!r} is not a size; write e.g. 4GiB, 500MB or a number of bytes")
    return int(float(match.group(1)) * _UNITS[unit])


def cache_limit() -> int:
    """The cache's size limit in bytes (``$SHUFFLEBENCH_CACHE_LIMIT`` or 4 GiB)."""
    text = os.environ.get(LIMIT_ENV)
    return DEFAULT_LIMIT if not text else parse_size(text, LIMIT_ENV)


@dataclass(frozen=True)
class CacheInfo:
    """What the cache holds: its folder, files, bytes and limit."""

    folder: Path
    files: int
    bytes: int
    limit: int

    def to_dict(self) -> dict:
        return {"schema": "shufflebench.cache/1", "folder": str(self.folder), "files": self.files,
                "bytes": self.bytes, "limit_bytes": self.limit}


def _entries(folder: Path) -> list[tuple[float, int, Path]]:
    """(last use, size, path) of every cached model."""
    found = []
    for path in folder.glob("*.onnx"):
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile by another process
            continue
        found.append((stat.st_mtime, stat.st_size, path))
    return found


def info() -> CacheInfo:
    """The cache as it is now."""
    folder = cache_dir()
    entries = _entries(folder) if folder.is_dir() else []
    return CacheInfo(folder, len(entries), sum(size for _, size, _ in entries), cache_limit())


def mark_used(path: Path) -> None:
    """Record a use of a cached file (least recently used files go first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def evict(keep: Path, limit: int | None = None) -> int:
    """Remove the least recently used files until the cache holds at most ``limit`` bytes, never ``keep`` (the file
    just made). Returns the bytes removed."""
    limit = cache_limit() if limit is None else limit
    entries = sorted(_entries(keep.parent))
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, path in entries:
        if total - removed <= limit:
            break
        if path == keep:
            continue
        try:
            path.unlink()
            removed += size
        except OSError:
            pass
    return removed


def clear() -> CacheInfo:
    """Remove every cached model; returns what the cache held before."""
    before = info()
    for _, _, path in _entries(before.folder) if before.folder.is_dir() else []:
        path.unlink(missing_ok=True)
    return before
