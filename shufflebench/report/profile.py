"""The `profile` result rendered: theoretical cost next to measured latency, as a table or Markdown."""

from __future__ import annotations

from typing import Any, Mapping

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..measure.stats import Measurement
from ..profile import ProfileResult
from .banner import banners, banners_markdown
from .breakdown import breakdown_markdown, render_breakdown
from .units import binary_bytes, shape, si


def ci_text(measurement: Measurement) -> str:
    """The median's 95% CI in milliseconds, or why there is none."""
    ci = measurement.ci95
    return f"{ci[0] * 1e3:.3f}-{ci[1] * 1e3:.3f} ms" if ci else "n/a (too few runs)"


def _rows(result: ProfileResult) -> list[tuple[str, str, str, str]]:
    """(theoretical name, value, actual name, value) rows shared by the table and the Markdown views."""
    m, cost = result.measurement, result.cost
    fraction = result.fraction_of_peak or {}
    achieved = result.achieved_madd_per_s
    throughput = result.throughput_per_s
    theory = [
        ("multiply-adds", si(cost.flops_madd)),
        ("params", si(cost.params)),
        ("MAC eager", binary_bytes(cost.mac_bytes["eager"])),
        ("MAC deployed", binary_bytes(cost.mac_bytes["deployed"])),
        ("MAdd per byte (deployed)", f"{cost.arithmetic_intensity['deployed']:.2f}"),
    ]
    # When most runs were contended the median is the busy machine's latency, not the model's: the label says so.
    actual = [
        ("median (MOSTLY CONTENDED)" if m.mostly_contended else "latency median", f"{m.median * 1e3:.3f} ms"),
        ("95% CI of median", ci_text(m)),
        ("p90 / IQR", f"{m.p90 * 1e3:.3f} ms / {m.iqr * 1e3:.3f} ms"),
        ("throughput", f"{throughput:.1f} images/s" if throughput else "n/a"),
        ("achieved", f"{si(achieved)} MAdd/s" + (f" ({fraction['madd']:.1%} of peak)" if "madd" in fraction else "")
         if achieved else "n/a"),
        ("runs", f"{m.runs} + {len(m.warmup_s)} warm-up, to {m.stop_reason}"),
    ]
    if m.effective_runs < m.runs:
        actual.append(("worth", f"{m.effective_runs} independent runs"))
    if m.contended_runs:
        clean = m.uncontended_median
        actual.append(("contended runs", f"{m.contended_runs} of {m.runs}"))
        actual.append(("uncontended median", f"{clean * 1e3:.3f} ms" if clean is not None else "none"))
    prediction = result.prediction
    if prediction is not None:
        low, high = prediction.interval_ms
        theory.append(("MAdd at measured peak", f"{prediction.theoretical_ms:.3f} ms"))
        actual.append(("predicted", f"{prediction.predicted_ms:.3f} ms ({low:.3f}-{high:.3f}), measured "
                                    f"{result.measured_over_predicted:.2f}x"))
    rows = []
    for i in range(max(len(theory), len(actual))):
        t = theory[i] if i < len(theory) else ("", "")
        a = actual[i] if i < len(actual) else ("", "")
        rows.append((*t, *a))
    return rows


def _title(result: ProfileResult) -> str:
    dev = result.device
    return (f"{result.model.label}  input {shape(result.model.input_shape)}  on {dev.name} "
            f"({dev.description}, {dev.threads} thread{'s' if dev.threads != 1 else ''})")


def environment_line(environment: Mapping[str, Any]) -> str:
    """One line: CPU (or GPU), architecture, library versions (the environment record a runner captured)."""
    versions = environment.get("versions") or {}
    gpu = f", {environment['gpu']}" if environment.get("gpu") else ""
    return (f"{environment.get('cpu_model') or '?'} ({environment.get('machine')}{gpu}), onnxruntime "
            f"{versions.get('onnxruntime') or '-'}, torch {versions.get('torch') or '-'}, governor "
            f"{environment.get('governor') or 'unknown'}")


def prediction_line(result: ProfileResult) -> str | None:
    """One line on the prediction: the gap to multiply-adds by cause, and the calibration it came from."""
    prediction = result.prediction
    if prediction is None:
        return None
    causes = ", ".join(f"{cause.replace('_', ' ')} {ms:.3f} ms" for cause, ms in prediction.causes_ms.items())
    graph = "" if prediction.graph == "exact" else f"; graph {prediction.graph}"
    return f"predicted gap to multiply-adds at peak: {causes} (calibration {prediction.calibration}{graph})"


def render_profile(result: ProfileResult) -> Group:
    """Theoretical (left) and actual (right), then the environment line and any warnings."""
    parts: list[Any] = [Text(_title(result), style="bold"),
                        *banners(emulated=result.emulated, interrupted=result.interrupted)]
    table = Table(show_header=True, header_style="bold")
    table.add_column("theoretical", no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    table.add_column("actual", no_wrap=True)
    table.add_column("", justify="right", overflow="fold")
    for row in _rows(result):
        table.add_row(*row)
    parts.append(table)
    parts.append(Text(environment_line(result.environment), style="dim"))
    if not result.cost.coverage.complete:
        parts.append(Text(f"coverage: {result.cost.coverage.describe()}", style="yellow"))
    line = prediction_line(result)
    if line:
        parts.append(Text(line, style="dim"))
    parts += [Text(f"warning: {warning}", style="yellow") for warning in result.warnings]
    if result.breakdown is not None:
        parts.append(render_breakdown(result.breakdown, "Operator breakdown"))
    return Group(*parts)


def profile_markdown(result: ProfileResult) -> str:
    """The same result as a Markdown table (for a README, a pull request, a report)."""
    lines = [f"**{_title(result)}**", "", *banners_markdown(emulated=result.emulated, interrupted=result.interrupted)]
    lines += ["| theoretical | | actual | |", "| --- | ---: | --- | ---: |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _rows(result)]
    lines += ["", environment_line(result.environment), ""]
    if not result.cost.coverage.complete:
        lines += [f"- coverage: {result.cost.coverage.describe()}"]
    line = prediction_line(result)
    if line:
        lines += [line, ""]
    lines += [f"- warning: {w}" for w in result.warnings]
    text = "\n".join(lines).rstrip() + "\n"
    if result.breakdown is not None:
        text += "\n" + breakdown_markdown(result.breakdown, "Operator breakdown")
    return text
