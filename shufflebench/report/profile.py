"""The `profile` result rendered: theoretical cost next to measured latency, as a table or Markdown."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .units import binary_bytes, shape, si


def _ci_text(latency: dict) -> str:
    ci = latency.get("ci95_ms")
    return f"{ci[0]:.3f}-{ci[1]:.3f} ms" if ci else "n/a (too few runs)"


def _rows(data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(theoretical name, value, actual name, value) rows shared by the table and the Markdown views."""
    lat = data["latency"]
    fraction = data.get("fraction_of_peak") or {}
    achieved = data.get("achieved_madd_per_s")
    theory = [
        ("multiply-adds", si(data["flops_madd"])),
        ("params", si(data["params"])),
        ("MAC eager", binary_bytes(data["mac_bytes"]["eager"])),
        ("MAC deployed", binary_bytes(data["mac_bytes"]["deployed"])),
        ("MAdd per byte (deployed)", f"{data['arithmetic_intensity']['deployed']:.2f}"),
    ]
    actual = [
        ("latency median", f"{lat['median_ms']:.3f} ms"),
        ("95% CI of median", _ci_text(lat)),
        ("p90 / IQR", f"{lat['p90_ms']:.3f} ms / {lat['iqr_ms']:.3f} ms"),
        ("throughput", f"{data['throughput_per_s']:.1f} images/s" if data["throughput_per_s"] else "n/a"),
        ("achieved", f"{si(achieved)} MAdd/s" + (f" ({fraction['madd']:.1%} of peak)" if "madd" in fraction else "")
         if achieved else "n/a"),
        ("runs", f"{lat['runs']} + {len(lat['warmup_ms'])} warm-up, to {lat['stop_reason']}"),
    ]
    effective = lat.get("effective_runs")  # absent in results written before it was measured
    if effective is not None and effective < lat["runs"]:
        actual.append(("worth", f"{effective} independent runs"))
    rows = []
    for i in range(max(len(theory), len(actual))):
        t = theory[i] if i < len(theory) else ("", "")
        a = actual[i] if i < len(actual) else ("", "")
        rows.append((*t, *a))
    return rows


def _title(data: dict[str, Any]) -> str:
    dev = data["device_profile"]
    return (f"{data['label']}  input {shape(data['input_shape'])}  on {data['device']} "
            f"({dev['description']}, {dev['threads']} thread{'s' if dev['threads'] != 1 else ''})")


def environment_line(data: dict[str, Any]) -> str:
    """One line: CPU (or GPU), architecture, library versions."""
    env = data["environment"]
    versions = env.get("versions") or {}
    gpu = f", {env['gpu']}" if env.get("gpu") else ""
    return (f"{env.get('cpu_model') or '?'} ({env.get('machine')}{gpu}), onnxruntime {versions.get('onnxruntime') or '-'}, "
            f"torch {versions.get('torch') or '-'}, governor {env.get('governor') or 'unknown'}")


def render_profile(data: dict[str, Any]) -> Group:
    """Theoretical (left) and actual (right), then the environment line and any warnings."""
    parts: list[Any] = [Text(_title(data), style="bold")]
    if data["emulated"]:
        parts.append(Text("EMULATED: aarch64 under qemu-user -- these timings are not hardware timings",
                          style="bold red"))
    table = Table(show_header=True, header_style="bold")
    table.add_column("theoretical", no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    table.add_column("actual", no_wrap=True)
    table.add_column("", justify="right", overflow="fold")
    for row in _rows(data):
        table.add_row(*row)
    parts.append(table)
    parts.append(Text(environment_line(data), style="dim"))
    for warning in data["warnings"]:
        if not warning.lower().startswith("emulated"):
            parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


def profile_markdown(data: dict[str, Any]) -> str:
    """The same result as a Markdown table (for a README, a pull request, a report)."""
    lines = [f"**{_title(data)}**", ""]
    if data["emulated"]:
        lines += ["> EMULATED: aarch64 under qemu-user; these timings are not hardware timings.", ""]
    lines += ["| theoretical | | actual | |", "| --- | ---: | --- | ---: |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _rows(data)]
    lines += ["", environment_line(data), ""]
    lines += [f"- warning: {w}" for w in data["warnings"] if not w.lower().startswith("emulated")]
    return "\n".join(lines).rstrip() + "\n"
