"""The `guidelines` result laid out like the ShuffleNet V2 paper's Tables 1-4, measured beside published."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..guidelines import ExperimentResult, GuidelineResults, VariantRow
from .banner import banners, banners_markdown
from .units import si

_VERDICT_STYLE = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}


def _header(results: GuidelineResults) -> list[str]:
    widths = [f"here x{w}" for w in results.widths]
    return ["variant", *widths, "paper GPU x1/x2/x4", "paper ARM x1/x2/x4"]


def _measured(results: GuidelineResults, row: VariantRow, width: int) -> str:
    variant = row.measured[width]
    if results.figure is not None and variant.counted is not None:
        return si(variant.counted[results.figure])
    return f"{variant.throughput_per_s or 0:.1f}"


def _unit(results: GuidelineResults) -> str:
    if results.figure is None:
        return "images/s"
    return f"{results.figure.replace('_', ' ')} counted per image, lower is faster"


def _row(results: GuidelineResults, row: VariantRow) -> list[str]:
    measured = [_measured(results, row, w) if w in row.measured else "-" for w in results.widths]
    gpu = "/".join(f"{v:g}" for v in row.paper_gpu)
    arm = "/".join(f"{v:g}" for v in row.paper_arm)
    return [str(row.value), *measured, gpu, arm]


def _title(exp: ExperimentResult) -> str:
    return f"{exp.spec.guideline}: {exp.spec.claim} ({exp.spec.name}, {exp.option})"


def _paper(exp: ExperimentResult) -> str:
    return f"paper: {exp.source}; GPU {exp.paper_unit_gpu}, ARM {exp.paper_unit_arm}"


def render_guidelines(results: GuidelineResults) -> Group:
    """One table per experiment (images/s measured here, or a counted figure per image; the paper's batches/s on
    GPU, images/s on ARM)."""
    parts: list[Any] = [Text(f"ShuffleNet V2 guideline experiments on {results.device} "
                             f"(channels of the paper's {results.column.upper()} column; {_unit(results)})",
                             style="bold"),
                        *banners(emulated=results.emulated, interrupted=results.interrupted,
                                 counted=results.figure is not None)]
    for exp in results.experiments:
        table = Table(title=_title(exp), show_header=True, header_style="bold", title_justify="left")
        for i, header in enumerate(_header(results)):
            table.add_column(header, justify="left" if i == 0 else "right")
        for row in exp.rows:
            table.add_row(*_row(results, row))
        parts.append(table)
        v = exp.verdict
        parts.append(Text(f"{exp.spec.guideline} {v.result} here: {v.detail}", style=_VERDICT_STYLE[v.result]))
        parts.append(Text(_paper(exp), style="dim"))
    return Group(*parts)


def guidelines_markdown(results: GuidelineResults) -> str:
    """The same tables in Markdown, for REPORT.md."""
    lines = banners_markdown(emulated=results.emulated, interrupted=results.interrupted,
                             counted=results.figure is not None)
    lines += [f"Measured here: {_unit(results)}.", ""]
    for exp in results.experiments:
        lines += [f"### {_title(exp)}", ""]
        header = _header(results)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| --- |" + " ---: |" * (len(header) - 1))
        lines += ["| " + " | ".join(_row(results, row)) + " |" for row in exp.rows]
        v = exp.verdict
        lines += ["", f"**{exp.spec.guideline} {v.result}** on `{results.device}`: {v.detail}.", _paper(exp) + ".",
                  ""]
    return "\n".join(lines)
