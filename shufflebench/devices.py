"""Device profiles: one TOML file per device in ``devices/``, validated on load.

A profile says what runs the model (backend, execution provider, threads, batch) and where (this machine, an SSH
host, qemu-user emulation, or nowhere: a reference-only profile of a paper's device that holds published hardware
figures for the analytic side). Unknown keys and bad values are refused with the file, the key and the reason.

Fields (all top level unless noted):

=====================  ==========================================================================================
name                   the profile's name (what ``--device`` takes); must match the file name
description            one line for ``shufflebench devices``
kind                   ``cpu``, ``cuda`` or ``arm``
backend                ``onnxruntime`` or ``torch``
provider               onnxruntime execution provider (default ``CPUExecutionProvider``)
threads                intra-op threads, >= 1 (default 1)
batch                  batch size, >= 1 (default 1)
location               ``local``, ``ssh``, ``emulated`` or ``reference`` (not runnable here)
host                   SSH destination for ``location = "ssh"`` (``--host`` and ``SHUFFLEBENCH_ARM_HOST`` win)
port                   SSH port (default: ssh's own choice, e.g. from ~/.ssh/config)
ssh_options            extra ssh arguments, a list of strings (e.g. ``["-i", "~/.ssh/board", "-o", "ProxyJump=gw"]``)
python                 the board's Python (default ``python3``)
qemu_cpu               emulated CPU for ``location = "emulated"`` (e.g. ``cortex-a72``, ``neoverse-n1``, ``max``)
optimization_level     onnxruntime graph optimization: ``all``, ``extended``, ``basic``, ``disabled``
counter                ``none`` (default: latency is timed), or count instead of timing: ``valgrind`` (x86-64
                       under valgrind's callgrind: instructions, loads, stores, cache misses; ``location = "local"``,
                       kind ``cpu``) or ``qemu-plugin`` (aarch64 under qemu-user with the project's plugin:
                       instructions, loads, stores; ``location = "emulated"``). Counted devices run one thread.
counter_runs           counted inferences per model, >= 1 (default 3; the one with the fewest instructions is
                       reported, see shufflebench/counters/figures.py)
counter_warmup         inferences run (instrumented, outputs kept for the check) before the counted ones, >= 0
                       (default 1: the first inference of a session allocates its buffers, and fills the simulated
                       caches)
[hardware]             optional: ``peak_madd_per_s``, ``memory_bandwidth_bytes_per_s`` (> 0) and their ``source``
=====================  ==========================================================================================
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError, allowed
from .files import is_file, read_text_file
from .options import DeviceOptions

KINDS = ("cpu", "cuda", "arm")
BACKENDS = ("onnxruntime", "torch")
LOCATIONS = ("local", "ssh", "emulated", "reference")
OPT_LEVELS = ("all", "extended", "basic", "disabled")
COUNTERS = ("none", "valgrind", "qemu-plugin")
HOST_ENV = "SHUFFLEBENCH_ARM_HOST"
DEVICES_ENV = "SHUFFLEBENCH_DEVICES"
# An SSH board's cores are not known here; this bounds a typo without refusing a large board.
MAX_BOARD_THREADS = 256


@dataclass(frozen=True)
class Hardware:
    """Published or derived hardware figures, with where they come from."""

    peak_madd_per_s: float | None = None
    memory_bandwidth_bytes_per_s: float | None = None
    source: str = ""


@dataclass(frozen=True)
class DeviceProfile:
    """A validated device profile (see the module docstring for each field)."""

    name: str
    description: str
    kind: str
    backend: str
    location: str
    provider: str = "CPUExecutionProvider"
    threads: int = 1
    batch: int = 1
    host: str = ""
    port: int | None = None
    ssh_options: tuple[str, ...] = ()
    python: str = "python3"
    qemu_cpu: str = "cortex-a72"
    optimization_level: str = "all"
    counter: str = "none"
    counter_runs: int = 3
    counter_warmup: int = 1
    hardware: Hardware | None = None
    path: str = ""

    @property
    def runnable(self) -> bool:
        return self.location != "reference"

    @property
    def emulated(self) -> bool:
        return self.location == "emulated"

    @property
    def counted(self) -> bool:
        """Inferences are counted (instructions, memory accesses) instead of timed."""
        return self.counter != "none"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, with the derived ``runnable``, ``emulated`` and ``counted`` flags."""
        data = {k: v for k, v in self.__dict__.items() if k not in ("hardware", "path")}
        data["hardware"] = self.hardware.__dict__ if self.hardware else None
        data["ssh_options"] = list(self.ssh_options)
        data["runnable"] = self.runnable
        data["emulated"] = self.emulated
        data["counted"] = self.counted
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DeviceProfile":
        """Inverse of `to_dict` (the profile as a result file recorded it; not validated like a profile file)."""
        values = {k: v for k, v in data.items()
                  if k not in ("runnable", "emulated", "counted", "hardware", "ssh_options")}
        hardware = data.get("hardware")
        return cls(**values, ssh_options=tuple(data["ssh_options"]),
                   hardware=Hardware(**hardware) if hardware else None)


