"""The `shufflebench` command: a thin layer over library functions.

Each sub-command parses its options, calls one library function and hands the typed result to a renderer. Option
groups shared by several commands (model variant, device, sampling, output) are declared once (`cli_options`), with
defaults from the library's dataclasses. Errors the user can fix arrive as `ShufflebenchError` and leave as one line
on stderr with a non-zero exit code, never a traceback. Heavy imports (torch, onnxruntime) happen inside the
commands so ``--help`` is instant.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_options import Output, calibration, device, output, sampling, variant, with_options
from .cli_sweep import sweep_app
from .cli_ui import OneLineErrors, ProgressBar, emit, exit_if_interrupted, friendly, guard_outputs, stderr
from .measure.sampling import SamplingPolicy
from .latency.source import CalibrationSource
from .options import SAMPLING_PRESETS, DeviceOptions, VariantOptions

app = typer.Typer(
    cls=OneLineErrors,
    help="Hardware-aware latency and FLOPs profiler for efficient CNNs: theoretical cost next to measured speed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
baseline_app = typer.Typer(help="Baseline files of exact proxies (multiply-adds, params, MAC, kernels, findings) for "
                           "`regress --baseline`.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")
app.add_typer(sweep_app, name="sweep")

ModelArg = Annotated[str, typer.Argument(
    help="A zoo model (name or alias, options inline: shufflenet_v1:groups=3,width=0.5), an .onnx file, or "
         "package.module:callable returning an nn.Module.", show_default=False)]
ModelsArg = Annotated[Optional[list[str]], typer.Argument(
    help="Models as `profile` takes them: zoo names with inline options, .onnx files, package.module:callable.",
    show_default=False)]
ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", help="TOML file of guideline thresholds (default: [tool.shufflebench] in ./pyproject.toml).")]
ZooOpt = Annotated[bool, typer.Option("--zoo", help="Every registered model at its default variant (--resolution "
                                      "applies).")]
TopOpt = Annotated[Optional[int], typer.Option("--top", min=1, help="Show only the first N rows.")]
BreakdownOpt = Annotated[bool, typer.Option("--breakdown", help="Per-operator time by category (onnxruntime "
                                            "profiler), beside multiply-add and MAC shares.")]

VARIANT, DEVICE, CALIBRATION = variant(), device(), calibration()
SAMPLING = {command: sampling(preset) for command, preset in SAMPLING_PRESETS.items()}


class SortKey(str, Enum):
    order = "order"
    madd = "madd"
    mac = "mac"
    params = "params"


class ProxyMode(str, Enum):
    strict = "strict"
    report = "report"


@app.command("list")
@friendly
@with_options(output("table", "json", file=False))
def list_models(*, out: Output) -> None:
    """Every model in the zoo, with its variant options and the papers' reference numbers."""
    from .report.zoo import render_zoo, zoo_data

    data = zoo_data()
    emit(out, lambda: data, lambda: render_zoo(data))


@app.command()
@friendly
@with_options(VARIANT, output("table", "json", "csv", file=False))
def count(
    model: ModelArg,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="One row per executed operator.")] = False,
    sort: Annotated[SortKey, typer.Option("--sort", help="Order of the layer rows.")] = SortKey.order,
    top: TopOpt = None,
    *, variant: VariantOptions, out: Output,
) -> None:
    """Count multiply-adds, params and memory access cost of a model (no hardware needed)."""
    from .models import resolve_variant
    from .prepared import PreparedModel
    from .report.count import count_csv, count_data, render_count

    data = count_data(PreparedModel(resolve_variant(model, variant)), per_layer=per_layer)
    emit(out, lambda: data, lambda: render_count(data, sort=sort.value, top=top), csv=lambda: count_csv(data))


@app.command()
@friendly
@with_options(VARIANT, output("table", "json", file=False))
def check(
    model: ModelArg,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any finding is above its threshold.")] = False,
    config: ConfigOpt = None,
    show_all: Annotated[bool, typer.Option("--all", help="List every metric, not only those above threshold.")] = False,
    top: TopOpt = None,
    *, variant: VariantOptions, out: Output,
) -> None:
    """Lint a model against the ShuffleNet V2 guidelines G1-G4 (MAC-based, no hardware needed)."""
    from .check import check_model, load_thresholds
    from .models import resolve_variant
    from .prepared import PreparedModel
    from .report.check import render_check

    thresholds = load_thresholds(config)
    result = check_model(PreparedModel(resolve_variant(model, variant)), thresholds)
    emit(out, result.to_dict, lambda: render_check(result, show_all=show_all, top=top))
    if strict and result.above:
        raise typer.Exit(1)


