"""Run `board_runner` on another Python: over SSH on a board, under qemu-user emulation, or as a local process.

One process carries everything. The host starts ``python3 -c BOOTSTRAP`` on the target, where BOOTSTRAP is fixed
source text (below), and writes a bundle to its stdin: a magic line, an 8-byte big-endian header length, a JSON header
(file names, sizes, sha256 digests, the request) and then the bytes of sampling.py, environment.py, board_runner.py
and the model. The bootstrap writes the files into a fresh temporary directory, imports board_runner from there, runs
the request, prints the result JSON and removes the directory. The model always travels as ``model.onnx``: no user
supplied name or path ever reaches a remote command line, so there is nothing to inject into. ssh joins its argv into
one remote shell command, so for `SshTarget` the fixed command is quoted with `shlex.quote` (POSIX shells: sh, bash,
dash, zsh; a fish or csh login shell on the board would need a `python` path without quotes to be set up there).

Targets share one small interface (`Target`): ``argv(python_args)`` turns Python arguments into the command to start,
``env()`` gives its environment, ``check()`` fails early with a `SetupError` when the target cannot work at all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Optional, Protocol, Sequence, runtime_checkable

from ..errors import MeasurementError, SetupError, UsageError, allowed
from ..measure import board_runner, environment, sampling

MAGIC = b"SHUFFLEBENCH-BUNDLE-1\n"
MODEL_FILE = "model.onnx"
SETUP_SCRIPT = "scripts/setup-arm-emulation.sh"
ROOTFS_ENV = "SHUFFLEBENCH_ARM_ROOTFS"

# CPU models of qemu-aarch64 7.2 (Debian 12) worth emulating: each decides which onnxruntime kernels run
# (cortex-a72: plain NEON; neoverse-n1: NEON with dot product; max: SVE and i8mm too).
QEMU_CPUS = ("cortex-a35", "cortex-a53", "cortex-a57", "cortex-a72", "cortex-a76", "neoverse-n1", "a64fx", "max")

# The program every target runs with ``python -c``. Fixed text: nothing from the request or the user goes into it.
# It reads the bundle described in the module docstring from stdin. Kept compatible with Python 3.8 (old boards).
BOOTSTRAP = r'''
import hashlib, json, os, re, shutil, signal, struct, sys, tempfile
def fail(kind, message):
    sys.stdout.write(json.dumps({"schema": 1, "error": {"kind": kind, "message": message}}) + "\n")
    sys.stdout.flush()
    sys.exit(2)
stream = sys.stdin.buffer
def read(n):
    parts, left = [], n
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            fail("bad_bundle", "bundle ended %d bytes early" % left)
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
magic = MAGIC_LITERAL
if read(len(magic)) != magic:
    fail("bad_bundle", "stdin does not start with a shufflebench bundle")
header = json.loads(read(struct.unpack(">Q", read(8))[0]).decode("utf-8"))
def stop(signum, frame):
    raise SystemExit("shufflebench: stopped by signal %d (host timeout or lost connection)" % signum)
for name in ("SIGTERM", "SIGHUP", "SIGALRM"):
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), stop)
if hasattr(signal, "alarm") and header.get("deadline_s"):
    signal.alarm(int(header["deadline_s"]))
work = tempfile.mkdtemp(prefix="shufflebench-")
status = 2
try:
    for entry in header["files"]:
        name = entry["name"]
        if not re.fullmatch(r"[A-Za-z0-9_]+\.(py|onnx)", name):
            fail("bad_bundle", "refusing file name %r" % name)
        digest, left = hashlib.sha256(), entry["size"]
        with open(os.path.join(work, name), "wb") as out:
            while left:
                chunk = read(min(left, 1 << 20))
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
        if digest.hexdigest() != entry["sha256"]:
            fail("bad_bundle", "%s arrived corrupted" % name)
    sys.dont_write_bytecode = True
    sys.path.insert(0, work)
    import board_runner
    models = [os.path.join(work, name) for name in header["model_files"]]
    request = header["request"]
    if "interleaved" in request:
        request = dict(request, interleaved=[dict(r, model=m) for r, m in zip(request["interleaved"], models)])
    else:
        request = dict(request, model=models[0])
    status = board_runner.serve(request)
finally:
    shutil.rmtree(work, ignore_errors=True)
sys.exit(status)
'''.replace("MAGIC_LITERAL", repr(MAGIC))


@runtime_checkable
class Target(Protocol):
    """Where board_runner runs. label: for messages. emulated: latency is not hardware latency.

    setup_hint: how to give this target onnxruntime. connect_error_status: the exit status meaning "never reached
    the target" (ssh's 255), or None.
    """

    label: str
    emulated: bool
    setup_hint: str
    connect_error_status: Optional[int]

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

    def __init__(self, rootfs=None, qemu_cpu: str = "cortex-a72", qemu: str = "qemu-aarch64-static"):
        if qemu_cpu not in QEMU_CPUS:
            raise UsageError(f"qemu cpu {qemu_cpu!r} is not offered; allowed: {allowed(QEMU_CPUS)}")
        self.rootfs = Path(rootfs).expanduser() if rootfs is not None else default_rootfs()
        self.qemu_cpu = qemu_cpu
        self.qemu = qemu
        self.label = f"emulated aarch64 ({qemu_cpu})"
        self.setup_hint = f"run {SETUP_SCRIPT} (it installs onnxruntime and numpy into {self.rootfs})"

    def argv(self, python_args: Sequence[str]) -> list:
        python = _rootfs_python(self.rootfs)
        unshare = ["unshare", "--mount"]
        if os.geteuid() != 0:
            unshare.append("--map-root-user")  # an unprivileged user namespace may mount a tmpfs in its own namespace
        mount = 'mount -t tmpfs -o size=64k,mode=0555 shufflebench-nocpu /sys/devices/system/cpu && exec "$@"'
        # -I: ignore PYTHON* variables and the user site: host paths there would load x86 extension modules.
        return [*unshare, "--", "sh", "-c", mount, "sh", self.qemu, "-L", str(self.rootfs), str(python), "-I",
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


def _shipped_files() -> list:
    """(name, path) of the modules the board needs, all siblings in shufflebench.measure."""
    return [(Path(m.__file__).name, Path(m.__file__)) for m in (sampling, environment, board_runner)]


def _model_file(index: int) -> str:
    return MODEL_FILE if index == 0 else f"model_{index}.onnx"


def make_bundle(model_path, request: dict, deadline_s: Optional[float] = None) -> bytes:
    """The bytes written to the bootstrap's stdin (format in the module docstring). ``model_path`` may be a list
    of paths for an interleaved request (one model file each, in order)."""
    paths = [Path(p) for p in model_path] if isinstance(model_path, (list, tuple)) else [Path(model_path)]
    models = [(_model_file(i), path) for i, path in enumerate(paths)]
    files = [*_shipped_files(), *models]
    blobs = [path.read_bytes() for _, path in files]
    header = {
        "files": [
            {"name": name, "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
            for (name, _), blob in zip(files, blobs)
        ],
        "model_files": [name for name, _ in models],
        "request": request,
        "deadline_s": None if deadline_s is None else math.ceil(deadline_s),
    }
    encoded = json.dumps(header).encode("utf-8")
    return b"".join([MAGIC, struct.pack(">Q", len(encoded)), encoded, *blobs])


def _stderr_tail(stderr: bytes, lines: int = 2, limit: int = 300) -> str:
    """The last lines of stderr as one line, without the harmless "Error in cpuinfo" noise of emulated onnxruntime."""
    kept = [
        line.strip()
        for line in stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("Error in cpuinfo")
    ]
    text = " | ".join(kept[-lines:]) or "no error output"
    return text if len(text) <= limit else "..." + text[-(limit - 3):]


def _clip(text: str, limit: int = 300) -> str:
    """One line, at most `limit` characters, keeping the head (where error messages say what went wrong)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _last_json(stdout: bytes) -> Optional[dict]:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _status_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


