"""What the machine looked like when a measurement was taken (after pyperf's metadata).

STANDARD LIBRARY ONLY: shipped to ARM boards with `board_runner.py`. numpy, onnxruntime and torch are looked up by
their installed distribution metadata (no import, so capturing the environment never pays for loading torch), or by
the module's ``__version__`` when it is already imported.

Nothing that names a person or a machine is recorded: no hostname, no user name, no paths under a home directory.

Emulation rule (`emulated`): True when EITHER
  1. the environment variable ``SHUFFLEBENCH_EMULATED`` is set to anything but "" or "0" (the emulated launcher in
     `shufflebench.runners.remote.EmulatedArm` sets it to "qemu-user"), OR
  2. /proc/cpuinfo describes another architecture family than ``platform.machine()``: qemu-user (7.x, as in Debian 12)
     passes the host's x86 /proc/cpuinfo through to an aarch64 guest, so an aarch64 process that reads
     ``vendor_id``/``flags`` lines is emulated. qemu >= 8.2 fakes an ARM /proc/cpuinfo, which defeats rule 2; rule 1
     still holds for every run shufflebench launches itself.
"""

from __future__ import annotations

import os
import platform
import sys

EMULATION_ENV = "SHUFFLEBENCH_EMULATED"

# Thread-count knobs of the runtimes an ONNX/PyTorch process may load; each one changes measured latency.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OMP_PROC_BIND",
    "OMP_WAIT_POLICY",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "KMP_AFFINITY",
    "GOMP_CPU_AFFINITY",
)

# "CPU part" codes of ARM Ltd. cores (implementer 0x41), as listed in the Arm technical reference manuals.
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2",
    "0xd4d": "Cortex-A715",
    "0xd4e": "Cortex-X3",
    "0xd4f": "Neoverse-V2",
}

_X86 = {"x86_64", "amd64", "i386", "i686"}
_ARM = {"aarch64", "arm64", "armv7l", "armv8l", "armv6l"}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _cpuinfo_fields(text: str | None) -> list:
    """Key/value pairs of /proc/cpuinfo in order (keys repeat once per core)."""
    pairs = []
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            pairs.append((key.strip(), value.strip()))
    return pairs


def _cpuinfo_family(pairs: list) -> str | None:
    keys = {k for k, _ in pairs}
    if "vendor_id" in keys or ("model name" in keys and "flags" in keys):
        return "x86"
    if "CPU implementer" in keys or "CPU part" in keys or "Features" in keys:
        return "arm"
    return None


def _machine_family(machine: str) -> str | None:
    if machine in _X86:
        return "x86"
    if machine in _ARM or machine.startswith("arm"):
        return "arm"
    return None


def cpu_model(pairs: list) -> str | None:
    """CPU model from /proc/cpuinfo pairs: x86 "model name"; on ARM the cores' "CPU part" names with counts
    (``Cortex-A76 x4 + Cortex-A55 x4`` on big.LITTLE), else the "Hardware" line."""
    for key, value in pairs:
        if key == "model name" and value:
            return value
    parts = []
    implementer = None
    for key, value in pairs:
        if key == "CPU implementer":
            implementer = value.lower()
        elif key == "CPU part":
            part = value.lower()
            known = ARM_PARTS.get(part) if implementer in (None, "0x41") else None
            parts.append(known or f"implementer {implementer} part {part}")
    if parts:
        counts: dict[str, int] = {}
        for name in parts:
            counts[name] = counts.get(name, 0) + 1
        return " + ".join(f"{name} x{count}" for name, count in counts.items())
    for key, value in pairs:
        if key == "Hardware" and value:
            return value
    return None