@app.command()
@friendly
@with_options(output("table", "json", file=False))
def devices(*, out: Output) -> None:
    """The device profiles shipped in devices/ (reference-only ones hold the papers' hardware figures)."""
    from .devices import list_profiles
    from .report.devices import devices_data, render_devices

    profiles = list_profiles()
    emit(out, lambda: devices_data(profiles), lambda: render_devices(profiles))


@app.command()
@friendly
@with_options(output("table", "json", file=False))
def cache(
    clear: Annotated[bool, typer.Option("--clear", help="Remove every cached ONNX export.")] = False,
    *, out: Output,
) -> None:
    """The cache of ONNX exports: where it is, what it holds, its size limit ($SHUFFLEBENCH_CACHE_LIMIT)."""
    from . import cache as export_cache
    from .report.units import binary_bytes

    held = export_cache.clear() if clear else export_cache.info()
    verb = "removed" if clear else "holds"
    emit(out, held.to_dict, lambda: f"{held.folder} {verb} {held.files} exported model"
         f"{'s' if held.files != 1 else ''}, {binary_bytes(held.bytes)} (limit {binary_bytes(held.limit)}; least "
         "recently used exports go first)")


@app.command()
@friendly
@with_options(VARIANT, DEVICE, SAMPLING["profile"], CALIBRATION, output("table", "json", "md"))
def profile(
    model: ModelArg,
    breakdown: BreakdownOpt = False,
    *, variant: VariantOptions, device_options: DeviceOptions, sampling: SamplingPolicy,
    calibration: CalibrationSource, out: Output,
) -> None:
    """Count a model and measure its latency on a device: theoretical cost next to actual speed."""
    from .devices import resolve_device_options
    from .models import resolve_variant
    from .prepared import PreparedModel
    from .profile import profile_model
    from .report.profile import profile_markdown, render_profile

    device = resolve_device_options(device_options, batch=variant.batch)
    prepared = PreparedModel(resolve_variant(model, variant, default_batch=device.batch))
    guard_outputs({"--output": out.path}, [model, device_options.device, calibration.path])
    with ProgressBar(prepared.label, sampling.budget_s) as bar:
        result = profile_model(prepared, device, sampling, on_progress=bar.update, breakdown=breakdown,
                               calibration=calibration)
    emit(out, result.to_dict, lambda: render_profile(result), markdown=lambda: profile_markdown(result))
    exit_if_interrupted(result.interrupted)


@app.command()
@friendly
@with_options(VARIANT, DEVICE, SAMPLING["compare"], CALIBRATION, output("table", "json", "md"))
def compare(
    models: Annotated[list[str], typer.Argument(help="Models to compare (inline options: shufflenet_v1:width=0.5).",
                                                show_default=False)],
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="The model speedups are measured against "
                                                    "(default: the first).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write plots to this .png or .svg file.")] = None,
    breakdown: BreakdownOpt = False,
    *, variant: VariantOptions, device_options: DeviceOptions, sampling: SamplingPolicy,
    calibration: CalibrationSource, out: Output,
) -> None:
    """Theoretical speedup (multiply-add ratio) against actual speedup (latency ratio), models measured interleaved."""
    from .compare import compare_models, with_baseline
    from .devices import resolve_device_options
    from .models import resolve_models
    from .prepared import prepare
    from .report.compare import check_plot_path, compare_markdown, plot_compare, render_compare

    device = resolve_device_options(device_options, batch=variant.batch)
    refs = resolve_models(models, variant, default_batch=device.batch)
    base = resolve_models([baseline], variant, default_batch=device.batch)[0] if baseline is not None else None
    refs, base_index = with_baseline(refs, base)
    if plot is not None:
        check_plot_path(plot)
    guard_outputs({"--output": out.path, "--plot": plot},
                  [*models, baseline, device_options.device, calibration.path])
    with ProgressBar(f"{len(refs)} models interleaved", sampling.budget_s * len(refs)) as bar:
        result = compare_models(prepare(refs), device, sampling, baseline=base_index, on_progress=bar.update,
                                breakdown=breakdown, calibration=calibration)
    emit(out, result.to_dict, lambda: render_compare(result), markdown=lambda: compare_markdown(result))
    if plot is not None:
        plot_compare(result, plot)
    exit_if_interrupted(result.interrupted)


