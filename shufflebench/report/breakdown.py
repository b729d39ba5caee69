"""The operator breakdown (the ShuffleNet V2 paper's Figure 2) as a table and as Markdown."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..breakdown import Breakdown

HEADERS = ("operator category", "kernels", "time", "MAdd", "MAC (dep.)")


def _rows(data: Breakdown) -> list[tuple[str, ...]]:
    return [(c.category, str(c.kernels), f"{c.time_share:.1%}", f"{c.madd_share:.1%}", f"{c.mac_share:.1%}")
            for c in data.categories]


def _overhead(data: Breakdown) -> str:
    text = (f"kernels {data.node_time_us:.0f} us of {data.run_time_us:.0f} us per run "
            f"({data.profiled_runs} profiled runs); framework overhead {data.overhead_us:.0f} us "
            f"({data.overhead_share:.1%}). 'inserted' = layout conversions onnxruntime added.")
    if data.uncovered_nodes:
        text += " Exported nodes no kernel ran (folded at load): " + ", ".join(
            f"{op} x{n}" for op, n in data.uncovered_nodes.items())
    return text


TOP_KERNELS = 8  # the slowest kernels listed under the categories


def top_kernels(data: Breakdown, count: int = TOP_KERNELS) -> list[tuple[str, ...]]:
    """The slowest executed kernels: name, op, category, share of kernel time, and the exported nodes each covers."""
    total = data.node_time_us or 1.0
    ranked = sorted(data.kernels, key=lambda k: k.time_us, reverse=True)[:count]
    return [(k.name, k.op, k.category, f"{k.time_us / total:.1%}",
             ", ".join(c.rsplit("/", 1)[-1] for c in k.covers) or "(inserted)") for k in ranked]


def render_breakdown(data: Breakdown, title: str = "") -> Group:
    """Share of kernel time next to share of multiply-adds and of deployed MAC, per operator category; then the
    slowest kernels with the exported nodes each one covers (fusions made visible)."""
    table = Table(title=title or None, title_justify="left", show_header=True, header_style="bold")
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in _rows(data):
        table.add_row(*row)
    kernels = Table(title=f"slowest {TOP_KERNELS} kernels", title_justify="left", show_header=True, header_style="bold")
    for header, width in (("kernel", 34), ("op", 12), ("category", 14), ("time", None), ("covers", 24)):
        kernels.add_column(header, max_width=width, overflow="ellipsis" if header == "kernel" else "fold",
                           no_wrap=header == "kernel", justify="right" if header == "time" else "left")
    for row in top_kernels(data):
        kernels.add_row(*row)
    return Group(table, Text(_overhead(data), style="dim"), kernels)


def breakdown_markdown(data: Breakdown, title: str = "") -> str:
    """The same breakdown as a Markdown table."""
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("| --- |" + " ---: |" * (len(HEADERS) - 1))
    lines += ["| " + " | ".join(row) + " |" for row in _rows(data)]
    return "\n".join(lines + ["", _overhead(data), ""])