_REQUIRED = ("name", "description", "kind", "backend", "location")
_STRINGS = ("name", "description", "kind", "backend", "location", "provider", "host", "python", "qemu_cpu",
            "optimization_level", "counter")
_CHOICES = {"kind": KINDS, "backend": BACKENDS, "location": LOCATIONS, "optimization_level": OPT_LEVELS,
            "counter": COUNTERS}
_AT_LEAST = {"threads": 1, "batch": 1, "counter_runs": 1, "counter_warmup": 0}
_HARDWARE_KEYS = ("peak_madd_per_s", "memory_bandwidth_bytes_per_s", "source")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1: more intra-op threads only measure the
    scheduler."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without affinity
        return max(1, os.cpu_count() or 1)


def devices_dir() -> Path:
    """The folder of shipped profiles: ``$SHUFFLEBENCH_DEVICES``, else ``devices/`` of the source tree (a clone or
    an editable install), else the copy an installed wheel put under ``<prefix>/share/shufflebench/devices``."""
    env = os.environ.get(DEVICES_ENV)
    if env:
        if not Path(env).is_dir():
            raise UsageError(f"{DEVICES_ENV}={env!r} is not a folder; point it at a folder of device profile .toml "
                             "files, or unset it")
        return Path(env)
    source = Path(__file__).resolve().parent.parent / "devices"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "shufflebench" / "devices"


