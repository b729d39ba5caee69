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

from .errors import ShufflebenchError, UsageError

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
ListFormatOpt = Annotated[ListFormat, typer.Option("--format", help="Output format.")]
ProfileFormatOpt = Annotated[ProfileFormat, typer.Option("--format", help="Output format.")]


def model_ref(model: str, width, groups, resolution, batch: int, input_shape: Optional[str]):
    """Resolve the common model options of every command into a `ModelRef`."""
    from .models import parse_shape, resolve_model

    shape = parse_shape(input_shape) if input_shape is not None else None
    overrides = {"width": width, "groups": groups, "resolution": resolution}
    return resolve_model(model, overrides=overrides, batch=batch, input_shape=shape)


@app.command("list")
@friendly
def list_models(
    format: ListFormatOpt = ListFormat.table,
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
    format: ListFormatOpt = ListFormat.table,
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
    format: ListFormatOpt = ListFormat.table,
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


BREAKDOWN_RUNS = 50  # profiled runs for --breakdown (after the timed runs, in a session of their own)

BudgetOpt = Annotated[float, typer.Option("--budget", min=0.01, help="Seconds of timing per model (warm-up included).")]
PrecisionOpt = Annotated[
    float, typer.Option("--precision", min=0.0001, max=1.0, help="Stop when the 95% CI of the median is within "
                        "this fraction of it.")
]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, help="Warm-up runs, timed but kept apart.")]
MinRunsOpt = Annotated[int, typer.Option("--min-runs", min=1, help="Timed runs always taken.")]
MinTimeOpt = Annotated[float, typer.Option("--min-time", min=0.0, help="Seconds of timed runs before the precision "
                                           "target may end sampling, so slow and fast spells of the machine are both "
                                           "seen (the budget still ends it first).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="A device profile name (see `devices`) or a .toml file.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="Intra-op threads (default: the profile's).")]
HostOpt = Annotated[Optional[str], typer.Option("--host", help="SSH destination of an ARM board (user@host).")]


def sampling_policy(budget: float, precision: float, warmup: int, min_runs: int, min_time: float):
    """The timing loop's stopping rule from the command-line options."""
    from .measure.sampling import SamplingPolicy

    return SamplingPolicy(warmup_runs=warmup, min_runs=min_runs, budget_s=budget, target_rel_ci=precision,
                          min_time_s=min_time)


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
    min_time: MinTimeOpt = 2.0,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="Per-operator time by category (onnxruntime "
                                            "profiler), beside FLOPs and MAC shares.")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the JSON result to this file.")] = None,
    format: ProfileFormatOpt = ProfileFormat.table,
) -> None:
    """Count a model and measure its latency on a device: theoretical cost next to actual speed."""
    from .devices import resolve_device
    from .profiling import profile_data, profile_model
    from .report.files import write_json_atomic
    from .report.profile import profile_markdown, render_profile

    profile_ = resolve_device(device, host=host, threads=threads, batch=batch)
    ref = model_ref(model, width, groups, resolution, profile_.batch, input_shape)
    policy = sampling_policy(budget, precision, warmup, min_runs, min_time)
    if breakdown and profile_.backend != "onnxruntime":
        raise UsageError(f"--breakdown uses onnxruntime's profiler; device {profile_.name} runs {profile_.backend}")
    with progress_reporter(ref.label, budget) as update:
        result = profile_model(ref, profile_, policy, on_progress=update, profile_runs=BREAKDOWN_RUNS if breakdown else 0)
    data = profile_data(result)
    if breakdown:
        from .breakdown import breakdown_for

        data["breakdown"] = breakdown_for(result)
    if output is not None:
        write_json_atomic(output, data)
    if format is ProfileFormat.json:
        _echo_json(data)
    elif format is ProfileFormat.md:
        text = profile_markdown(data)
        if breakdown:
            from .report.breakdown import breakdown_markdown

            text += "\n" + breakdown_markdown(data["breakdown"], "Operator breakdown")
        typer.echo(text, nl=False)
    else:
        _stdout().print(render_profile(data))
        if breakdown:
            from .report.breakdown import render_breakdown

            _stdout().print(render_breakdown(data["breakdown"], "Operator breakdown"))


# --- regress: the CI latency gate, and the baseline files of exact proxies it compares with ---------------------------


class ProxyMode(str, Enum):
    strict = "strict"
    report = "report"


baseline_app = typer.Typer(help="Baseline files of exact proxies (FLOPs, params, MAC, kernels, findings) for "
                           "`regress --baseline`.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")

