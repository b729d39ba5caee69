"""Sweeps rendered: a run's summary, the store's rows and Pareto fronts (table, CSV), and latency against
multiply-adds as a plot (matplotlib, an optional extra)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..sweep.plan import COUNT_STAGE, Mode, SweepSummary
from ..sweep.results import PREDICTED, SweepReport, latency_ms
from ..sweep.store import StoredRow
from .banner import EMULATED, emulated_text
from .units import binary_bytes, si

FAILURES_SHOWN = 10


def hms(seconds: float | None) -> str:
    """Seconds as ``h:mm:ss`` (``-`` when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def render_summary(summary: SweepSummary) -> Group:
    """What one run did, stage by stage (counting, then each device), and the failures it recorded."""
    parts: list[Any] = [Text(f"sweep of {summary.architectures} architectures ({summary.mode.value} mode) into "
                             f"{summary.store}, on Ray: {summary.cluster}", style="bold")]
    table = Table(show_header=True, header_style="bold")
    for i, header in enumerate(("stage", "done", "failed", "retried", "already there", "per minute", "note")):
        table.add_column(header, justify="left" if i in (0, 6) else "right")
    for stage in summary.stages:
        rate = stage.rate_per_min()
        note = stage.stopped or ("EMULATED timings" if stage.emulated else "")
        name = "counting" if stage.name == COUNT_STAGE else stage.name + (
            " (predicted)" if summary.mode is Mode.PREDICT else "")
        table.add_row(name, f"{stage.done}/{stage.total}", str(stage.failed), str(stage.retried),
                      str(stage.done_before), f"{rate:.1f}" if rate else "-", note)
    parts.append(table)
    for what, reason in list(summary.failures.items())[:FAILURES_SHOWN]:
        parts.append(Text(f"failed: {what}: {reason}", style="red"))
    if len(summary.failures) > FAILURES_SHOWN:
        parts.append(Text(f"... and {len(summary.failures) - FAILURES_SHOWN} more (sweep report --format csv)",
                          style="red"))
    if summary.interrupted:
        parts.append(Text(f"interrupted after {hms(summary.elapsed_s)}: everything finished is in "
                          f"{summary.store}; run the same command to do the rest", style="yellow"))
    else:
        parts.append(Text(f"took {hms(summary.elapsed_s)}; see the rows with: shufflebench sweep report "
                          f"--store {summary.store}", style="dim"))
    return Group(*parts)


def _latency(row: StoredRow) -> str:
    if row.status == "failed":
        return "failed"
    if row.median_ms is None:
        return "-"
    ci = row.ci95_ms
    return f"{row.median_ms:.3f}" + (f" ±{(ci[1] - ci[0]) / 2 / row.median_ms:.1%}" if ci and row.median_ms else "")


def _cells(row: StoredRow) -> tuple[str, ...]:
    cost = row.cost
    return (row.label, si(cost.flops_madd) if cost else "-", si(cost.params) if cost else "-",
            binary_bytes(cost.mac_bytes["deployed"]) if cost else "-", _latency(row),
            f"{row.predicted_ms:.3f}" if row.predicted_ms is not None else "-", str(row.attempts or "-"))


ROW_HEADERS = ("architecture", "MAdd", "params", "MAC dep.", "latency ms", "predicted ms", "attempts")


def _table(rows: Sequence[StoredRow], title: str, headers: Sequence[str] = ROW_HEADERS) -> Table:
    """The rows under ``headers`` (a prefix of `ROW_HEADERS`); the predicted column only where a row has one."""
    keep = [i for i, header in enumerate(headers)
            if header != "predicted ms" or any(row.predicted_ms is not None for row in rows)]
    table = Table(title=title, title_justify="left", show_header=True, header_style="bold")
    for i in keep:
        table.add_column(headers[i], justify="left" if i == 0 else "right", overflow="fold",
                         max_width=48 if i == 0 else None)
    for row in rows:
        cells = _cells(row)
        table.add_row(*(cells[i] for i in keep))
    return table


def render_report(report: SweepReport, *, top: int | None = None) -> Group:
    """Per device: its rows (fastest first, at most ``top``) and its Pareto front; architectures with counts only
    in a table of their own."""
    parts: list[Any] = [Text(f"{report.store}: {report.architectures} architectures, {report.counted} counted, "
                             f"devices: {', '.join(report.devices) or 'none'}", style="bold")]
    for device in report.devices:
        basis = report.basis.get(device)
        rows = sorted((r for r in report.rows if r.device == device),
                      key=lambda r: (latency_ms(r, basis) is None, latency_ms(r, basis) or 0.0, r.label))
        shown = rows[:top] if top else rows
        if device in report.emulated:
            parts.append(emulated_text())
        more = f" (fastest {len(shown)} of {len(rows)})" if len(shown) < len(rows) else ""
        parts.append(_table(shown, f"{device}: {len(rows)} rows{more}"))
        front = report.front(device)
        on = "predicted latency" if basis == PREDICTED else "latency"
        parts.append(_table(front, f"{device}: Pareto front, {len(front)} architectures (most multiply-adds for the "
                                   f"{on})", ROW_HEADERS[:6] if basis == PREDICTED else ROW_HEADERS[:5]))
    counts_only = [r for r in report.rows if r.device is None]
    if counts_only:
        shown = counts_only[:top] if top else counts_only
        parts.append(_table(shown, f"counts only: {len(counts_only)} architectures", ROW_HEADERS[:4]))
    parts.append(Text("latency ms = median ± half its 95% CI; a device's Pareto front is taken on measured medians, "
                      "on predictions where the device has no measurement", style="dim"))
    return Group(*parts)


CSV_FIELDS = ("architecture", "label", "device", "flops_madd", "params", "mac_bytes_deployed", "status", "attempts",
              "median_ms", "ci95_low_ms", "ci95_high_ms", "runs", "emulated", "predicted_ms", "pareto", "error")


def report_csv(report: SweepReport) -> str:
    """One line per architecture and device (and per architecture with counts only), with a ``pareto`` column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    on_front = {(device, key) for device, keys in report.pareto.items() for key in keys}
    for row in report.rows:
        data = row.to_dict()
        ci = data.pop("ci95_ms") or (None, None)
        data.update(ci95_low_ms=ci[0], ci95_high_ms=ci[1], pareto=(row.device, row.key) in on_front,
                    device=row.device or "")
        writer.writerow(["" if data[name] is None else data[name] for name in CSV_FIELDS])
    return buffer.getvalue()


def plot_report(report: SweepReport, path: str | Path) -> Path:
    """Latency against multiply-adds, log-log, one colour per device: measured medians as dots, predictions as
    rings, each device's Pareto front as a step line. PNG or SVG, by the file's suffix."""
    from .compare import check_plot_path, pyplot, save_figure

    path = check_plot_path(path)
    plt = pyplot()
    fig, axes = plt.subplots(figsize=(8, 5.5))
    for index, device in enumerate(report.devices):
        rows = [r for r in report.rows if r.device == device and r.cost is not None]
        measured = [r for r in rows if r.median_ms is not None]
        predicted = [r for r in rows if r.predicted_ms is not None]
        label, colour = f"{device} (EMULATED)" if device in report.emulated else device, f"C{index % 10}"
        if measured:
            axes.scatter([r.cost.flops_madd for r in measured], [r.median_ms for r in measured], s=14,  # type: ignore[union-attr]
                         color=colour, label=f"{label}, measured")
        if predicted:
            axes.scatter([r.cost.flops_madd for r in predicted], [r.predicted_ms for r in predicted], s=22,  # type: ignore[union-attr]
                         facecolors="none", edgecolors=colour, label=f"{label}, predicted")
        front, basis = report.front(device), report.basis.get(device)
        if len(front) > 1:
            # (madd[i-1], madd[i]] needs latency[i] at least: the value continues to the left of each point.
            axes.step([r.cost.flops_madd for r in front], [latency_ms(r, basis) for r in front], where="pre",  # type: ignore[union-attr]
                      color=colour, linewidth=0.9, label=f"{device}: Pareto front ({basis})")
    axes.set(xscale="log", yscale="log", xlabel="multiply-adds", ylabel="latency (ms): measured median or predicted",
             title=f"{report.architectures} architectures, latency against multiply-adds")
    axes.legend(fontsize=7)
    if report.emulated:
        fig.suptitle(EMULATED, color="red", fontsize=9)
    fig.tight_layout()
    return save_figure(plt, fig, path)
