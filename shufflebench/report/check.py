"""The `check` result as a table: one line per guideline, then the findings."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..check import COUNT_METRICS, GUIDELINES, METRICS, CheckResult, Finding


def _value(finding: Finding, value: float) -> str:
    return f"{value:.0f}" if finding.metric in COUNT_METRICS else f"{value:.0%}"


def render_check(result: CheckResult, *, show_all: bool = False, top: int | None = None) -> Group:
    """One line per guideline, then the findings above threshold (all findings with ``show_all``), worst first."""
    parts: list[Any] = [Text.from_markup(f"[bold]{result.model.label}[/]: ShuffleNet V2 guidelines")]
    for guideline, title in GUIDELINES.items():
        checked, above = result.counts(guideline)
        parts.append(Text(f"{guideline} {title}: {above} of {checked} above threshold",
                          style="red" if above else "green"))
    if not result.coverage.complete:
        parts.append(Text(f"coverage: {result.coverage.describe()}", style="yellow"))
    rows = sorted((f for f in result.findings if show_all or f.above),
                  key=lambda f: (f.guideline, -f.value / f.threshold))
    if top:
        rows = rows[:top]
    if rows:
        table = Table(show_header=True, header_style="bold")
        table.add_column("", no_wrap=True)
        table.add_column("metric", no_wrap=True)
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("limit", justify="right", no_wrap=True)
        table.add_column("finding", overflow="fold")
        for f in rows:
            table.add_row(f.guideline + ("!" if f.above else ""), f.metric.replace("_", " "), _value(f, f.value),
                          _value(f, f.threshold), f.message)
        parts.append(table)
        for metric in sorted({f.metric for f in rows}):
            parts.append(Text(f"{metric.replace('_', ' ')}: {METRICS[metric]}", style="dim"))
    return Group(*parts)