ModelsArg = Annotated[
    Optional[list[str]],
    typer.Argument(help="Models as `profile` takes them: zoo names with inline options, .onnx files, "
                   "package.module:callable.", show_default=False),
]
ZooOpt = Annotated[bool, typer.Option("--zoo", help="Every registered model at its default variant (--resolution "
                                      "applies).")]
ConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", help="TOML file of guideline thresholds (default: [tool.shufflebench] "
                                 "in ./pyproject.toml).")
]


def _model_refs(models: Optional[list[str]], zoo: bool, resolution, batch: int, input_shape: Optional[str]) -> list:
    """The models named on the command line, then (with --zoo) every registered model. ``resolution`` applies to
    the zoo models among them and ``input_shape`` to the others; an option that no model takes is refused."""
    from .errors import UsageError
    from .zoo.registry import entries, is_registered

    names = list(models or []) + ([entry.name for entry in entries()] if zoo else [])
    if not names:
        raise UsageError("no model given: name one or more models, or use --zoo")
    in_zoo = [is_registered(name.partition(":")[0].strip()) for name in names]
    if resolution is not None and not any(in_zoo):
        raise UsageError("--resolution applies to zoo models, and none is given; use --input-shape")
    if input_shape is not None and all(in_zoo):
        raise UsageError("--input-shape is for your own models, and only zoo models are given; use --resolution")
    return [model_ref(name, None, None, resolution, batch, None) if zoo_model
            else model_ref(name, None, None, None, batch, input_shape) for name, zoo_model in zip(names, in_zoo)]


@baseline_app.command("save")
@friendly
def baseline_save(
    models: ModelsArg = None,
    output: Annotated[Path, typer.Option("--output", help="The baseline file to write (JSON, atomically).")] = ...,
    zoo: ZooOpt = False,
    resolution: ResolutionOpt = None,
    batch: BatchOpt = 1,
    input_shape: InputShapeOpt = None,
    config: ConfigOpt = None,
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="Also measure and store latency (used by "
                                          "`regress --baseline` only on a machine with the same fingerprint).")] = False,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    budget: BudgetOpt = 10.0,
    precision: PrecisionOpt = 0.01,
    warmup: WarmupOpt = 10,
    min_runs: MinRunsOpt = 20,
    min_time: MinTimeOpt = 2.0,
) -> None:
    """Store the exact proxies of models (and optionally their latency) with the environment, for CI."""
    from .devices import resolve_device
    from .guidelines import load_thresholds
    from .measure.environment import capture
    from .profiling import profile_model
    from .regress.proxies import baseline_data, model_proxies, save_baseline

    thresholds = load_thresholds(config)
    profile_ = resolve_device(device, threads=threads)
    refs = _model_refs(models, zoo, resolution, batch, input_shape)
    records = [model_proxies(ref, thresholds) for ref in refs]
    measured = {}
    environment = None
    if latency:
        policy = sampling_policy(budget, precision, warmup, min_runs, min_time)
        for ref in refs:
            with progress_reporter(ref.label, budget) as update:
                result = profile_model(ref, profile_, policy, on_progress=update)
            measured[ref.label] = result.run.measurement.to_dict()
            environment = result.run.environment
    if environment is None:
        environment = capture(threads=profile_.threads, provider=profile_.provider,
                              optimization_level=profile_.optimization_level)
    data = baseline_data(records, thresholds=thresholds, environment=environment,
                         device=profile_ if latency else None, latency=measured or None)
    save_baseline(output, data)
    what = "exact proxies and latency" if latency else "exact proxies"
    typer.echo(f"saved {what} of {len(records)} model{'s' if len(records) != 1 else ''} to {output} "
               f"(fingerprint {data['fingerprint']})")


