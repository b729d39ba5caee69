"""The `profile` result rendered: theoretical cost next to measured latency, as a table or Markdown."""

from __future__ import annotations

from typing import Any, Mapping

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..counters.figures import CYCLES_FORMULA, Counters
from ..measure.stats import Measurement
from ..profile import ProfileResult
from .banner import banners, banners_markdown
from .breakdown import breakdown_markdown, render_breakdown
from .units import binary_bytes, shape, si


def ci_text(measurement: Measurement) -> str:
    """The median's 95% CI in milliseconds, or why there is none."""
    ci = measurement.ci95
    return f"{ci[0] * 1e3:.3f}-{ci[1] * 1e3:.3f} ms" if ci else "n/a (too few runs)"


def _count(value: int | None) -> str:
    """A count with thousands separators, and in SI beside it (``54,747,021 (54.7M)``)."""
    return "n/a" if value is None else f"{value:,} ({si(value)})"


#: (figure, row name) of a counted result's rows, in order.
COUNTED_ROWS = (("instructions", "instructions"), ("estimated_cycles", "est. cycles (estimate)"),
                ("loads", "loads"), ("stores", "stores"), ("l1_misses", "L1 misses"), ("ll_misses", "LL misses"))


def counted_rows(counters: Counters) -> list[tuple[str, str]]:
    """(name, value) rows of the per-inference counts, and how many inferences they come from."""
    figures = counters.figures
    rows = [(name, _count(figures[key])) for key, name in COUNTED_ROWS if key in figures]
    rows.append(("inferences", f"{len(counters.runs)} counted + {counters.warmup} warm-up, fewest reported "
                               f"(spread {counters.spread:.2%})"))
    return rows


def _actual_rows(m: Measurement, result: ProfileResult) -> list[tuple[str, str]]:
    fraction = result.fraction_of_peak or {}
    achieved = result.achieved_madd_per_s
    throughput = result.throughput_per_s
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
        actual.append(("predicted", f"{prediction.predicted_ms:.3f} ms ({low:.3f}-{high:.3f}), measured "
                                    f"{result.measured_over_predicted:.2f}x"))
    return actual


def _rows(result: ProfileResult) -> list[tuple[str, str, str, str]]:
    """(theoretical name, value, actual name, value) rows shared by the table and the Markdown views."""
    cost = result.cost
    theory = [
        ("multiply-adds", si(cost.flops_madd)),
        ("params", si(cost.params)),
        ("MAC eager", binary_bytes(cost.mac_bytes["eager"])),
        ("MAC deployed", binary_bytes(cost.mac_bytes["deployed"])),
        ("MAdd per byte (deployed)", f"{cost.arithmetic_intensity['deployed']:.2f}"),
    ]
    if result.prediction is not None:
        theory.append(("MAdd at measured peak", f"{result.prediction.theoretical_ms:.3f} ms"))
    if result.counters is not None:
        actual = counted_rows(result.counters)
    else:
        actual = _actual_rows(result.timed, result)
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


def _actual_header(result: ProfileResult) -> str:
    return "counted per inference" if result.counted else "actual"


def counted_note(counters: Counters) -> str:
    """What the counts are and how the cycle estimate is made."""
    tool = counters.context.get("tool") or counters.tool
    note = f"counted by {tool}, per inference, steady state (the counted inference with the fewest instructions)"
    if counters.estimated_cycles is not None:
        note += f"; est. cycles = {CYCLES_FORMULA}"
    return note


def render_profile(result: ProfileResult) -> Group:
    """Theoretical (left) and actual or counted (right), then the environment line and any warnings."""
    parts: list[Any] = [Text(_title(result), style="bold"),
                        *banners(emulated=result.emulated, interrupted=result.interrupted, counted=result.counted)]
    table = Table(show_header=True, header_style="bold")
    table.add_column("theoretical", no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    table.add_column(_actual_header(result), no_wrap=True)
    table.add_column("", justify="right", overflow="fold")
    for row in _rows(result):
        table.add_row(*row)
    parts.append(table)
    if result.counters is not None:
        parts.append(Text(counted_note(result.counters), style="dim"))
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
    lines = [f"**{_title(result)}**", "",
             *banners_markdown(emulated=result.emulated, interrupted=result.interrupted, counted=result.counted)]
    lines += [f"| theoretical | | {_actual_header(result)} | |", "| --- | ---: | --- | ---: |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _rows(result)]
    if result.counters is not None:
        lines += ["", counted_note(result.counters)]
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