def load_profile(path: str | Path) -> DeviceProfile:
    """Read and validate one profile file; `UsageError` naming the file, the key and the reason otherwise."""
    path = Path(path)
    try:
        data = tomllib.loads(read_text_file(path, "device profile"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"device profile {path}: not valid TOML: {exc}") from None
    return _validate(data, path)


def _validate(data: dict[str, Any], path: Path) -> DeviceProfile:
    def bad(key: str, reason: str) -> UsageError:
        return UsageError(f"device profile {path}: {key}: {reason}")

    known = {f for f in DeviceProfile.__dataclass_fields__ if f != "path"}
    for key in data:
        if key not in known:
            raise bad(key, f"unknown key; allowed: {allowed(sorted(known))}")
    for key in _REQUIRED:
        if key not in data:
            raise bad(key, "missing")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _STRINGS:
            if not isinstance(value, str):
                raise bad(key, f"{value!r} is not a string")
            if key in _CHOICES and value not in _CHOICES[key]:
                raise bad(key, f"{value!r} is not allowed; allowed: {allowed(_CHOICES[key])}")
            values[key] = value
        elif key in _AT_LEAST:
            if isinstance(value, bool) or not isinstance(value, int) or value < _AT_LEAST[key]:
                raise bad(key, f"{value!r} must be a whole number >= {_AT_LEAST[key]}")
            values[key] = value
        elif key == "port":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
                raise bad(key, f"{value!r} must be a port number from 1 to 65535")
            values[key] = value
        elif key == "ssh_options":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad(key, f"{value!r} must be a list of strings")
            values[key] = tuple(value)
        elif key == "hardware":
            values[key] = _hardware(value, bad)
    if values["name"] != path.stem:
        raise bad("name", f"{values['name']!r} must match the file name {path.stem!r}")
    if values["location"] == "emulated" and values["kind"] != "arm":
        raise bad("location", "emulation is for kind = \"arm\" only")
    _check_counter(values, bad)
    return DeviceProfile(**values, path=str(path))


# The (location, kind) each counting tool needs: valgrind runs x86-64 code here, the plugin aarch64 under qemu.
_COUNTER_NEEDS = {"valgrind": ("local", "cpu"), "qemu-plugin": ("emulated", "arm")}


def _check_counter(values: dict[str, Any], bad) -> None:
    counter = values.get("counter", "none")
    if counter == "none":
        return
    location, kind = _COUNTER_NEEDS[counter]
    if values["location"] != location or values["kind"] != kind:
        raise bad("counter", f"{counter!r} needs kind = {kind!r} and location = {location!r}; this profile has "
                             f"kind = {values['kind']!r}, location = {values['location']!r}")
    if values["backend"] != "onnxruntime" or values.get("provider", "CPUExecutionProvider") != "CPUExecutionProvider":
        raise bad("counter", "counting needs backend = \"onnxruntime\" with the CPUExecutionProvider")
    if values.get("threads", 1) != 1:
        raise bad("threads", f"{values['threads']} is not allowed with a counter; counted devices run one thread")


def _hardware(value: Any, bad) -> Hardware:
    if not isinstance(value, dict):
        raise bad("hardware", "must be a table")
    for key in value:
        if key not in _HARDWARE_KEYS:
            raise bad(f"hardware.{key}", f"unknown key; allowed: {allowed(_HARDWARE_KEYS)}")
    numbers = {}
    for key in _HARDWARE_KEYS[:2]:
        if key in value:
            number = value[key]
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number <= 0:
                raise bad(f"hardware.{key}", f"{number!r} must be a positive number")
            numbers[key] = float(number)
    if numbers and not value.get("source"):
        raise bad("hardware.source", "hardware figures need their source")
    return Hardware(**numbers, source=str(value.get("source", "")))


def list_profiles() -> list[DeviceProfile]:
    """Every shipped profile, by name; `UsageError` when the folder holds none."""
    folder = devices_dir()
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        raise UsageError(f"{folder} holds no device profile (.toml); set {DEVICES_ENV} to a folder that does")
    return [load_profile(p) for p in paths]


def resolve_device(
    name_or_path: str, *, host: str | None = None, threads: int | None = None, batch: int | None = None
) -> DeviceProfile:
    """A profile by name (from ``devices/``) or by file path, with command-line overrides applied and checked."""
    candidate = Path(name_or_path)
    if name_or_path.endswith(".toml") or os.sep in name_or_path or is_file(candidate):
        profile = load_profile(candidate)
    else:
        path = devices_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            names = [p.name for p in list_profiles()]
            raise UsageError(f"unknown device {name_or_path!r}; known: {allowed(names)} (or a profile .toml file)")
        profile = load_profile(path)
    if threads is not None:
        limit = MAX_BOARD_THREADS if profile.location == "ssh" else available_cores()
        if not 1 <= threads <= limit:
            where = "a board" if profile.location == "ssh" else "the cores this process may use here"
            raise UsageError(f"--threads {threads} is not allowed; allowed: 1 to {limit} ({where})")
        if profile.counted and threads != 1:
            raise UsageError(f"--threads {threads} is not allowed on {profile.name}: counted devices run one thread")
        profile = replace(profile, threads=threads)
    if batch is not None:
        if batch < 1:
            raise UsageError(f"--batch {batch} is not allowed; it must be a positive integer")
        profile = replace(profile, batch=batch)
    if profile.location == "ssh":
        chosen = host or os.environ.get(HOST_ENV) or profile.host
        profile = replace(profile, host=chosen)
    elif host:
        raise UsageError(f"--host applies to SSH devices; {profile.name} runs {profile.location}")
    return profile


def resolve_device_options(options: DeviceOptions, *, batch: int | None = None) -> DeviceProfile:
    """`resolve_device` from the shared device options (and the model options' batch)."""
    return resolve_device(options.device, host=options.host, threads=options.threads, batch=batch)
