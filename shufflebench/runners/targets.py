"""Where `board_runner` runs when it does not run in this process: a target starts another Python.

Targets share one small interface (`Target`): ``argv(python_args)`` turns Python arguments into the command to start,
``env()`` gives its environment, ``check()`` fails early with a `SetupError` when the target cannot work at all.
`LocalPython` is a Python on this machine, `SshTarget` a board over the system ``ssh`` client, `EmulatedArm` aarch64
under qemu-user; the counted devices' targets run the same Python under a counting tool: `CallgrindPython` (valgrind
on x86-64) and `CountedArm` (qemu-user with the project's plugin). ssh joins its argv into one remote shell command,
so for `SshTarget` the fixed command is quoted with `shlex.quote` (POSIX shells: sh, bash, dash, zsh; a fish or csh
login shell on the board would need a `python` path without quotes to be set up there).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Protocol, Sequence, runtime_checkable

from ..counters.build import built
from ..counters.callgrind import callgrind_options
from ..counters.qemu_plugin import plugin_argument
from ..errors import SetupError, UsageError, allowed
from ..measure import environment

SETUP_SCRIPT = "scripts/setup-arm-emulation.sh"
COUNTERS_SETUP = "scripts/setup-counters.sh"
#: The whole environment of a counted process, nothing inherited (the environment is copied onto the new process's
#: stack, so its size moves every stack address, and counts depend on addresses: kernels take other paths for other
#: alignments; the tools themselves are called by their full paths, found on the caller's PATH): a fixed hash seed
#: (dict and set order, hence the Python instructions between the kernels), single-threaded numerical libraries, and
#: onnxruntime's telemetry off (on Linux it starts a background thread at import, with an event store under
#: ~/.cache/Microsoft, whose work landed in whichever counted inference it happened to run during).
COUNTED_ENV = {"PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "ORT_DISABLE_TELEMETRY": "1", "LC_ALL": "C",
               "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
ROOTFS_ENV = "SHUFFLEBENCH_ARM_ROOTFS"

# CPU models of qemu-aarch64 7.2 (Debian 12) worth emulating: each decides which onnxruntime kernels run
# (cortex-a72: plain NEON; neoverse-n1: NEON with dot product; max: SVE and i8mm too).
QEMU_CPUS = ("cortex-a35", "cortex-a53", "cortex-a57", "cortex-a72", "cortex-a76", "neoverse-n1", "a64fx", "max")


@runtime_checkable
class Target(Protocol):
    """Where board_runner runs. label: for messages. emulated: latency is not hardware latency.

    setup_hint: how to give this target onnxruntime. connect_error_status: the exit status meaning "never reached
    the target" (ssh's 255), or None.
    """

    @property
    def label(self) -> str: ...

    @property
    def emulated(self) -> bool: ...

    @property
    def setup_hint(self) -> str: ...

    @property
    def connect_error_status(self) -> Optional[int]: ...

    def argv(self, python_args: Sequence[str]) -> list:
        """The command that starts the target's Python with `python_args` (e.g. ``["-c", BOOTSTRAP]``)."""

    def env(self) -> Optional[dict]:
        """Environment for the local process that is started (None: inherit this one)."""

    def check(self) -> None:
        """Raise `SetupError` when the target cannot work at all (missing program, rootfs...), before starting it."""


class LocalPython:
    """A Python on this machine (used when shufflebench itself runs on the board, and in tests)."""

    emulated = False
    connect_error_status = None

    def __init__(self, executable: str = sys.executable):
        self.executable = str(executable)
        self.label = f"local python {self.executable}"
        self.setup_hint = f"install them: {shlex.quote(self.executable)} -m pip install onnxruntime numpy"

    def argv(self, python_args: Sequence[str]) -> list:
        return [self.executable, *python_args]

    def env(self) -> Optional[dict]:
        return None

    def check(self) -> None:
        if shutil.which(self.executable) is None:
            raise SetupError(f"python {self.executable} does not exist or is not executable; pass a Python interpreter")


