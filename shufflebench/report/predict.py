"""The `predict` and `calibrate` results as tables, and the device's roofline with a model's kernels on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..latency.calibration import CONTEXT_SIZE_US, Calibration
from ..latency.fit import KindModel
from ..latency.predictor import CAUSES, KernelPrediction, Prediction
from .banner import EMULATED, emulated_text
from .compare import check_plot_path, pyplot, save_figure
from .units import binary_bytes, si

TOP_KERNELS = 15
BOUND_COLORS = {"compute": "tab:blue", "memory": "tab:red", "overhead": "tab:gray"}


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def _warnings(warnings: tuple[str, ...]) -> list[Text]:
    return [Text(f"warning: {warning}", style="yellow") for warning in warnings]


def render_prediction(prediction: Prediction, *, top: int | None = None) -> Group:
    """The predicted latency, the gap to multiply-adds by cause, and the slowest kernels with their bounds."""
    parts: list[Any] = [Text(f"{prediction.model} on {prediction.device} (predicted)", style="bold")]
    if prediction.emulated:
        parts.append(emulated_text())
    parts += _warnings(prediction.warnings)
    low, high = prediction.interval_ms
    summary = Table(show_header=False, box=None)
    summary.add_column(no_wrap=True)
    summary.add_column(justify="right", no_wrap=True)
    summary.add_row("predicted latency", f"{_ms(prediction.predicted_ms)} (95% interval {low:.3f}-{high:.3f})")
    summary.add_row("multiply-adds at peak", f"{_ms(prediction.theoretical_ms)} ({si(prediction.flops_madd)} MAdd "
                    f"at {si(prediction.peaks['madd_per_s'])} MAdd/s)")
    summary.add_row("gap", f"{_ms(prediction.gap_ms)}")
    parts.append(summary)
    causes = Table(title="the gap by cause", title_justify="left", header_style="bold")
    for header in ("cause", "guideline", "ms", "of gap", "parts"):
        causes.add_column(header, justify="right" if header in ("ms", "of gap") else "left",
                          overflow="fold", max_width=44 if header == "parts" else None)
    gap = prediction.gap_ms or 1.0
    for cause, (guidelines, _) in CAUSES.items():
        ms = prediction.cause_ms(cause)
        detail = ", ".join(f"{name.replace('_', ' ')} {value:.3f}" for name, value in
                           sorted(prediction.causes[cause].items(), key=lambda item: -abs(item[1])) if abs(value) >= 5e-4)
        causes.add_row(cause.replace("_", " "), guidelines or "-", f"{ms:.3f}", f"{ms / gap:.0%}", detail)
    parts.append(causes)
    parts.append(_kernel_table(prediction, top or TOP_KERNELS))
    bounds = ", ".join(f"{bound} {share:.0%}" for bound, share in sorted(prediction.bounds().items()))
    fallback = sum(1 for k in prediction.kernels if k.fallback)
    notes = [f"{len(prediction.kernels)} kernels; time by bound: {bounds}; run overhead "
             f"{_ms(prediction.run_overhead_ms)}",
             f"calibration {prediction.calibration}; graph {prediction.graph}"]
    if fallback:
        notes.append(f"{fallback} kernels of kinds the calibration did not cover predicted by a pooled fallback")
    parts += [Text(note, style="dim") for note in notes]
    return Group(*parts)


def kernel_label(kernel: KernelPrediction) -> str:
    """The exported node a kernel stands for: its convolution or matrix product when it covers one (not the
    activation it was named after), else the first node it covers, else its own name (an inserted kernel)."""
    main = [c for c in kernel.covers if c.rsplit("/", 1)[-1] in ("Conv", "Gemm", "MatMul")]
    return (main or list(kernel.covers) or [kernel.kernel.name])[0].lstrip("/")


def _kernel_table(prediction: Prediction, top: int) -> Table:
    total = sum(k.predicted_us for k in prediction.kernels) or 1.0
    table = Table(title=f"slowest {min(top, len(prediction.kernels))} of {len(prediction.kernels)} kernels",
                  title_justify="left", header_style="bold")
    for header, width in (("kernel", 30), ("kind", 22), ("MAdd", None), ("bytes", None), ("us", None),
                          ("time", None), ("bound", None)):
        table.add_column(header, max_width=width, no_wrap=header == "kernel", overflow="ellipsis",
                         justify="left" if header in ("kernel", "kind", "bound") else "right")
    for kernel in sorted(prediction.kernels, key=lambda k: k.predicted_us, reverse=True)[:top]:
        table.add_row(kernel_label(kernel), kernel.kernel.kind + (" *" if kernel.fallback else ""), si(kernel.kernel.madd),
                      binary_bytes(kernel.kernel.bytes), f"{kernel.predicted_us:.1f}",
                      f"{kernel.predicted_us / total:.1%}", kernel.bound)
    return table


def render_calibration(calibration: Calibration, stored: Path | None = None) -> Group:
    """What a calibration measured and fitted: peaks, the graph model, and every kind's predictor and its error."""
    peaks, graph = calibration.peaks, calibration.fitted.graph
    parts: list[Any] = [Text(f"calibration of {calibration.device.name}: {calibration.design['graphs']} graphs "
                             f"({calibration.design['name']} design), fingerprint {calibration.fingerprint}",
                             style="bold")]
    if calibration.emulated:
        parts.append(emulated_text())
    parts.append(Text(f"peak {si(peaks.madd_per_s)} MAdd/s; memory bandwidth "
                      f"{binary_bytes(peaks.memory_bandwidth_bytes_per_s)}/s; in cache up to "
                      f"{binary_bytes(peaks.cache_bandwidth_bytes_per_s)}/s"))
    parts.append(Text(f"the machine drifted by {calibration.reference_spread:.0%} during the calibration (the "
                      "reference kernel's spread between graphs; taken out)", style="dim"))
    parts += _warnings(calibration.warnings)
    size_ms = CONTEXT_SIZE_US / 1000.0
    contexts = ", ".join(f"{kind} x{c.factor:.2f}" + (f" (size/{size_ms:g} ms)^{c.slope:.2f}" if c.slope else "")
                         for kind, c in sorted(graph.context.items()))
    parts.append(Text(f"outside the kernels: {graph.run_overhead_us:.1f} us per run, {graph.per_kernel_us:+.2f} us "
                      f"per kernel; whole-network error sigma {graph.sigma:.1%}"))
    parts.append(Text(f"kernels of unseen networks against their kinds' predictions (in a network of size {size_ms:g} ms: "
                      f"its kernels' predicted time alone): {contexts}"))
    table = Table(header_style="bold")
    for header in ("kind", "kernels", "overhead us", "of peak MAdd", "of bandwidth", "beyond", "error", "corrected"):
        table.add_column(header, justify="left" if header == "kind" else "right")
    for kind, model in sorted({**calibration.fitted.kinds, **{f"({k})": m for k, m in
                                                               calibration.fitted.pooled.items()}}.items()):
        corrected = "-" if model.cv_error_corrected is None else f"{model.cv_error_corrected:.0%}"
        if model.correction is not None:
            corrected += " (used)"
        table.add_row(kind, str(model.samples), f"{model.overhead_us:.1f}",
                      "-" if model.compute_efficiency is None else f"{model.compute_efficiency:.0%}",
                      f"{model.memory_efficiency:.2f}x", _spill(model), f"{model.cv_error:.0%}", corrected)
    parts.append(table)
    parts.append(Text("beyond: the working set past which bytes cost more, and the bandwidth of that extra cost; "
                      "error: mean relative error of a kind's roofline, cross-validated; corrected: with the learned "
                      "shape correction (used where it cut the error by 10% or more); (compute) and (memory): the "
                      "pooled fallbacks", style="dim"))
    if stored is not None:
        parts.append(Text(f"stored as {stored}; predict with: shufflebench predict MODEL --device "
                          f"{calibration.device.name}", style="dim"))
    return Group(*parts)