@app.command()
@friendly
@with_options(DEVICE, SAMPLING["guidelines"], output("table", "json", "md"))
def guidelines(
    only: Annotated[Optional[str], typer.Option("--only", help="Experiments to run, e.g. g1,g3 (default: all).")] = None,
    widths: Annotated[Optional[str], typer.Option("--widths", help="Channel widths, from 1,2,4 (default: all).")] = None,
    *, device_options: DeviceOptions, sampling: SamplingPolicy, out: Output,
) -> None:
    """Run the ShuffleNet V2 guideline experiments (G1-G4) on a device, beside the paper's numbers, with verdicts."""
    from .devices import resolve_device_options
    from .guidelines import parse_only, parse_widths, run_experiments
    from .report.guidelines import guidelines_markdown, render_guidelines

    chosen, scales = parse_only(only), parse_widths(widths)
    device = resolve_device_options(device_options)
    guard_outputs({"--output": out.path}, [device_options.device])
    status = stderr()
    result = run_experiments(device, sampling, only=chosen, widths=scales,
                             on_group=lambda name, scale: status.print(f"measuring {name} x{scale}", style="dim"))
    emit(out, result.to_dict, lambda: render_guidelines(result), markdown=lambda: guidelines_markdown(result))
    exit_if_interrupted(result.interrupted)


@baseline_app.command("save")
@friendly
@with_options(VARIANT, DEVICE, SAMPLING["baseline"])
def baseline_save(
    models: ModelsArg = None,
    zoo: ZooOpt = False,
    config: ConfigOpt = None,
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="Also measure and store latency (used by "
                                          "`regress --baseline` only on a machine with the same fingerprint).")] = False,
    *,
    output_file: Annotated[Path, typer.Option("--output", help="The baseline file to write (JSON, atomically).")],
    variant: VariantOptions, device_options: DeviceOptions, sampling: SamplingPolicy,
) -> None:
    """Store the exact proxies of models (and optionally their latency) with the environment, for CI."""
    from .check import load_thresholds
    from .devices import resolve_device_options
    from .models import resolve_models
    from .prepared import prepare
    from .regress.baseline import save_models_baseline

    thresholds = load_thresholds(config)
    device = resolve_device_options(device_options)
    refs = resolve_models(models or [], variant, zoo=zoo)
    guard_outputs({"--output": output_file}, [*(models or []), config, device_options.device])
    with ProgressBar("baseline", sampling.budget_s * len(refs)) as bar:
        data = save_models_baseline(prepare(refs), output_file, thresholds=thresholds, device=device,
                                    policy=sampling if latency else None, status=bar.status, on_progress=bar.update)
    what = "exact proxies and latency" if latency else "exact proxies"
    typer.echo(f"saved {what} of {len(refs)} model{'s' if len(refs) != 1 else ''} to {output_file} "
               f"(fingerprint {data['fingerprint']})")


