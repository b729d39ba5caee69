"""Option groups for the command line, each declared once, with defaults from the library's own dataclasses.

A group is a set of typer options that always travel together (sampling, model variant, device, output) and the
function that turns their values into the one object the library takes (a `SamplingPolicy`, `VariantOptions`,
`DeviceOptions`, an `Output`). `with_options` adds a group's options to a command's signature, which is what typer
reads, and hands the command the built object under the group's name, so a command declares only what is its own.
Per-command presets (`options.SAMPLING_PRESETS`) give each command its defaults, shown by ``--help``.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from .measure.sampling import SamplingPolicy
from .options import DeviceOptions, VariantOptions


@dataclass(frozen=True)
class OptionGroup:
    """Options declared together: the parameters typer sees, and how their values become one object (passed to the
    command as the keyword ``name``)."""

    name: str
    params: tuple[inspect.Parameter, ...]
    build: Callable[..., Any]


def _option(name: str, kind: Any, default: Any, *flags: str, **settings: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, typer.Option(*flags, **settings)])


def with_options(*groups: OptionGroup) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the groups' options to a command; the command receives each group's built object instead."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
               if p.name not in {g.name for g in groups}]

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            for group in groups:
                values[group.name] = group.build(**{p.name: values.pop(p.name) for p in group.params})
            return command(**values)

        params = own + [p for g in groups for p in g.params]
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


BUDGET_HELP = ("Seconds of timing PER MODEL, warm-up included (several models measured together get this much "
               "each).")


def sampling(preset: SamplingPolicy) -> OptionGroup:
    """--budget, --precision, --warmup, --min-runs, --min-time: a `SamplingPolicy` from ``preset``."""

    def build(budget: float, precision: float, warmup: int, min_runs: int, min_time: float) -> SamplingPolicy:
        return replace(preset, budget_s=budget, target_rel_ci=precision, warmup_runs=warmup, min_runs=min_runs,
                       min_time_s=min_time)

    return OptionGroup("sampling", (
        _option("budget", float, preset.budget_s, "--budget", min=0.01, help=BUDGET_HELP),
        _option("precision", float, preset.target_rel_ci, "--precision", min=0.0001, max=1.0,
                help="Stop when the 95% CI of the median is within this fraction of it."),
        _option("warmup", int, preset.warmup_runs, "--warmup", min=0, help="Warm-up runs, timed but kept apart."),
        _option("min_runs", int, preset.min_runs, "--min-runs", min=1,
                help="Timed runs (rounds, when models are interleaved) always taken."),
        _option("min_time", float, preset.min_time_s, "--min-time", min=0.0,
                help="Seconds of timed runs before the precision target may end sampling, so slow and fast spells "
                     "of the machine are both seen (the budget still ends it first)."),
    ), build)


def variant() -> OptionGroup:
    """--width, --groups, --resolution, --batch, --input-shape: `VariantOptions` (defaults from its dataclass)."""
    defaults = VariantOptions()

    def build(width: Optional[float], groups: Optional[int], resolution: Optional[int], batch: Optional[int],
              input_shape: Optional[str]) -> VariantOptions:
        from .models import parse_shape

        shape = parse_shape(input_shape) if input_shape is not None else None
        return VariantOptions(width=width, groups=groups, resolution=resolution, batch=batch, input_shape=shape)

    return OptionGroup("variant", (
        _option("width", Optional[float], defaults.width, "--width",
                help="Width multiplier (zoo models that have one)."),
        _option("groups", Optional[int], defaults.groups, "--groups",
                help="Groups of ShuffleNet V1 / the g2 micro-network."),
        _option("resolution", Optional[int], defaults.resolution, "--resolution",
                help="Input height and width in pixels (zoo models)."),
        _option("batch", Optional[int], defaults.batch, "--batch",
                help="Batch size (default: the device profile's, or 1 without a device)."),
        _option("input_shape", Optional[str], None, "--input-shape",
                help="Input shape for your own models, e.g. 1,3,224,224."),
    ), build)


def device() -> OptionGroup:
    """--device, --threads, --host: `DeviceOptions`."""
    defaults = DeviceOptions()
    return OptionGroup("device_options", (
        _option("device", str, defaults.device, "--device",
                help="A device profile name (see `devices`) or a .toml file."),
        _option("threads", Optional[int], defaults.threads, "--threads",
                help="Intra-op threads (default: the profile's)."),
        _option("host", Optional[str], defaults.host, "--host", help="SSH destination of an ARM board (user@host)."),
    ), DeviceOptions)


def calibration() -> OptionGroup:
    """--calibration FILE: a `CalibrationSource` (without the option: the store, by device and environment)."""

    def build(calibration: Optional[Path]) -> Any:
        from .latency.source import CalibrationSource

        return CalibrationSource(calibration)

    return OptionGroup("calibration", (
        _option("calibration", Optional[Path], None, "--calibration",
                help="A calibration file (`calibrate --output`); default: the stored calibration of the device, "
                     "when there is one for this machine and settings."),
    ), build)


class Format(str, Enum):
    """Every output format; each command offers the ones that fit it."""

    table = "table"
    json = "json"
    md = "md"
    csv = "csv"


@dataclass(frozen=True)
class Output:
    """Where and how a command's result goes: the printed format and an optional JSON file."""

    format: Format
    path: Path | None = None


def output(*formats: str, file: bool = True) -> OptionGroup:
    """--format (one of ``formats``) and, with ``file``, --output FILE: an `Output`."""
    choices = Enum("Formats", {name: name for name in formats}, type=str)  # type: ignore[misc]
    params = [_option("format", choices, choices(formats[0]), "--format", help="Output format.")]
    if file:
        params.append(_option("output", Optional[Path], None, "--output",
                              help="Write the JSON result to this file (atomically)."))

    def build(format: Enum, output: Optional[Path] = None) -> Output:
        return Output(Format(format.value), output)

    return OptionGroup("out", tuple(params), build)