def detect_emulation(machine: str | None = None, cpuinfo: str | None = None, env=None) -> tuple:
    """Apply the module's emulation rule; returns ``(emulated, reason)`` with reason None when not emulated."""
    env = os.environ if env is None else env
    machine = platform.machine() if machine is None else machine
    flag = env.get(EMULATION_ENV, "")
    if flag not in ("", "0"):
        return True, f"{EMULATION_ENV}={flag}"
    cpu_family = _cpuinfo_family(_cpuinfo_fields(cpuinfo if cpuinfo is not None else _read("/proc/cpuinfo")))
    own_family = _machine_family(machine)
    if cpu_family and own_family and cpu_family != own_family:
        return True, f"/proc/cpuinfo describes {cpu_family} but the process runs as {machine}"
    return False, None


def _available_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _governor() -> str | None:
    text = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return text.strip() if text else None


def _package_version(name: str) -> str | None:
    """Version of an importable package without importing it (torch alone takes seconds to import)."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        from importlib import metadata

        return metadata.version(name)
    except Exception:  # PackageNotFoundError, or metadata missing in a stripped install
        return None


def cpu_isa() -> str:
    """The vector extension onnxruntime's CPU kernels are chosen for: ``avx512``, ``avx2``, ``sse`` on x86,
    ``neon`` on ARM, else the machine name (it decides the NCHWc block size at ORT_ENABLE_ALL)."""
    flags: set = set()
    for key, value in _cpuinfo_fields(_read("/proc/cpuinfo")):
        if key in ("flags", "Features"):
            flags = set(value.split())
            break
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags and "fma" in flags:
        return "avx2"
    if "sse4_1" in flags or "sse2" in flags:
        return "sse"
    if "asimd" in flags or "neon" in flags:
        return "neon"
    return platform.machine()


def oversubscription_warning(threads: int | None, available: int | None) -> str | None:
    """One-line warning when `threads` intra-op threads exceed the `available` cores, else None.

    threads None or 0 means the runtime's own default (one per physical core), which never oversubscribes.
    """
    if not threads or not available or threads <= available:
        return None
    return (
        f"oversubscribed: {threads} intra-op threads on {available} available cores; threads will wait for each "
        f"other and latency will be worse and noisier than on a machine with {threads} free cores"
    )


def capture(threads: int | None = None, provider: str | None = None, optimization_level: str | None = None) -> dict:
    """Describe this process's machine and runtime as JSON-able data.

    threads: intra-op threads the measurement uses (None: not set). provider: the execution provider measured.
    optimization_level: onnxruntime graph optimization level. Hostname-free by design.
    """
    machine = platform.machine()
    cpuinfo = _read("/proc/cpuinfo")
    pairs = _cpuinfo_fields(cpuinfo)
    emulated, emulation_reason = detect_emulation(machine, cpuinfo or "")
    model = cpu_model(pairs)
    host_cpu = None
    if emulated:
        # The cpuinfo model (if any) is the host's: keep it apart so nobody mistakes it for the emulated core.
        host_cpu = model
        model = f"qemu-user {os.environ.get('QEMU_CPU') or 'default'} (emulated)"
    available = _available_cores()
    board = _read("/proc/device-tree/model")
    warnings = []
    oversub = oversubscription_warning(threads, available)
    if oversub:
        warnings.append(oversub)
    return {
        "machine": machine,
        "system": platform.system(),
        "kernel": platform.release(),
        "cpu_model": model,
        "host_cpu_model": host_cpu,
        "board_model": board.strip("\x00\n ") if board else None,
        "logical_cores": os.cpu_count(),
        "available_cores": available,
        "governor": _governor(),
        "emulated": emulated,
        "emulation_reason": emulation_reason,
        "qemu_cpu": os.environ.get("QEMU_CPU") if emulated else None,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": {name: _package_version(name) for name in ("onnxruntime", "numpy", "torch")},
        "thread_env": {name: os.environ[name] for name in THREAD_ENV_VARS if name in os.environ},
        "threads": threads,
        "provider": provider,
        "optimization_level": optimization_level,
        "warnings": warnings,
    }