@app.command()
@friendly
def regress(
    candidates: ModelsArg = None,
    against: Annotated[Optional[str], typer.Option("--against", help="The baseline model, measured interleaved "
                                                   "with the candidate in this run.")] = None,
    against_rev: Annotated[Optional[str], typer.Option("--against-rev", help="A git revision of your repository: "
                                                       "the candidate's module:callable (or --against's) as it was "
                                                       "there.")] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="A baseline file (`baseline save`): exact "
                                                     "proxies compared with ==; with no CANDIDATE, every model in it.")
                        ] = None,
    zoo: ZooOpt = False,
    threshold: Annotated[str, typer.Option("--threshold", help="Slowdown tolerated: exit 1 only when the latency "
                                           "ratio's whole CI lies above 1 + this (5% or 0.05).")] = "5%",
    min_effect: Annotated[str, typer.Option("--min-effect", help="Smallest change called slower or faster at all.")
                          ] = "2%",
    proxies: Annotated[Optional[ProxyMode], typer.Option("--proxies", help="strict: any exact proxy change exits 1; "
                                                         "report: list changes only. Default: strict with --baseline, "
                                                         "report otherwise.", show_default=False)] = None,
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="Measure and judge latency.")] = True,
    device: DeviceOpt = "cpu",
    resolution: ResolutionOpt = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Batch size (default: the profile's).")] = None,
    threads: ThreadsOpt = None,
    host: HostOpt = None,
    input_shape: InputShapeOpt = None,
    budget: Annotated[float, typer.Option("--budget", min=0.01, help="Seconds of timing for candidate and baseline "
                                          "together, warm-up included.")] = 10.0,
    precision: PrecisionOpt = 0.005,
    warmup: WarmupOpt = 10,
    min_runs: Annotated[int, typer.Option("--min-runs", min=1, help="Rounds (one run of each model) always taken.")
                        ] = 50,
    min_time: MinTimeOpt = 2.0,
    config: ConfigOpt = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Write a summary for a pull-request comment "
                                                     "to this file.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the JSON result to this file.")] = None,
    format: ListFormatOpt = ListFormat.table,
) -> None:
    """Did a change make a model slower? Exit 0: no regression; 1: regression beyond the threshold; 2: usage error.

    Latency is judged on this machine in this run (candidate and baseline interleaved), exact proxies exactly.
    """
    from contextlib import ExitStack, nullcontext

    from .devices import resolve_device
    from .guidelines import load_thresholds
    from .regress.decide import parse_fraction
    from .regress.gate import GateSettings, ref_from_record, regress as run_regress
    from .regress.proxies import load_baseline
    from .report.files import write_json_atomic, write_text_atomic
    from .report.regress import regress_markdown, render_regress

    settings_threshold = parse_fraction(threshold, "--threshold")
    settings_min_effect = parse_fraction(min_effect, "--min-effect")
    if against is None and against_rev is None and baseline is None:
        raise UsageError("nothing to compare against: give --against MODEL, --against-rev REV or --baseline FILE")
    profile_ = resolve_device(device, host=host, threads=threads, batch=batch)
    thresholds = load_thresholds(config)
    stored = load_baseline(baseline) if baseline is not None else None
    complete = zoo or not candidates
    if candidates or zoo:
        refs = _model_refs(candidates, zoo, resolution, profile_.batch, input_shape)
    elif stored is not None:
        refs = [ref_from_record(record) for record in stored["models"]]
    else:
        raise UsageError("no candidate model given")
    settings = GateSettings(threshold=settings_threshold, min_effect=settings_min_effect,
                            proxies=(proxies.value if proxies else ("strict" if stored is not None else "report")),
                            latency=latency and (against is not None or against_rev is not None or stored is not None))
    policy = sampling_policy(budget, precision, warmup, min_runs, min_time)
    with ExitStack() as stack:
        against_ref = None
        if against_rev is not None:
            from .regress.gitrev import revision_ref, revision_worktree

            from .models import parse_shape
            from .zoo.registry import is_registered

            target = against or (candidates[0] if candidates and len(candidates) == 1 else None)
            if (target is None or ":" not in target or target.lower().endswith(".onnx")
                    or is_registered(target.partition(":")[0].strip())):
                raise UsageError("--against-rev takes one package.module:callable of your repository (the candidate, "
                                 "or --against) from that revision")
            shape = parse_shape(input_shape) if input_shape is not None else refs[0].input_shape
            worktree = stack.enter_context(revision_worktree(against_rev))
            against_ref = revision_ref(target, shape, worktree)
        elif against is not None:
            against_ref = _model_refs([against, *(candidates or [])], False, resolution, profile_.batch,
                                      input_shape)[0]
        measuring = settings.latency and against_ref is not None
        label = f"{refs[0].label} vs {against_ref.label}" if against_ref is not None else refs[0].label
        reporter = progress_reporter(label, budget) if measuring else nullcontext(None)
        with reporter as update:
            data = run_regress(refs, device=profile_, policy=policy, settings=settings, against=against_ref,
                               baseline=stored, baseline_path=str(baseline) if baseline else None, complete=complete,
                               thresholds=thresholds, on_progress=update)
    if output is not None:
        write_json_atomic(output, data)
    if markdown is not None:
        write_text_atomic(markdown, regress_markdown(data))
    if format is ListFormat.json:
        _echo_json(data)
    else:
        _stdout().print(render_regress(data))
    if data["outcome"]["exit_code"]:
        raise typer.Exit(data["outcome"]["exit_code"])


