"""Running code that is not shufflebench's: a user's builder, its ``forward``, the ONNX exporter on it.

Whatever such code raises (an exception of any type, even ``SystemExit``) becomes one `UsageError` naming the model,
what was being done, the exception's type and the first line of its message: a user sees what broke in their model,
never a traceback from inside shufflebench. Running out of memory is said as such, with what was asked. Ctrl-C
(``KeyboardInterrupt``) is left alone.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, Sequence

from .errors import ShufflebenchError, UsageError

# torch's CPU allocator and onnxruntime's arena, when an allocation fails.
_OUT_OF_MEMORY = re.compile(r"can't allocate memory|not enough memory|Failed to allocate memory|out of memory|"
                            r"bad_alloc|Cannot allocate memory", re.IGNORECASE)
# An input this many times larger than the memory available is refused before it is made: the activations of a
# convolutional network's first layers are typically a few times the input.
_ACTIVATION_FACTOR = 4


def first_line(exc: BaseException, limit: int = 240) -> str:
    """The first line of an exception's message, clipped (torch errors can run to a screenful)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else "(no message)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _size(nbytes: float) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.1f} {unit}"
    return f"{nbytes:.0f} B"


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def require_fits(label: str, shape: Sequence[int], bytes_per_element: int = 4) -> None:
    """Refuse an input whose size alone, times the activations a network makes of it, exceeds free memory."""
    needed = bytes_per_element
    for dim in shape:
        needed *= dim
    free = available_memory()
    if free is not None and needed * _ACTIVATION_FACTOR > free:
        raise UsageError(f"{label}: an input of {shape_text(shape)} is {_size(needed)} and its activations several "
                         f"times that; it does not fit in the {_size(free)} of memory free here (lower --batch or "
                         "--resolution)")


@contextmanager
def user_code(label: str, doing: str) -> Iterator[None]:
    """Run a user's code: any failure becomes one `UsageError` ``<label>: <doing> raised <Type>: <message>``."""
    try:
        yield
    except (ShufflebenchError, KeyboardInterrupt):
        raise
    except MemoryError:
        raise UsageError(f"{label}: {doing} ran out of memory; lower --batch or --resolution") from None
    except (Exception, SystemExit) as exc:
        if _OUT_OF_MEMORY.search(str(exc)):
            raise UsageError(f"{label}: {doing} does not fit in memory ({first_line(exc, 120)}); lower --batch or "
                             "--resolution") from None
        raise UsageError(f"{label}: {doing} raised {type(exc).__name__}: {first_line(exc)}") from None