def _spill(model: KindModel) -> str:
    if model.spill_bytes is None or not model.spill_efficiency:
        return "-"
    return f"{model.spill_bytes / 1e6:.1f} MB: {model.spill_efficiency:.2f}x"


def plot_roofline(prediction: Prediction, path: str | Path) -> Path:
    """The device's roofline (measured peak multiply-add rate, memory and in-cache bandwidth) with each kernel of
    the model as a point at its arithmetic intensity and predicted rate, sized by its share of time and coloured by
    its bound; kernels without multiply-adds go in a second panel, at their predicted bandwidth."""
    path = check_plot_path(path)
    plt = pyplot()
    fig, (roof, moves) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]})
    peaks = prediction.peaks
    total = sum(k.predicted_us for k in prediction.kernels) or 1.0
    intensities = [k.kernel.arithmetic_intensity for k in prediction.kernels if k.kernel.madd] or [1.0]
    low, high = min(intensities + [0.1]) / 2, max(intensities + [100.0]) * 2
    for name, bandwidth, style in (("memory", peaks["memory_bandwidth_bytes_per_s"], "-"),
                                   ("in cache", peaks["cache_bandwidth_bytes_per_s"], ":")):
        ridge = peaks["madd_per_s"] / bandwidth
        xs = [low, ridge, high]
        roof.plot(xs, [min(x * bandwidth, peaks["madd_per_s"]) / 1e9 for x in xs], "k" + style, linewidth=1,
                  label=f"{name} {bandwidth / 1e9:.0f} GB/s")
    for kernel in prediction.kernels:
        size = 20 + 2000 * kernel.predicted_us / total
        color = BOUND_COLORS[kernel.bound]
        if kernel.kernel.madd:
            rate = kernel.kernel.madd / (kernel.predicted_us * 1e-6) / 1e9
            roof.scatter(kernel.kernel.arithmetic_intensity, rate, s=size, c=color, alpha=0.5, edgecolors="none")
        else:
            moves.scatter(kernel.kernel.bytes, kernel.kernel.bytes / (kernel.predicted_us * 1e-6) / 1e9, s=size,
                          c=color, alpha=0.5, edgecolors="none")
    for bound, color in BOUND_COLORS.items():
        roof.scatter([], [], c=color, label=f"{bound}-bound")
    roof.set(xscale="log", yscale="log", xlabel="multiply-adds per byte", ylabel="GMAdd/s (predicted)",
             title=f"{prediction.model} on {prediction.device}: {prediction.predicted_ms:.2f} ms predicted")
    roof.axhline(peaks["madd_per_s"] / 1e9, color="k", linewidth=0.5)
    roof.legend(fontsize=7, loc="lower right")
    moves.axhline(peaks["memory_bandwidth_bytes_per_s"] / 1e9, color="k", linewidth=1, label="memory bandwidth")
    moves.axhline(peaks["cache_bandwidth_bytes_per_s"] / 1e9, color="k", linestyle=":", linewidth=1,
                  label="in cache")
    moves.set(xscale="log", yscale="log", xlabel="bytes moved", ylabel="GB/s (predicted)",
              title="kernels without multiply-adds")
    moves.legend(fontsize=7)
    if prediction.emulated:
        fig.suptitle(EMULATED, color="red")
    fig.tight_layout()
    return save_figure(plt, fig, path)