def _stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM first, so the bootstrap removes its temporary directory (it turns the signal into a clean exit);
    SIGKILL after `grace_s` seconds. For ssh, ending the client closes the channel; the remote side then stops on
    its own deadline."""
    proc.terminate()
    try:
        proc.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def run_remote(target: Target, model_path, request: dict, timeout_s: Optional[float] = None) -> dict:
    """Measure `model_path` on `target` with `request` (board_runner's schema; its "model" key is set here).

    timeout_s: wall-clock limit in seconds for the whole exchange (start, transfer, load, sampling); None gives
    60 s plus three times the policy's budget_s, and 120 s more on an emulated target. Returns board_runner's result
    dict (samples in seconds) plus ``target``: {kind, label, emulated}.

    Raises `UsageError` (bad request or model path), `SetupError` (target unreachable or without onnxruntime, rootfs
    missing), `MeasurementError` (model refused, remote crash, timeout).
    """
    paths = [Path(p) for p in model_path] if isinstance(model_path, (list, tuple)) else [Path(model_path)]
    for path in paths:
        if not path.is_file():
            raise UsageError(f"model {path} is not a file; give the path of an .onnx model")
    try:
        if "interleaved" in request:
            policy_fields = request.get("policy", {})
            request = {"interleaved": [board_runner.validate_request(dict(r, model=_model_file(i), policy=policy_fields))
                                       for i, r in enumerate(request["interleaved"])], "policy": policy_fields}
        else:
            request = board_runner.validate_request(dict(request, model=MODEL_FILE))
    except ValueError as exc:
        raise UsageError(f"measurement request: {exc}") from None
    policy = sampling.SamplingPolicy.from_dict(request["policy"])
    model_path = paths[0] if len(paths) == 1 else paths
    if timeout_s is None:
        timeout_s = 60.0 + 3.0 * policy.budget_s + (120.0 if target.emulated else 0.0)
    if not timeout_s > 0:
        raise UsageError(f"timeout_s={timeout_s!r} is not allowed; allowed: seconds > 0")
    target.check()

    # The remote side gives up a little after the host does, so a board never keeps running an abandoned job.
    bundle = make_bundle(paths, request, deadline_s=timeout_s + 2)
    argv = target.argv(["-c", BOOTSTRAP])
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=target.env()
        )
    except OSError as exc:
        raise SetupError(f"{target.label}: cannot start {argv[0]}: {exc.strerror or exc}") from None
    try:
        stdout, stderr = proc.communicate(bundle, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise MeasurementError(
            f"{target.label}: no result within timeout_s={timeout_s:g} s; raise the timeout or lower the sampling "
            f"budget (budget_s={policy.budget_s:g})"
        ) from None
    except BaseException:  # Ctrl-C: leave no process behind
        _stop(proc)
        raise
    done = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)

    answer = _last_json(done.stdout)
    if answer is None:
        tail = _stderr_tail(done.stderr)
        if target.connect_error_status is not None and done.returncode == target.connect_error_status:
            raise SetupError(f"cannot reach {target.label} over ssh: {tail}")
        if done.returncode == 127:
            raise SetupError(f"{target.label}: python not found on the target: {tail}")
        raise MeasurementError(f"{target.label}: remote python failed with {_status_text(done.returncode)}: {tail}")
    error = answer.get("error")
    if error is not None:
        # Name the user's model, not the remote temporary copy onnxruntime reported.
        message = re.sub(
            r"\S*shufflebench-[^/\s]+/(model(?:_(\d+))?\.onnx)",
            lambda m: str(paths[int(m.group(2) or 0)]) if int(m.group(2) or 0) < len(paths) else m.group(0),
            str(error.get("message", "")),
        )
        kind, message = error.get("kind"), _clip(message)
        if kind == "missing_onnxruntime":
            raise SetupError(f"{target.label} has no usable onnxruntime ({message}); {target.setup_hint}")
        if kind == "missing_provider":
            raise SetupError(f"{target.label}: {message}")
        raise MeasurementError(f"{target.label}: {kind}: {message}")
    if done.returncode != 0:
        raise MeasurementError(
            f"{target.label}: remote python ended with {_status_text(done.returncode)} after answering: "
            f"{_stderr_tail(done.stderr)}"
        )
    answer["target"] = {
        "kind": type(target).__name__,
        "label": target.label,
        "emulated": bool(target.emulated),
    }
    return answer


def to_measurement(result: dict):
    """A `stats.Measurement` from a `run_remote` result."""
    from ..measure.stats import Measurement

    return Measurement.from_samples(sampling.Samples.from_dict(result))