@app.command()
@friendly
def compare(
    models: Annotated[list[str], typer.Argument(help="Models to compare (inline options: shufflenet_v1:width=0.5).",
                                                 show_default=False)],
    device: DeviceOpt = "cpu",
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="The model speedups are measured against "
                                                    "(default: the first).")] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Batch size (default: the profile's).")] = None,
    threads: ThreadsOpt = None,
    host: HostOpt = None,
    budget: Annotated[float, typer.Option("--budget", min=0.01, help="Seconds of timing per model.")] = 10.0,
    precision: PrecisionOpt = 0.01,
    warmup: WarmupOpt = 10,
    min_runs: MinRunsOpt = 20,
    min_time: MinTimeOpt = 2.0,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write plots to this .png or .svg file.")] = None,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="Each model's per-operator time by category.")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the JSON result to this file.")] = None,
    format: ProfileFormatOpt = ProfileFormat.table,
) -> None:
    """Theoretical speedup (FLOPs ratio) against actual speedup (latency ratio), models measured interleaved."""
    from .compare import compare_models
    from .devices import resolve_device
    from .models import resolve_model
    from .report.compare import compare_markdown, plot_compare, render_compare
    from .report.files import write_json_atomic

    profile_ = resolve_device(device, host=host, threads=threads, batch=batch)
    refs = [resolve_model(m, batch=profile_.batch) for m in models]
    base_index = 0
    if baseline is not None:
        base_ref = resolve_model(baseline, batch=profile_.batch)
        labels = [r.label for r in refs]
        if base_ref.label in labels:
            base_index = labels.index(base_ref.label)
        else:
            refs.append(base_ref)
            base_index = len(refs) - 1
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {str(plot)!r}: the file must end in .png or .svg")
    policy = sampling_policy(budget * len(refs), precision, warmup, min_runs, min_time)
    if breakdown and profile_.backend != "onnxruntime":
        raise UsageError(f"--breakdown uses onnxruntime's profiler; device {profile_.name} runs {profile_.backend}")
    with progress_reporter(f"{len(refs)} models interleaved", policy.budget_s) as update:
        data = compare_models(refs, profile_, policy, baseline=base_index, on_progress=update,
                              profile_runs=BREAKDOWN_RUNS if breakdown else 0)
    if output is not None:
        write_json_atomic(output, data)
    if plot is not None:
        plot_compare(data, plot)
    from .report.breakdown import breakdown_markdown, render_breakdown

    with_breakdown = [m for m in data["models"] if "breakdown" in m]
    if format is ProfileFormat.json:
        _echo_json(data)
    elif format is ProfileFormat.md:
        text = compare_markdown(data)
        for m in with_breakdown:
            text += "\n" + breakdown_markdown(m["breakdown"], f"Operator breakdown: {m['short_label']}")
        typer.echo(text, nl=False)
    else:
        _stdout().print(render_compare(data))
        for m in with_breakdown:
            _stdout().print(render_breakdown(m["breakdown"], f"Operator breakdown: {m['short_label']}"))


@app.command()
@friendly
def guidelines(
    device: DeviceOpt = "cpu",
    only: Annotated[Optional[str], typer.Option("--only", help="Experiments to run, e.g. g1,g3 (default: all).")] = None,
    widths: Annotated[Optional[str], typer.Option("--widths", help="Channel widths, from 1,2,4 (default: all).")] = None,
    threads: ThreadsOpt = None,
    host: HostOpt = None,
    budget: Annotated[float, typer.Option("--budget", min=0.01, help="Seconds of timing per variant.")] = 3.0,
    precision: PrecisionOpt = 0.01,
    warmup: WarmupOpt = 5,
    min_runs: MinRunsOpt = 20,
    min_time: MinTimeOpt = 2.0,
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the JSON result to this file.")] = None,
    format: ProfileFormatOpt = ProfileFormat.table,
) -> None:
    """Run the ShuffleNet V2 guideline experiments (G1-G4) on a device, beside the paper's numbers, with verdicts."""
    from .devices import resolve_device
    from .guideline_experiments import parse_only, parse_widths, run_experiments
    from .report.files import write_json_atomic
    from .report.guidelines import guidelines_markdown, render_guidelines

    chosen, scales = parse_only(only), parse_widths(widths)
    profile_ = resolve_device(device, host=host, threads=threads)
    policy = sampling_policy(budget, precision, warmup, min_runs, min_time)
    status = Console(stderr=True)
    data = run_experiments(profile_, policy, only=chosen, widths=scales,
                           on_group=lambda name, scale: status.print(f"measuring {name} x{scale}", style="dim"))
    if output is not None:
        write_json_atomic(output, data)
    if format is ProfileFormat.json:
        _echo_json(data)
    elif format is ProfileFormat.md:
        typer.echo(guidelines_markdown(data))
    else:
        _stdout().print(render_guidelines(data))


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
