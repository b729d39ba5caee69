"""The `compare` result as a table, as Markdown, and as plots (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..errors import SetupError, UsageError
from .units import binary_bytes, si

HEADERS = ("model", "MAdd", "MAC dep.", "latency ms", "theory", "actual", "eff.", "paper")


def _pm(value: float, low: float, high: float) -> str:
    """A 95% confidence interval as +-percent of the value."""
    return f" ±{(high - low) / 2 / value:.1%}" if value else ""


def _cells(model: dict[str, Any]) -> tuple[str, ...]:
    lat = model["latency"]
    ci = lat["ci95_ms"]
    vs = model["vs_baseline"]
    speed = vs["actual_speedup"]
    paper = model["paper"]
    paper_text = "-"
    if paper:
        paper_text = f"{paper['latency_ms']:g} ms"
        if paper["speedup_vs_baseline"]:
            paper_text += f" ({paper['speedup_vs_baseline']:.1f}x)"
    return (
        model["short_label"],
        si(model["flops_madd"]),
        binary_bytes(model["mac_bytes"]["deployed"]),
        f"{lat['median_ms']:.3f}" + (_pm(lat["median_ms"], *ci) if ci else ""),
        f"{vs['theoretical_speedup']:.2f}x" if vs["theoretical_speedup"] else "-",
        f"{speed['estimate']:.2f}x" + _pm(speed["estimate"], *speed["ci"]),
        f"{vs['efficiency']:.2f}" if vs["efficiency"] else "-",
        paper_text,
    )


def render_compare(data: dict[str, Any]) -> Group:
    """Counts, latency and speedups against the baseline, with the papers' published figures."""
    parts: list[Any] = [Text(f"on {data['device']}; speedups against {data['baseline']}", style="bold")]
    if data["emulated"]:
        parts.append(Text("EMULATED: aarch64 under qemu-user -- these timings are not hardware timings",
                          style="bold red"))
    table = Table(show_header=True, header_style="bold")
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold",
                         max_width=30 if i == 0 else None)
    for model in data["models"]:
        table.add_row(*_cells(model))
    parts.append(table)
    papers = {m["paper"]["source"] + " on " + m["paper"]["device"] for m in data["models"] if m["paper"]}
    for source in sorted(papers):
        parts.append(Text(f"paper: {source}", style="dim"))
    parts.append(Text("theory = multiply-add ratio; actual = latency ratio (± half its 95% CI); eff. = actual / theory",
                      style="dim"))
    return Group(*parts)


def compare_markdown(data: dict[str, Any]) -> str:
    """The comparison as a Markdown table."""
    lines = [f"Device `{data['device']}`, speedups against `{data['baseline']}`.", ""]
    if data["emulated"]:
        lines += ["> EMULATED: aarch64 under qemu-user; these timings are not hardware timings.", ""]
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("| --- |" + " ---: |" * (len(HEADERS) - 1))
    for model in data["models"]:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(model)) + " |")
    return "\n".join(lines) + "\n"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SetupError("--plot needs matplotlib: pip install 'shufflebench[plot]' (or pip install matplotlib)") \
            from None
    return plt


def _yerr(value: float, ci) -> list[list[float]]:
    # A bootstrap interval can sit a rounding error beside its own point estimate; error bars must not go negative.
    return [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]


def plot_compare(data: dict[str, Any], path: str | Path) -> Path:
    """Two panels: latency against multiply-adds, and actual against theoretical speedup with the y = x line.
    Error bars are the 95% confidence intervals. PNG or SVG, by the file's suffix."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {str(path)!r}: the file must end in .png or .svg")
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for model in data["models"]:
        lat, ci = model["latency"], model["latency"]["ci95_ms"] or [model["latency"]["median_ms"]] * 2
        left.errorbar(model["flops_madd"] / 1e6, lat["median_ms"], yerr=_yerr(lat["median_ms"], ci), fmt="o",
                      capsize=3)
        left.annotate(model["short_label"], (model["flops_madd"] / 1e6, lat["median_ms"]), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")
        vs = model["vs_baseline"]
        speed = vs["actual_speedup"]
        if vs["theoretical_speedup"]:
            right.errorbar(vs["theoretical_speedup"], speed["estimate"], yerr=_yerr(speed["estimate"], speed["ci"]),
                           fmt="o", capsize=3, label=model["short_label"])
    limit = max([1.0] + [max(m["vs_baseline"]["theoretical_speedup"] or 1, m["vs_baseline"]["actual_speedup"]["ci"][1])
                         for m in data["models"]])
    right.plot([0, limit * 1.1], [0, limit * 1.1], "k--", linewidth=0.8, label="y = x (FLOPs tell all)")
    left.set(xlabel="multiply-adds (M)", ylabel="median latency (ms)", title=f"latency on {data['device']}")
    right.set(xlabel="theoretical speedup (multiply-adds)", ylabel="actual speedup (latency)",
              title=f"against {data['baseline'].split(':')[0]}")
    right.legend(fontsize=6)
    if data["emulated"]:
        fig.suptitle("EMULATED: not hardware timings", color="red")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    fig.savefig(partial)
    plt.close(fig)
    partial.replace(path)  # never leave half a picture behind
    return path
