"""The `guidelines` result laid out like the ShuffleNet V2 paper's Tables 1-4, measured beside published."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

_VERDICT_STYLE = {"holds": "green", "does not hold": "red", "inconclusive": "yellow"}


def _header(data: dict[str, Any]) -> list[str]:
    widths = [f"here x{w}" for w in data["widths"]]
    return ["variant", *widths, "paper GPU x1/x2/x4", "paper ARM x1/x2/x4"]


def _row(data: dict[str, Any], row: dict[str, Any]) -> list[str]:
    measured = [f"{row['measured'][str(w)]['throughput_per_s']:.1f}" for w in data["widths"]]
    gpu = "/".join(f"{v:g}" for v in row["paper"]["gpu"])
    arm = "/".join(f"{v:g}" for v in row["paper"]["arm"])
    return [str(row["value"]), *measured, gpu, arm]


def render_guidelines(data: dict[str, Any]) -> Group:
    """One table per experiment (images/s measured here; the paper's batches/s on GPU, images/s on ARM)."""
    parts: list[Any] = [Text(f"ShuffleNet V2 guideline experiments on {data['device']} "
                             f"(channels of the paper's {data['column'].upper()} column; images/s)", style="bold")]
    if data["emulated"]:
        parts.append(Text("EMULATED: aarch64 under qemu-user -- these timings are not hardware timings",
                          style="bold red"))
    for exp in data["experiments"]:
        table = Table(title=f"{exp['guideline']}: {exp['claim']} ({exp['experiment']}, {exp['option']})",
                      show_header=True, header_style="bold", title_justify="left")
        for i, header in enumerate(_header(data)):
            table.add_column(header, justify="left" if i == 0 else "right")
        for row in exp["rows"]:
            table.add_row(*_row(data, row))
        parts.append(table)
        v = exp["verdict"]
        parts.append(Text(f"{exp['guideline']} {v['result']} here: {v['detail']}", style=_VERDICT_STYLE[v["result"]]))
        parts.append(Text(f"paper: {exp['source']}; GPU {exp['paper_unit']['gpu']}, ARM {exp['paper_unit']['arm']}",
                          style="dim"))
    return Group(*parts)


def guidelines_markdown(data: dict[str, Any]) -> str:
    """The same tables in Markdown, for REPORT.md."""
    lines = []
    if data["emulated"]:
        lines += ["> EMULATED: aarch64 under qemu-user; these timings are not hardware timings.", ""]
    for exp in data["experiments"]:
        lines += [f"### {exp['guideline']}: {exp['claim']} (`{exp['experiment']}`, {exp['option']})", ""]
        header = _header(data)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| --- |" + " ---: |" * (len(header) - 1))
        lines += ["| " + " | ".join(_row(data, row)) + " |" for row in exp["rows"]]
        v = exp["verdict"]
        lines += ["", f"**{exp['guideline']} {v['result']}** on `{data['device']}`: {v['detail']}.",
                  f"Paper: {exp['source']}; GPU {exp['paper_unit']['gpu']}, ARM {exp['paper_unit']['arm']}.", ""]
    return "\n".join(lines)
