"""The counters' two C helpers, compiled by the system C compiler into a cache folder, once per source and compiler.

* ``insn_count.c``: the qemu TCG plugin of the ``arm-counted`` devices (needs only a C compiler: it declares the
  few qemu plugin functions it uses itself, as Debian ships no plugin header);
* ``callgrind_marker.c``: the client requests the ``cpu-counted`` device's counted process makes to callgrind
  (needs valgrind's header ``valgrind/callgrind.h``, which Debian's ``valgrind`` package ships).

`built` compiles on first use; ``python -m shufflebench.counters.build`` builds both ahead of time (the setup script
does). The library lands under ``$SHUFFLEBENCH_CACHE/counters`` (default ``~/.cache/shufflebench/counters``), named
by a digest of its source, compiler and flags, written under a temporary name and renamed, so concurrent first uses
never see half a file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import SetupError, allowed

SOURCES = ("insn_count", "callgrind_marker")
FLAGS = ("-O2", "-shared", "-fPIC", "-fvisibility=hidden")
COMPILERS = ("cc", "gcc", "clang")
SETUP_SCRIPT = "scripts/setup-counters.sh"
# What to install when a helper does not compile, by what the compiler could not find.
HEADER_HINTS = {"valgrind/callgrind.h": "install valgrind's headers (Debian and Ubuntu: apt-get install valgrind; "
                                        "Fedora: dnf install valgrind-devel)"}


def cache_dir() -> Path:
    """Where compiled helpers are kept: ``$SHUFFLEBENCH_CACHE/counters`` or ``~/.cache/shufflebench/counters``."""
    root = os.environ.get("SHUFFLEBENCH_CACHE") or Path.home() / ".cache" / "shufflebench"
    return Path(root) / "counters"


def source_path(name: str) -> Path:
    """The C source of helper ``name`` (shipped inside the package)."""
    if name not in SOURCES:
        raise ValueError(f"no counter helper {name!r}; allowed: {allowed(SOURCES)}")
    return Path(__file__).with_name(f"{name}.c")


def compiler() -> str:
    """The C compiler: ``$CC``, else the first of cc, gcc, clang on PATH; `SetupError` naming what to install."""
    configured = os.environ.get("CC")
    if configured:
        if shutil.which(configured.split()[0]) is None:
            raise SetupError(f"CC={configured!r} is not an executable on PATH; unset CC or point it at a C compiler")
        return configured
    for name in COMPILERS:
        if shutil.which(name):
            return name
    raise SetupError(f"no C compiler ({allowed(COMPILERS)}) to build the counters' helpers; install one (Debian and "
                     f"Ubuntu: apt-get install gcc libc6-dev), or run {SETUP_SCRIPT}")


def built(name: str) -> Path:
    """The compiled shared library of helper ``name``, compiling it first when the cache lacks it."""
    source = source_path(name)
    cc = compiler()
    digest = hashlib.sha256(source.read_bytes() + "\0".join((cc, *FLAGS)).encode()).hexdigest()[:16]
    target = cache_dir() / f"{name}-{digest}.so"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SetupError(f"cannot create {target.parent} for the counters' helpers: {exc.strerror}") from None
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".so")
    os.close(fd)
    try:
        done = subprocess.run([*cc.split(), *FLAGS, "-o", partial, str(source)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SetupError(f"cannot compile {source.name} with {cc}: {_reason(done.stderr)}")
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


def _reason(stderr: str) -> str:
    """The compiler's first error, and what to install when it is a missing header we know."""
    for header, hint in HEADER_HINTS.items():
        if header in stderr and ("No such file" in stderr or "not found" in stderr):
            return f"{header} not found; {hint}"
    lines = [line.strip() for line in stderr.splitlines() if "error" in line]
    return (lines[0] if lines else " ".join(stderr.split()))[:300] or "no error output"


def main(argv: list[str] | None = None) -> int:
    """Build the helpers named (default: both) and print where each lies; exit 2 with one line when one fails."""
    names = (argv if argv is not None else sys.argv[1:]) or list(SOURCES)
    status = 0
    for name in names:
        try:
            print(f"{name}: {built(name)}")
        except (SetupError, ValueError) as exc:
            print(f"{name}: error: {exc}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