def _tool_version(argv: Sequence[str]) -> str:
    """The first line a tool prints for its version (``valgrind-3.19.0``), or "unknown"."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def _require(program: str, what: str) -> str:
    """The full path of ``program``; `SetupError` saying what to install when it is not on PATH."""
    found = shutil.which(program)
    if found is None:
        raise SetupError(f"{program} not found; {what}, or run {COUNTERS_SETUP}")
    return found


class CallgrindPython(LocalPython):
    """This machine's Python under valgrind's callgrind (the ``cpu-counted`` device): address-space randomization
    off (``setarch -R``), `COUNTED_ENV`, dumps written to ``out_file.N`` (`counters.callgrind`)."""

    emulated = False

    def __init__(self, out_file: Path, executable: str = sys.executable, valgrind: str = "valgrind"):
        super().__init__(executable)
        self.out_file = Path(out_file)
        self.valgrind, self.setarch = valgrind, "setarch"
        self.label = f"valgrind callgrind around {self.executable}"

    def argv(self, python_args: Sequence[str]) -> list:
        return [self.setarch, "-R", self.valgrind, "--quiet", *callgrind_options(self.out_file), self.executable,
                *python_args]

    def env(self) -> Optional[dict]:
        return dict(COUNTED_ENV)

    def check(self) -> None:
        super().check()
        self.executable = shutil.which(self.executable) or self.executable
        self.valgrind = _require(self.valgrind, "install valgrind (Debian and Ubuntu: apt-get install valgrind)")
        self.setarch = _require("setarch", "install util-linux")

    def prepare(self) -> dict:
        """Build the marker library (`counters.build`) and return the board runner's marker for it."""
        return {"kind": "callgrind", "library": str(built("callgrind_marker"))}

    def tool_version(self) -> str:
        return _tool_version([self.valgrind, "--version"])


class SshTarget:
    """A board reached with the system ``ssh`` client, so ~/.ssh/config, keys, agents and jump hosts all apply.

    host: an ssh destination (``user@board``, or a Host alias). port: None keeps ssh's own choice.
    ssh_options: extra ssh arguments, verbatim (``("-i", "key", "-o", "ProxyJump=gw")``).
    connect_timeout: seconds ssh waits for the connection. python: the board's interpreter, a name on the remote
    PATH or a path (a leading ``~/`` is expanded by the remote shell).
    ``BatchMode=yes`` makes ssh fail at once instead of asking for a password nobody will type.
    """

    emulated = False
    connect_error_status = 255  # ssh's own failures (refused, no route, auth, host key) all exit 255

    def __init__(
        self,
        host: str,
        port: Optional[int] = None,
        ssh_options: Sequence[str] = (),
        connect_timeout: float = 10,
        python: str = "python3",
        ssh: str = "ssh",
    ):
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise UsageError(f"ssh host {host!r} is not a destination; give user@host, host or a ~/.ssh/config alias")
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            raise UsageError(f"ssh port {port!r} is not allowed; allowed: 1 to 65535")
        if not connect_timeout > 0:
            raise UsageError(f"ssh connect_timeout={connect_timeout!r} is not allowed; allowed: seconds > 0")
        if not python or any(c.isspace() for c in python):
            raise UsageError(f"remote python {python!r} is not a program name or path without spaces")
        self.host, self.port, self.python, self.ssh = host, port, python, ssh
        self.ssh_options = tuple(str(o) for o in ssh_options)
        self.connect_timeout = connect_timeout
        self.label = host if port is None else f"{host}:{port}"
        self.setup_hint = f"install them on {host}: {python} -m pip install onnxruntime numpy"

    def _remote_python(self) -> str:
        if self.python.startswith("~/"):
            return "~/" + shlex.quote(self.python[2:])  # the unquoted ~/ lets the remote shell expand it
        return shlex.quote(self.python)

    def argv(self, python_args: Sequence[str]) -> list:
        remote = " ".join([self._remote_python(), *(shlex.quote(a) for a in python_args)])
        port = ["-p", str(self.port)] if self.port is not None else []
        return [
            self.ssh,
            "-T",
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, math.ceil(self.connect_timeout))}",
            *port,
            *self.ssh_options,
            "--",  # the host can never be read as an option, whatever it looks like
            self.host,
            remote,
        ]

    def env(self) -> Optional[dict]:
        return None

    def check(self) -> None:
        if shutil.which(self.ssh) is None:
            raise SetupError(f"ssh client {self.ssh!r} not found; install openssh-client")


