"""The operator breakdown (the ShuffleNet V2 paper's Figure 2) as a table and as Markdown."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

HEADERS = ("operator category", "kernels", "time", "FLOPs", "MAC (dep.)")


def _rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    return [(c["category"], str(c["kernels"]), f"{c['time_share']:.1%}", f"{c['flops_share']:.1%}",
             f"{c['mac_share']:.1%}") for c in data["categories"]]


def _overhead(data: dict[str, Any]) -> str:
    return (f"kernels {data['node_time_us']:.0f} us of {data['run_time_us']:.0f} us per run "
            f"({data['profiled_runs']} profiled runs); framework overhead {data['overhead_us']:.0f} us "
            f"({data['overhead_share']:.1%}). 'inserted' = layout conversions onnxruntime added.")


def render_breakdown(data: dict[str, Any], title: str = "") -> Group:
    """Share of kernel time next to share of multiply-adds and of deployed MAC, per operator category."""
    table = Table(title=title or None, title_justify="left", show_header=True, header_style="bold")
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in _rows(data):
        table.add_row(*row)
    return Group(table, Text(_overhead(data), style="dim"))


def breakdown_markdown(data: dict[str, Any], title: str = "") -> str:
    """The same breakdown as a Markdown table."""
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("| --- |" + " ---: |" * (len(HEADERS) - 1))
    lines += ["| " + " | ".join(row) + " |" for row in _rows(data)]
    return "\n".join(lines + ["", _overhead(data), ""])
