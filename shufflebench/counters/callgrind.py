"""valgrind's callgrind around the counted process (x86-64): its options, and the counts read back from its dumps.

Why callgrind and not cachegrind: valgrind 3.19 (Debian 12) gives only callgrind client requests, so only callgrind
lets the process itself say where an inference starts and ends (`build`'s ``callgrind_marker``). Its cache
simulation is cachegrind's. The process starts with instrumentation off (``--instr-atstart=no``: start-up, which
imports numpy and onnxruntime, runs several times faster uninstrumented), turns it on for the warm-up inference,
and dumps once per counted inference; `read_dumps` turns the dump files into canonical events (`figures.EVENTS`).

The simulated caches are fixed (`CACHES`), not read from the host CPU, so two machines simulate the same caches.
valgrind presents the host's instruction set without AVX-512, so onnxruntime runs its AVX2 kernels at most.
"""

from __future__ import annotations

import re
from pathlib import Path

#: Simulated caches: size in bytes, associativity, line size. A common x86 core: 32 KiB 8-way first-level
#: instruction and data caches, and an 8 MiB 16-way last level, all with 64-byte lines.
CACHES = {"I1": (32768, 8, 64), "D1": (32768, 8, 64), "LL": (8388608, 16, 64)}
TRIGGER = "shufflebench inference"  # the dump name the marker library gives (callgrind_marker.c)
# callgrind's event names -> the canonical counts (figures.EVENTS); misses are summed over their kinds.
_SUMS = {"instructions": ("Ir",), "loads": ("Dr",), "stores": ("Dw",), "l1_misses": ("I1mr", "D1mr", "D1mw"),
         "ll_misses": ("ILmr", "DLmr", "DLmw")}


def callgrind_options(out_file: Path, *, cache_sim: bool = True) -> list[str]:
    """The valgrind options of a counted run, dumps written to ``out_file.N`` (one per counted region)."""
    options = ["--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}", "--dump-instr=no",
               "--dump-line=no", "--compress-strings=no", "--compress-pos=no"]
    if cache_sim:
        options.append("--cache-sim=yes")
        options += [f"--{name}={size},{ways},{line}" for name, (size, ways, line) in CACHES.items()]
    return options


def cache_description() -> dict[str, str]:
    """The simulated caches, for a result's context: ``{"I1": "32768 B, 8-way, 64 B lines", ...}``."""
    return {name: f"{size} B, {ways}-way, {line} B lines" for name, (size, ways, line) in CACHES.items()}


def parse_dump(text: str) -> dict[str, int] | None:
    """The canonical events of one callgrind dump (None for a dump another trigger wrote, e.g. program end)."""
    if f"Client Request: {TRIGGER}" not in text:
        return None
    names = values = None
    for line in text.splitlines():
        if line.startswith("events:"):
            names = line.split(":", 1)[1].split()
        elif line.startswith("summary:") or (values is None and line.startswith("totals:")):
            values = [int(v) for v in line.split(":", 1)[1].split()]
    if names is None or values is None:
        raise ValueError("a callgrind dump without events or summary line")
    raw = dict(zip(names, values + [0] * (len(names) - len(values))))
    return {canonical: sum(raw[n] for n in parts) for canonical, parts in _SUMS.items()
            if all(n in raw for n in parts)}


def read_dumps(out_file: Path) -> list[dict[str, int]]:
    """Every counted region's events, in the order they were dumped (``out_file.1``, ``.2``, ...)."""
    pattern = re.compile(re.escape(out_file.name) + r"\.(\d+)$")
    numbered = sorted((int(m.group(1)), path) for path in out_file.parent.iterdir()
                      if (m := pattern.match(path.name)))
    found = [parse_dump(path.read_text(encoding="utf-8", errors="replace")) for _, path in numbered]
    return [events for events in found if events is not None]
