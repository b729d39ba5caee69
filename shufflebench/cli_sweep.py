"""The ``shufflebench sweep`` commands: run a sweep (the default sub-command), report a store, print a node's Ray
resources. Thin like the rest of the command line; Ray is imported only when a sweep has work to do."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from .cli_options import Output, output, sampling, with_options
from .cli_ui import emit, friendly, guard_outputs
from .measure.sampling import SamplingPolicy
from .options import SAMPLING_PRESETS
from .sweep.plan import Mode


class _RunByDefault(TyperGroup):
    """``sweep SPACE ...`` is ``sweep run SPACE ...``: a first argument that names no sub-command starts a run."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


sweep_app = typer.Typer(
    cls=_RunByDefault, no_args_is_help=True,
    help="Count and measure a search space of architectures on several devices, on a Ray cluster, into one SQLite "
         "store (`sweep SPACE ...` runs a sweep; `sweep report` shows a store). Needs shufflebench\\[scale].")

StoreOpt = Annotated[Path, typer.Option("--store", help="The SQLite results store (created when missing).")]
DEFAULT_STORE = Path("sweep.sqlite")


class SweepProgress:
    """One transient bar per stage on stderr (counting, then each device): done/total, rate, time left, failures;
    shown from the first update on."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[eta]}"),
                                  TextColumn("{task.fields[note]}", style="red"),
                                  console=console or Console(stderr=True), transient=True)
        self._tasks: dict[str, Any] = {}
        self._started = False

    def update(self, stages: list[Any], now: float) -> None:
        """The engine's on_update: redraw every stage that has work."""
        from .report.sweep import hms

        if not self._started:
            self._progress.start()
            self._started = True
        for stage in stages:
            if stage.total == 0:
                continue
            if stage.name not in self._tasks:
                label = "counting" if stage.name == "count" else stage.name
                self._tasks[stage.name] = self._progress.add_task(label, total=stage.total, rate="", eta="", note="")
            rate, eta = stage.rate_per_min(now), stage.eta_s(now)
            note = ", ".join(part for part in (f"{stage.failed} failed" if stage.failed else "",
                                               f"{stage.retried} retried" if stage.retried else "",
                                               stage.stopped and "given up" or "") if part)
            self._progress.update(self._tasks[stage.name], completed=stage.done + stage.failed,
                                  rate=f"{rate:.1f}/min" if rate else "waiting" if stage.started_at is None else "",
                                  eta=f"{hms(eta)} left" if eta else "", note=note)

    def table(self) -> Any:
        """The bars as they stand (a renderable)."""
        return self._progress.make_tasks_table(self._progress.tasks)

    def __enter__(self) -> "SweepProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._started:
            self._progress.stop()


@sweep_app.command("run")
@friendly
@with_options(sampling(SAMPLING_PRESETS["sweep"]), output("table", "json"))
def run(
    spaces: Annotated[list[str], typer.Argument(
        metavar="SPACE", show_default=False,
        help="Search spaces: a zoo grid (shufflenet_v1:groups=1|2|3|4|8,width=0.5|1.0|2.0), package.module:space "
             "returning {name: (builder, input_shape)}, or a folder of .onnx files.")],
    device: Annotated[Optional[list[str]], typer.Option(
        "--device", help="A device to measure on, or predict for (repeat for several): profile name or .toml; "
                         "default cpu.",
        show_default=False)] = None,
    mode: Annotated[Mode, typer.Option(
        "--mode", help="count: counts only; measure: counts and latency; predict: counts and latency predicted "
                       "from each device's calibration (shufflebench calibrate), nothing measured.")] = Mode.MEASURE,
    store: StoreOpt = DEFAULT_STORE,
    ray_address: Annotated[str, typer.Option(
        "--ray", help="local: start Ray in this process; auto or HOST:PORT: join a running cluster whose nodes "
                      "declare the devices (`sweep resources`).")] = "local",
    retries: Annotated[int, typer.Option("--retries", min=0, help="Attempts after the first, per architecture and "
                                         "device, before it is recorded as failed.")] = 2,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch size of zoo grids and .onnx files.")] = 1,
    sample: Annotated[Optional[int], typer.Option("--sample", min=1, help="Measure only N architectures drawn at "
                                                  "random from the space (the same N for the same --seed).",
                                                  show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --sample.")] = 0,
    *, sampling: SamplingPolicy, out: Output,
) -> None:
    """Count every architecture of SPACE, then measure it on each device (or predict it: --mode predict); a rerun
    does only what is missing. Exit 0: all done; 1: something failed (recorded in the store with its reason); 130:
    interrupted (what finished is kept); 2: usage or setup error."""
    from .devices import resolve_device
    from .report.sweep import render_summary
    from .sweep.engine import run_sweep
    from .sweep.plan import calibrations_for, check_devices, check_mode, plan_sweep
    from .sweep.resources import check_address
    from .sweep.space import parse_space
    from .sweep.space import sample as draw
    from .sweep.store import Store

    chosen = check_mode(mode, device)
    check_address(ray_address)
    guard_outputs({"--output": out.path}, [store, *spaces])
    devices = [resolve_device(name) for name in (device or (["cpu"] if chosen is not Mode.COUNT else []))]
    check_devices(chosen, devices)
    calibrations = calibrations_for(chosen, devices)  # a device without one is refused before the store is made
    architectures = draw(parse_space(spaces, batch=batch), sample, seed)
    with Store(store) as db:
        plan = plan_sweep(db, architectures, devices, chosen, calibrations)
        with SweepProgress() as bar:
            summary = run_sweep(plan, db, sampling, address=ray_address, retries=retries, on_update=bar.update)
    emit(out, summary.to_dict, lambda: render_summary(summary))
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


@sweep_app.command("report")
@friendly
@with_options(output("table", "json", "csv", file=False))
def report(
    store: StoreOpt = DEFAULT_STORE,
    device: Annotated[Optional[list[str]], typer.Option("--device", help="Only this device (repeat for several).",
                                                        show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write latency against multiply-adds to this .png "
                                                 "or .svg file.")] = None,
    top: Annotated[Optional[int], typer.Option("--top", min=1, help="Show only the fastest N rows per device.")
                   ] = None,
    *, out: Output,
) -> None:
    """The rows of a store (one per architecture and device) and each device's Pareto front of latency against
    multiply-adds."""
    from .report.sweep import plot_report, render_report, report_csv
    from .sweep.results import read_report
    from .sweep.store import Store

    if plot is not None:
        from .report.compare import check_plot_path

        check_plot_path(plot)
    with Store(store, create=False) as db:
        data = read_report(db, device or ())
    emit(out, data.to_dict, lambda: render_report(data, top=top), csv=lambda: report_csv(data))
    if plot is not None:
        plot_report(data, plot)


@sweep_app.command("resources")
@friendly
def resources(
    devices: Annotated[Optional[list[str]], typer.Argument(
        metavar="[DEVICE]...", show_default=False, help="The devices this node reaches (profile names or .toml).")
                       ] = None,
) -> None:
    """The Ray resources a node declares for the devices it reaches: ray start --resources "$(shufflebench sweep
    resources cpu arm-emulated)"."""
    from .devices import resolve_device
    from .sweep.resources import resources_json

    typer.echo(resources_json(resolve_device(name) for name in devices or ()))
