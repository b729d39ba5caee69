"""The qemu TCG plugin of the aarch64 counted devices (``insn_count.c``): how it is loaded, and its file read back.

qemu-aarch64 (the dynamically linked one from Debian's qemu-user: a static qemu cannot load plugins) loads the
plugin with ``-plugin insn_count.so,out=FILE``. The plugin keeps running totals of instructions, loads and stores,
and writes a line ``mark INSTRUCTIONS LOADS STORES`` each time the guest calls ``lseek(-1, MARKER_OFFSET, 0)``
(the board runner's syscall marker). Marks come in pairs around each counted region; `read_marks` returns each
region's events (the totals at its end minus those at its start).
"""

from __future__ import annotations

from pathlib import Path

HEADER = "insn_count 1"
_NAMES = ("instructions", "loads", "stores")


def plugin_argument(library: Path, out_file: Path) -> str:
    """The value of qemu's ``-plugin`` option (qemu splits it at commas, so neither path may hold one)."""
    for path in (library, out_file):
        if "," in str(path):
            raise ValueError(f"{path}: qemu plugin paths cannot contain a comma")
    return f"{library},out={out_file}"


def parse_marks(text: str) -> list[dict[str, int]]:
    """Each marked region's events from the plugin's file (marks paired in order: start, end, start, end...)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise ValueError(f"not an insn_count file (first line {lines[0] if lines else ''!r}, expected {HEADER!r})")
    marks = []
    for line in lines[1:]:
        kind, *numbers = line.split()
        if kind == "mark":
            marks.append([int(n) for n in numbers])
    if len(marks) % 2:
        raise ValueError(f"{len(marks)} marks: a counted region was started and never ended")
    return [{name: end - start for name, start, end in zip(_NAMES, first, second)}
            for first, second in zip(marks[::2], marks[1::2])]


def read_marks(out_file: Path) -> list[dict[str, int]]:
    """`parse_marks` of the plugin's output file."""
    return parse_marks(out_file.read_text(encoding="utf-8", errors="replace"))
