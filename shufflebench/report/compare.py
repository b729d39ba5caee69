"""The `compare` result as a table, as Markdown, and as plots (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..compare import ComparedModel, Comparison
from ..counters.figures import CYCLES_FORMULA
from ..errors import SetupError, UsageError
from .banner import EMULATED, EMULATED_COUNTED, banners, banners_markdown
from .breakdown import breakdown_markdown, render_breakdown
from .units import binary_bytes, si

HEADERS = ("model", "MAdd", "MAC dep.", "latency ms", "theory", "actual", "eff.", "paper")
PREDICTED = "predicted ms"  # a column of its own when the models carry predictions
#: Counted figures a comparison shows (figure, column of the count, column of the ratio), where measured.
COUNTED_COLUMNS = (("instructions", "instructions", "by instr."), ("estimated_cycles", "est. cycles", "by cycles"))
FOOTNOTE = "theory = multiply-add ratio; actual = latency ratio (± half its 95% CI); eff. = actual / theory"


def _pm(value: float, low: float, high: float) -> str:
    """A 95% confidence interval as +-percent of the value."""
    return f" ±{(high - low) / 2 / value:.1%}" if value else ""


def _counted_figures(comparison: Comparison) -> list[tuple[str, str, str]]:
    """The `COUNTED_COLUMNS` every model of a counted comparison has (none for a timed one)."""
    counters = [m.result.counters for m in comparison.models]
    if any(c is None for c in counters):
        return []
    return [column for column in COUNTED_COLUMNS if all(c is not None and c.figure(column[0]) is not None
                                                       for c in counters)]


def _headers(comparison: Comparison) -> tuple[str, ...]:
    counted = _counted_figures(comparison)
    if not counted:
        return (*HEADERS[:4], PREDICTED, *HEADERS[4:]) if _predicted_column(comparison) else HEADERS
    return ("model", "MAdd", "MAC dep.", *(c[1] for c in counted), "theory", *(c[2] for c in counted), "eff.",
            "paper")


def _footnote(comparison: Comparison) -> str:
    counted = _counted_figures(comparison)
    if not counted:
        return FOOTNOTE
    note = ("theory = multiply-add ratio; by instr. = ratio of instructions counted per inference; eff. = "
            f"counted / theory, by {counted[-1][2].removeprefix('by ')}")
    if len(counted) > 1:
        note += f"; by cycles = ratio of estimated cycles ({CYCLES_FORMULA})"
    return note


def _predicted_column(comparison: Comparison) -> bool:
    return any(m.result.prediction for m in comparison.models)


def _predicted(model: ComparedModel) -> str:
    prediction = model.result.prediction
    if prediction is None:
        return "-"
    speedup = f" ({model.predicted_speedup:.2f}x)" if model.predicted_speedup else ""
    return f"{prediction.predicted_ms:.3f}{speedup}"


def _row(comparison: Comparison, model: ComparedModel, counted: list[tuple[str, str, str]]) -> tuple[str, ...]:
    """A model's cells under `_headers`: counted columns, or latency with the predicted column where there is one."""
    cells = _cells(model, counted)
    if counted or not _predicted_column(comparison):
        return cells
    return (*cells[:4], _predicted(model), *cells[4:])


def _cells(model: ComparedModel, counted: list[tuple[str, str, str]]) -> tuple[str, ...]:
    speed = model.actual_speedup
    paper_text = "-"
    if model.paper:
        paper_text = f"{model.paper.latency_ms:g} ms"
        if model.paper.speedup_vs_baseline:
            paper_text += f" ({model.paper.speedup_vs_baseline:.1f}x)"
    theory = f"{model.theoretical_speedup:.2f}x" if model.theoretical_speedup else "-"
    head = (model.result.model.short_label, si(model.result.cost.flops_madd),
            binary_bytes(model.result.cost.mac_bytes["deployed"]))
    tail = (f"{model.efficiency:.2f}" if model.efficiency else "-", paper_text)
    counters = model.result.counters
    if counters is not None and counted:
        ratios = model.counted_speedups or {}
        counts = tuple(si(counters.figure(name) or 0) for name, _, _ in counted)
        speeds = tuple(f"{ratios[name]:.3f}x" if name in ratios else "-" for name, _, _ in counted)
        return (*head, *counts, theory, *speeds, *tail)
    m = model.result.timed
    ci = m.ci95
    return (*head, f"{m.median * 1e3:.3f}" + (_pm(m.median, *ci) if ci else ""), theory,
            f"{speed.estimate:.2f}x" + _pm(speed.estimate, speed.low, speed.high), *tail)


