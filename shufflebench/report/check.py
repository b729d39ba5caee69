"""The `check` result: guideline findings as plain data, and their table."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..guidelines import Finding, Thresholds
from ..models import ModelRef

CHECK_SCHEMA = "shufflebench.check/1"
GUIDELINES = {
    "G1": "equal channel width minimizes MAC",
    "G2": "excessive group convolution increases MAC",
    "G3": "network fragmentation reduces parallelism",
    "G4": "element-wise operations are not negligible",
}


def check_data(ref: ModelRef, findings: list[Finding], thresholds: Thresholds) -> dict[str, Any]:
    """Machine-readable findings: every metric, with ``above`` telling which ones break their threshold."""
    summary = {}
    for guideline in GUIDELINES:
        mine = [f for f in findings if f.guideline == guideline]
        summary[guideline] = {"checked": len(mine), "above": sum(f.above for f in mine)}
    return {
        "schema": CHECK_SCHEMA,
        "model": ref.name,
        "label": ref.label,
        "input_shape": list(ref.input_shape),
        "thresholds": thresholds.__dict__,
        "summary": summary,
        "findings": [f.to_dict() for f in findings],
    }


def render_check(data: dict[str, Any], *, show_all: bool = False, top: int | None = None) -> Group:
    """One line per guideline, then the findings above threshold (all findings with ``show_all``), worst first."""
    parts: list[Any] = [Text.from_markup(f"[bold]{data['label']}[/]: ShuffleNet V2 guidelines")]
    for guideline, title in GUIDELINES.items():
        counts = data["summary"][guideline]
        style = "red" if counts["above"] else "green"
        parts.append(Text(f"{guideline} {title}: {counts['above']} of {counts['checked']} above threshold", style=style))
    rows = [f for f in data["findings"] if show_all or f["above"]]
    rows.sort(key=lambda f: (f["guideline"], -f["value"]))
    if top:
        rows = rows[:top]
    if rows:
        table = Table(show_header=True, header_style="bold")
        table.add_column("", no_wrap=True)
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("limit", justify="right", no_wrap=True)
        table.add_column("finding", overflow="fold")
        for f in rows:
            fmt = "{:.0%}" if f["guideline"] in ("G1", "G2", "G4") else "{:.0f}"
            table.add_row(f["guideline"] + ("!" if f["above"] else ""), fmt.format(f["value"]),
                          fmt.format(f["threshold"]), f["message"])
        parts.append(table)
    return Group(*parts)