@app.command()
@friendly
@with_options(VARIANT, DEVICE, SAMPLING["regress"], output("table", "json"))
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
    threshold: Annotated[Optional[str], typer.Option("--threshold", help="Slowdown tolerated: exit 1 only when the "
                                                     "latency ratio's whole CI lies above 1 + this (5% or 0.05); on "
                                                     "a counted device when the count grows by more. Default: 5%, "
                                                     "0.5% on a counted device.", show_default=False)] = None,
    min_effect: Annotated[Optional[str], typer.Option(
        "--min-effect", help="Smallest latency change called slower or faster at all. Default: 2%, or the "
                             "threshold when that is lower.",
        show_default=False)] = None,
    proxies: Annotated[Optional[ProxyMode], typer.Option("--proxies", help="strict: any exact proxy change exits 1; "
                                                         "report: list changes only. Default: strict with --baseline, "
                                                         "report otherwise.", show_default=False)] = None,
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="Measure and judge latency.")] = True,
    config: ConfigOpt = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Write a summary for a pull-request comment "
                                                     "to this file.")] = None,
    *, variant: VariantOptions, device_options: DeviceOptions, sampling: SamplingPolicy, out: Output,
) -> None:
    """Did a change make a model slower? Exit 0: no regression; 1: regression beyond the threshold; 2: usage error.

    Latency is judged on this machine in this run (candidate and baseline interleaved), exact proxies exactly.
    """
    from .check import load_thresholds
    from .devices import resolve_device_options
    from .files import write_text_atomic
    from .regress.decide import parse_fraction
    from .regress.request import RegressRequest, run_regress
    from .report.regress import regress_markdown, render_regress

    request = RegressRequest(tuple(candidates or ()), against, against_rev, baseline, zoo, variant,
                             None if threshold is None else parse_fraction(threshold, "--threshold"),
                             None if min_effect is None else parse_fraction(min_effect, "--min-effect"),
                             proxies.value if proxies else None, latency)
    device = resolve_device_options(device_options, batch=variant.batch)
    guard_outputs({"--output": out.path, "--markdown": markdown},
                  [*(candidates or []), against, baseline, config, device_options.device])
    with ProgressBar("candidate and baseline", sampling.budget_s * 2) as bar:
        result = run_regress(request, device, sampling, load_thresholds(config), status=bar.status,
                             on_progress=bar.update)
    emit(out, result.to_dict, lambda: render_regress(result))
    if markdown is not None:
        write_text_atomic(markdown, regress_markdown(result))
    exit_if_interrupted(result.interrupted)
    if result.outcome.exit_code:
        raise typer.Exit(result.outcome.exit_code)


@app.command("calibrate")
@friendly
@with_options(DEVICE, SAMPLING["calibrate"], output("table", "json"))
def calibrate_device(
    quick: Annotated[bool, typer.Option("--quick", help="About 80 graphs instead of 440 (emulated devices, trials); "
                                        "less accurate.")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start again instead of resuming a partial calibration.")
                     ] = False,
    networks: Annotated[Optional[list[str]], typer.Option(
        "--network", help="A whole network of your own to calibrate with as well (a zoo name with options, or an "
                          "ONNX file); repeat it for several. A family unlike ShuffleNet and MobileNet is predicted "
                          "much better with about eight of its networks in the calibration.")] = None,
    *, device_options: DeviceOptions, sampling: SamplingPolicy, out: Output,
) -> None:
    """Measure a device's kernels once (9-11 minutes on cpu), so `predict` can predict any model on it: stored
    by device and environment (--output writes a copy), resumed where it stopped when interrupted."""
    from .devices import resolve_device_options
    from .latency.calibrate import calibrate, check_networks
    from .latency.design import DESIGNS, with_networks
    from .report.predict import render_calibration

    guard_outputs({"--output": out.path}, [device_options.device])
    device = resolve_device_options(device_options)
    check_networks(networks or ())
    design = with_networks(DESIGNS["quick" if quick else "full"](), networks or ())
    with ProgressBar(f"calibrating {device.name}", sampling.budget_s * len(design.cases)) as bar:
        result = calibrate(device, design, sampling, on_progress=bar.update, status=bar.status, resume=not fresh)
    emit(out, result.to_dict, lambda: render_calibration(result, result.path))


@app.command()
@friendly
@with_options(VARIANT, DEVICE, CALIBRATION, output("table", "json"))
def predict(
    model: ModelArg,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Draw the device's roofline with every kernel of the "
                                                 "model on it (.png or .svg).")] = None,
    top: TopOpt = None,
    *, variant: VariantOptions, device_options: DeviceOptions, calibration: CalibrationSource, out: Output,
) -> None:
    """Predict a model's latency on a calibrated device (nothing is measured), kernel by kernel, with the gap to
    its multiply-adds explained by cause (G1-G4)."""
    from .devices import resolve_device_options
    from .latency.predictor import predict_model
    from .models import resolve_variant
    from .prepared import PreparedModel
    from .report.compare import check_plot_path
    from .report.predict import plot_roofline, render_prediction

    guard_outputs({"--output": out.path, "--plot": plot}, [model, device_options.device, calibration.path])
    chosen = calibration.require(resolve_device_options(device_options))
    if plot is not None:
        check_plot_path(plot)
    prepared = PreparedModel(resolve_variant(model, variant, default_batch=chosen.device.batch))
    result = predict_model(prepared, chosen)
    emit(out, result.to_dict, lambda: render_prediction(result, top=top))
    if plot is not None:
        plot_roofline(result, plot)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