def render_compare(comparison: Comparison) -> Group:
    """Counts, latency and speedups against the baseline, with the papers' published figures."""
    counted = _counted_figures(comparison)
    parts: list[Any] = [Text(f"on {comparison.device.name}; speedups against {comparison.baseline}", style="bold"),
                        *banners(emulated=comparison.emulated, interrupted=comparison.interrupted,
                                 counted=bool(counted))]
    table = Table(show_header=True, header_style="bold")
    for i, header in enumerate(_headers(comparison)):
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold",
                         max_width=30 if i == 0 else None)
    for model in comparison.models:
        table.add_row(*_row(comparison, model, counted))
    parts.append(table)
    papers = {m.paper.source + " on " + m.paper.device for m in comparison.models if m.paper}
    for source in sorted(papers):
        parts.append(Text(f"paper: {source}", style="dim"))
    parts.append(Text(_footnote(comparison), style="dim"))
    parts += [Text(f"coverage of {m.result.model.short_label}: {m.result.cost.coverage.describe()}", style="yellow")
              for m in comparison.models if not m.result.cost.coverage.complete]
    parts += [Text(f"warning: {m.result.model.short_label}: {warning}", style="yellow")
              for m in comparison.models for warning in m.result.warnings]
    calibrations = {m.result.prediction.calibration for m in comparison.models if m.result.prediction}
    for calibration in sorted(calibrations):
        parts.append(Text(f"predicted ms (predicted speedup) from calibration {calibration}", style="dim"))
    parts += [render_breakdown(m.result.breakdown, f"Operator breakdown: {m.result.model.short_label}")
              for m in comparison.models if m.result.breakdown is not None]
    return Group(*parts)


def compare_markdown(comparison: Comparison) -> str:
    """The comparison as a Markdown table."""
    counted = _counted_figures(comparison)
    headers = _headers(comparison)
    lines = [f"Device `{comparison.device.name}`, speedups against `{comparison.baseline}`.", "",
             *banners_markdown(emulated=comparison.emulated, interrupted=comparison.interrupted,
                               counted=bool(counted))]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("| --- |" + " ---: |" * (len(headers) - 1))
    for model in comparison.models:
        cells = _row(comparison, model, counted)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += ["", _footnote(comparison)]
    text = "\n".join(lines) + "\n"
    for m in comparison.models:
        if m.result.breakdown is not None:
            text += "\n" + breakdown_markdown(m.result.breakdown, f"Operator breakdown: {m.result.model.short_label}")
    return text


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend; `SetupError` saying how to install it when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SetupError("--plot needs matplotlib: pip install 'shufflebench[plot]' (or pip install matplotlib)") \
            from None
    return plt


def _yerr(value: float, ci: Any) -> list[list[float]]:
    # A bootstrap interval can sit a rounding error beside its own point estimate; error bars must not go negative.
    return [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]


def _plotted(model: ComparedModel) -> tuple[float, list[float]]:
    """The left panel's value and its interval: median latency (ms) with its 95% CI, or the primary counted figure
    (millions) without one."""
    counters = model.result.counters
    if counters is not None:
        value = (counters.figure(counters.primary) or 0) / 1e6
        return value, [value, value]
    m = model.result.timed
    median_ms = m.median * 1e3
    return median_ms, [x * 1e3 for x in m.ci95] if m.ci95 else [median_ms, median_ms]


def check_plot_path(path: str | Path) -> Path:
    """The plot file, refused unless it ends in .png or .svg (checked before anything is measured)."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {str(path)!r}: the file must end in .png or .svg")
    return path


def plot_compare(comparison: Comparison, path: str | Path) -> Path:
    """Two panels: latency against multiply-adds, and actual against theoretical speedup with the y = x line.
    Error bars are the 95% confidence intervals. PNG or SVG, by the file's suffix."""
    path = check_plot_path(path)
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for model in comparison.models:
        madd, (value, ci) = model.result.cost.flops_madd / 1e6, _plotted(model)
        left.errorbar(madd, value, yerr=_yerr(value, ci), fmt="o", capsize=3)
        if model.result.prediction is not None:
            left.scatter(madd, model.result.prediction.predicted_ms, marker="x", color="k", zorder=3)
        left.annotate(model.result.model.short_label, (madd, value), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
        speed = model.actual_speedup
        if model.theoretical_speedup:
            right.errorbar(model.theoretical_speedup, speed.estimate, yerr=_yerr(speed.estimate, (speed.low, speed.high)),
                           fmt="o", capsize=3, label=model.result.model.short_label)
    limit = max([1.0] + [max(m.theoretical_speedup or 1, m.actual_speedup.high) for m in comparison.models])
    right.plot([0, limit * 1.1], [0, limit * 1.1], "k--", linewidth=0.8, label="y = x (multiply-adds tell all)")
    counters = comparison.models[0].result.counters
    what = counters.primary.replace("_", " ") if counters is not None else ""
    if counters is not None:
        left.set(ylabel=f"{what} per inference (M)", title=f"counted on {comparison.device.name}")
    else:
        left.set(ylabel="median latency (ms)", title=f"latency on {comparison.device.name}"
                 + (" (x: predicted)" if _predicted_column(comparison) else ""))
    left.set(xlabel="multiply-adds (M)")
    right.set(xlabel="theoretical speedup (multiply-adds)",
              ylabel=f"counted speedup ({what})" if what else "actual speedup (latency)",
              title=f"against {comparison.baseline.split(':')[0]}")
    right.legend(fontsize=6)
    if comparison.emulated:
        fig.suptitle(EMULATED_COUNTED if counters is not None else EMULATED, color="red")
    fig.tight_layout()
    return save_figure(plt, fig, path)


def save_figure(plt: Any, fig: Any, path: Path) -> Path:
    """Write a figure atomically (never half a picture) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    fig.savefig(partial)
    plt.close(fig)
    partial.replace(path)
    return path
