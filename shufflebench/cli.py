"""The `shufflebench` command: a thin layer over library functions.

Each sub-command parses its options, calls the library, and hands plain data to a renderer. Errors the user can fix
arrive as `ShufflebenchError` and leave as one line on stderr with a non-zero exit code, never a traceback. Heavy
imports (torch, onnxruntime) happen inside the commands so ``--help`` is instant.
"""

from __future__ import annotations

import functools
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from .errors import ShufflebenchError

app = typer.Typer(
    help="Hardware-aware latency and FLOPs profiler for efficient CNNs: theoretical cost next to measured speed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class ListFormat(str, Enum):
    table = "table"
    json = "json"


class ProfileFormat(str, Enum):
    table = "table"
    json = "json"
    md = "md"


class SortKey(str, Enum):
    order = "order"
    flops = "flops"
    mac = "mac"
    params = "params"


def _stdout() -> Console:
    return Console(width=100) if not Console().is_terminal else Console()


def _stderr() -> Console:
    return Console(stderr=True, width=200, highlight=False, soft_wrap=True)


def friendly(command: Callable) -> Callable:
    """Turn a `ShufflebenchError` into ``error: <message>`` on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ShufflebenchError as exc:
            _stderr().print(f"error: {exc}", markup=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


ModelArg = Annotated[
    str,
    typer.Argument(
        help="A zoo model (name or alias, options inline: shufflenet_v1:groups=3,width=0.5), an .onnx file, "
        "or package.module:callable returning an nn.Module.",
        show_default=False,
    ),
]
WidthOpt = Annotated[Optional[float], typer.Option("--width", help="Width multiplier (zoo models that have one).")]
GroupsOpt = Annotated[Optional[int], typer.Option("--groups", help="Groups of ShuffleNet V1 / the g2 micro-network.")]
ResolutionOpt = Annotated[Optional[int], typer.Option("--resolution", help="Input height and width in pixels.")]
BatchOpt = Annotated[int, typer.Option("--batch", help="Batch size of the input.")]
InputShapeOpt = Annotated[
    Optional[str], typer.Option("--input-shape", help="Input shape for your own models, e.g. 1,3,224,224.")
]


def model_ref(model: str, width, groups, resolution, batch: int, input_shape: Optional[str]):
    """Resolve the common model options of every command into a `ModelRef`."""
    from .models import parse_shape, resolve_model

    shape = parse_shape(input_shape) if input_shape is not None else None
    overrides = {"width": width, "groups": groups, "resolution": resolution}
    return resolve_model(model, overrides=overrides, batch=batch, input_shape=shape)


@app.command("list")
@friendly
def list_models(
    format: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = ListFormat.table,
) -> None:
    """Every model in the zoo, with its variant options and the papers' reference numbers."""
    from .report.zoo import render_zoo, zoo_data

    data = zoo_data()
    if format is ListFormat.json:
        _echo_json(data)
    else:
        _stdout().print(render_zoo(data))


@app.command()
@friendly
def count(
    model: ModelArg,
    width: WidthOpt = None,
    groups: GroupsOpt = None,
    resolution: ResolutionOpt = None,
    batch: BatchOpt = 1,
    input_shape: InputShapeOpt = None,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="One row per executed operator.")] = False,
    sort: Annotated[SortKey, typer.Option("--sort", help="Order of the layer rows.")] = SortKey.order,
    top: Annotated[Optional[int], typer.Option("--top", min=1, help="Show only the first N layer rows.")] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Count multiply-adds, params and memory access cost of a model (no hardware needed)."""
    from .models import layer_table
    from .report.count import count_csv, count_data, render_count

    ref = model_ref(model, width, groups, resolution, batch, input_shape)
    table = layer_table(ref)
    data = count_data(ref, table, per_layer=per_layer, figures=_figures(ref))
    if format is OutputFormat.json:
        _echo_json(data)
    elif format is OutputFormat.csv:
        typer.echo(count_csv(data), nl=False)
    else:
        _stdout().print(render_count(data, sort=sort.value, top=top))


@app.command()
@friendly
def check(
    model: ModelArg,
    width: WidthOpt = None,
    groups: GroupsOpt = None,
    resolution: ResolutionOpt = None,
    batch: BatchOpt = 1,
    input_shape: InputShapeOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any finding is above its threshold.")] = False,
    config: Annotated[
        Optional[Path], typer.Option("--config", help="TOML file of thresholds (default: [tool.shufflebench] "
                                     "in ./pyproject.toml).")
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List every metric, not only those above threshold.")] = False,
    top: Annotated[Optional[int], typer.Option("--top", min=1, help="Show only the first N findings.")] = None,
    format: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = ListFormat.table,
) -> None:
    """Lint a model against the ShuffleNet V2 guidelines G1-G4 (MAC-based, no hardware needed)."""
    from .guidelines import check as run_check, load_thresholds
    from .models import layer_table
    from .report.check import check_data, render_check

    thresholds = load_thresholds(config)
    ref = model_ref(model, width, groups, resolution, batch, input_shape)
    findings = run_check(layer_table(ref), thresholds)
    data = check_data(ref, findings, thresholds)
    if format is ListFormat.json:
        _echo_json(data)
    else:
        _stdout().print(render_check(data, show_all=show_all, top=top))
    if strict and any(f.above for f in findings):
        raise typer.Exit(1)


@app.command()
@friendly
def devices(
    format: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = ListFormat.table,
) -> None:
    """The device profiles shipped in devices/ (reference-only ones hold the papers' hardware figures)."""
    from rich.table import Table

    from .devices import list_profiles

    profiles = list_profiles()
    if format is ListFormat.json:
        _echo_json({"schema": "shufflebench.devices/1", "devices": [p.to_dict() for p in profiles]})
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("device", "backend", "where", "threads", "batch", "description"):
        table.add_column(column, overflow="fold")
    for p in profiles:
        where = "reference only" if not p.runnable else p.location
        table.add_row(p.name, f"{p.backend} {p.provider if p.backend == 'onnxruntime' else ''}".strip(), where,
                      str(p.threads), str(p.batch), p.description)
    _stdout().print(table)


BudgetOpt = Annotated[float, typer.Option("--budget", min=0.01, help="Seconds of timing per model (warm-up included).")]
PrecisionOpt = Annotated[
    float, typer.Option("--precision", min=0.0001, max=1.0, help="Stop when the 95% CI of the median is within "
                        "this fraction of it.")
]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, help="Warm-up runs, timed but kept apart.")]
MinRunsOpt = Annotated[int, typer.Option("--min-runs", min=1, help="Timed runs always taken.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="A device profile name (see `devices`) or a .toml file.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads (default: the profile's).")]
HostOpt = Annotated[Optional[str], typer.Option("--host", help="SSH destination of an ARM board (user@host).")]


def sampling_policy(budget: float, precision: float, warmup: int, min_runs: int):
    """The timing loop's stopping rule from the command-line options."""
    from .measure.sampling import SamplingPolicy

    return SamplingPolicy(warmup_runs=warmup, min_runs=min_runs, budget_s=budget, target_rel_ci=precision)


def progress_reporter(label: str, budget: float):
    """A transient progress bar on stderr, driven by the timing loop's on_progress callback."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    @contextmanager
    def reporter():
        progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[runs]} runs"),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        task = progress.add_task(f"measuring {label}", total=budget, runs=0)

        def update(phase: str, runs: int, elapsed: float) -> None:
            progress.update(task, completed=min(elapsed, budget), runs=f"{runs} {phase}")

        with progress:
            yield update

    return reporter()


@app.command()
@friendly
def profile(
    model: ModelArg,
    device: DeviceOpt = "cpu",
    width: WidthOpt = None,
    groups: GroupsOpt = None,
    resolution: ResolutionOpt = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Batch size (default: the profile's).")] = None,
    threads: ThreadsOpt = None,
    host: HostOpt = None,
    input_shape: InputShapeOpt = None,
    budget: BudgetOpt = 10.0,
    precision: PrecisionOpt = 0.01,
    warmup: WarmupOpt = 10,
    min_runs: MinRunsOpt = 20,
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the JSON result to this file.")] = None,
    format: Annotated[ProfileFormat, typer.Option("--format", help="Output format.")] = ProfileFormat.table,
) -> None:
    """Count a model and measure its latency on a device: theoretical cost next to actual speed."""
    from .devices import resolve_device
    from .profiling import profile_data, profile_model
    from .report.files import write_json_atomic
    from .report.profile import profile_markdown, render_profile

    profile_ = resolve_device(device, host=host, threads=threads, batch=batch)
    ref = model_ref(model, width, groups, resolution, profile_.batch, input_shape)
    policy = sampling_policy(budget, precision, warmup, min_runs)
    with progress_reporter(ref.label, budget) as update:
        result = profile_model(ref, profile_, policy, on_progress=update)
    data = profile_data(result)
    if output is not None:
        write_json_atomic(output, data)
    if format is ProfileFormat.json:
        _echo_json(data)
    elif format is ProfileFormat.md:
        typer.echo(profile_markdown(data), nl=False)
    else:
        _stdout().print(render_profile(data))


def _figures(ref) -> list:
    """The papers' published figures for this exact variant (none for your own models)."""
    if ref.spec is None:
        return []
    from .zoo.papers import figures_for

    return figures_for(ref.spec)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