def default_rootfs() -> Path:
    """The aarch64 rootfs for emulation: ``$SHUFFLEBENCH_ARM_ROOTFS``, else ``~/.cache/shufflebench/arm-rootfs``."""
    configured = os.environ.get(ROOTFS_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "shufflebench" / "arm-rootfs"


def _rootfs_python(rootfs: Path) -> Optional[Path]:
    found = sorted(
        (p for p in (rootfs / "usr" / "bin").glob("python3.*") if re.fullmatch(r"python3\.\d+", p.name)),
        key=lambda p: int(p.name.split(".")[1]),
    )
    return found[-1] if found else None


class EmulatedArm:
    """aarch64 CPython and onnxruntime from a Debian rootfs, run by qemu-user on this (x86-64) machine.

    rootfs: made by scripts/setup-arm-emulation.sh (default `default_rootfs()`). qemu_cpu: the emulated core, one
    of `QEMU_CPUS`; it decides which kernels onnxruntime picks, so match it to the target board.

    onnxruntime crashes at import when it sees both the host's /sys/devices/system/cpu and the host's x86
    /proc/cpuinfo; an empty tmpfs over /sys/devices/system/cpu in a private mount namespace (``unshare --mount``)
    makes it read the emulated CPU's features through getauxval instead. Timings are emulated, never hardware.
    """

    emulated = True
    connect_error_status = None
    #: -I: ignore PYTHON* variables and the user site: host paths there would load x86 extension modules.
    python_flags: tuple[str, ...] = ("-I",)

    def __init__(self, rootfs=None, qemu_cpu: str = "cortex-a72", qemu: str = "qemu-aarch64-static"):
        if qemu_cpu not in QEMU_CPUS:
            raise UsageError(f"qemu cpu {qemu_cpu!r} is not offered; allowed: {allowed(QEMU_CPUS)}")
        self.rootfs = Path(rootfs).expanduser() if rootfs is not None else default_rootfs()
        self.qemu_cpu = qemu_cpu
        self.qemu = qemu
        self.label = f"emulated aarch64 ({qemu_cpu})"
        self.setup_hint = f"run {SETUP_SCRIPT} (it installs onnxruntime and numpy into {self.rootfs})"

    def qemu_command(self) -> list:
        """qemu and its own options, up to the rootfs."""
        return [self.qemu, "-L", str(self.rootfs)]

    def argv(self, python_args: Sequence[str]) -> list:
        python = _rootfs_python(self.rootfs)
        unshare = ["unshare", "--mount"]
        if os.geteuid() != 0:
            unshare.append("--map-root-user")  # an unprivileged user namespace may mount a tmpfs in its own namespace
        mount = 'mount -t tmpfs -o size=64k,mode=0555 shufflebench-nocpu /sys/devices/system/cpu && exec "$@"'
        return [*unshare, "--", "sh", "-c", mount, "sh", *self.qemu_command(), str(python), *self.python_flags,
                *python_args]

    def env(self) -> Optional[dict]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["QEMU_CPU"] = self.qemu_cpu
        env[environment.EMULATION_ENV] = "qemu-user"
        return env

    def check(self) -> None:
        if not self.rootfs.is_dir() or _rootfs_python(self.rootfs) is None:
            raise SetupError(f"no aarch64 rootfs with python3 at {self.rootfs}; run {SETUP_SCRIPT}")
        for program in (self.qemu, "unshare"):
            if shutil.which(program) is None:
                raise SetupError(f"{program} not found; run {SETUP_SCRIPT}")


class CountedArm(EmulatedArm):
    """`EmulatedArm` with the project's qemu plugin counting what the guest executes (the ``arm-counted`` devices).

    It needs the dynamically linked ``qemu-aarch64`` of Debian's qemu-user (a static qemu cannot load plugins).
    Address-space randomization is off (``setarch -R``); the guest Python gets `COUNTED_ENV`, so it runs with ``-s``
    (no user site) instead of ``-I``, which would ignore the hash seed. ``out_file``: where the plugin writes its
    marks (`counters.qemu_plugin`); the plugin itself is built by `prepare`.
    """

    python_flags = ("-s",)

    def __init__(self, out_file: Path, rootfs=None, qemu_cpu: str = "cortex-a72", qemu: str = "qemu-aarch64"):
        super().__init__(rootfs, qemu_cpu=qemu_cpu, qemu=qemu)
        self.out_file = Path(out_file)
        self.plugin: Path | None = None
        self.setarch = "setarch"
        self.label = f"counted aarch64 ({qemu_cpu})"

    def prepare(self) -> dict:
        """Build the plugin (`counters.build`) and return the board runner's marker (a system call it sees)."""
        self.plugin = built("insn_count")
        return {"kind": "syscall"}

    def qemu_command(self) -> list:
        if self.plugin is None:
            raise RuntimeError("the counting plugin is not built; call prepare() first")
        return [self.setarch, "-R", self.qemu, "-plugin", plugin_argument(self.plugin, self.out_file), "-L",
                str(self.rootfs)]

    def env(self) -> Optional[dict]:
        return {"QEMU_CPU": self.qemu_cpu, environment.EMULATION_ENV: "qemu-user", **COUNTED_ENV}

    def check(self) -> None:
        hint = "install qemu-user (Debian and Ubuntu: apt-get install qemu-user; a static qemu cannot load plugins)"
        self.qemu = _require(self.qemu, hint)
        try:
            usage = subprocess.run([self.qemu, "-h"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            usage = ""
        if "-plugin" not in usage:
            raise SetupError(f"{self.qemu} cannot load plugins (built without them, or statically linked); {hint}")
        self.setarch = _require("setarch", "install util-linux")
        super().check()

    def tool_version(self) -> str:
        return _tool_version([self.qemu, "--version"])
