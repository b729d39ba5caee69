"""The `regress` result rendered: a terminal table, and Markdown fit for a pull-request comment.

Both views read the same plain data (`regress.gate.regress`), which is also what ``--format json`` prints.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..regress.decide import percent
from ..regress.gate import NOT_ASKED, RegressResult
from ..regress.proxies import Change
from .banner import banners, banners_markdown
from .profile import environment_line
from .units import si


def _settings_line(result: RegressResult) -> str:
    s, dev = result.settings, result.device
    threads = f"{dev.threads} thread{'s' if dev.threads != 1 else ''}"
    if any(entry.counts for entry in result.models):
        return (f"regress on {dev.name} ({dev.description}): counts per inference, threshold "
                f"{percent(s.threshold, False)}, proxies {s.proxies}")
    if not any(entry.latency for entry in result.models):
        return f"regress: exact proxies only ({s.proxies})"
    return (f"regress on {dev.name} ({dev.description}, {threads}): threshold {percent(s.threshold, False)}, "
            f"minimum effect {percent(s.effect, False)}, {s.confidence:.0%} CI, proxies {s.proxies}")


def latency_rows(result: RegressResult) -> list[tuple[str, ...]]:
    """(candidate, baseline, candidate ms, baseline ms, ratio, CI, MDE, rounds, verdict) per measured pair."""
    rows: list[tuple[str, ...]] = []
    for entry in result.models:
        latency = entry.latency
        if latency is None:
            continue
        d = latency.decision
        verdict = "REGRESSION" if d.regression else d.verdict
        rounds = f"{d.rounds[0]}" + ("" if d.paired else f"/{d.rounds[1]}")
        rows.append((
            entry.candidate_short, entry.baseline_short,
            f"{latency.candidate.median * 1e3:.3f}", f"{latency.baseline.median * 1e3:.3f}",
            f"{d.ratio:.3f}", f"{d.ci[0]:.3f}-{d.ci[1]:.3f}", percent(d.mde, False),
            rounds + ("" if d.paired else " (stored)"), verdict,
        ))
    return rows


def _counted_figure(result: RegressResult) -> str | None:
    """The figure the counted verdicts judge (the same for every model of a run), or None when none was counted."""
    figures = [entry.counts.decision.figure for entry in result.models if entry.counts]
    return figures[0] if figures else None


def count_headers(result: RegressResult) -> tuple[str, ...]:
    """The counted table's columns; the instructions ratio beside the judged figure when that is not instructions."""
    extra = ("instr. ratio",) if _counted_figure(result) not in (None, "instructions") else ()
    return ("candidate", "baseline", "candidate", "baseline", "ratio", *extra, "verdict")


def count_rows(result: RegressResult) -> list[tuple[str, ...]]:
    """(candidate, baseline, their counts of the judged figure, ratio, [instructions ratio], verdict) per pair."""
    extra = len(count_headers(result)) == 7
    rows: list[tuple[str, ...]] = []
    for entry in result.models:
        if entry.counts is None:
            continue
        d = entry.counts.decision
        instructions = d.ratios.get("instructions")
        ratios = (f"{d.ratio:.4f}", *((f"{instructions:.4f}" if instructions else "-",) if extra else ()))
        stored = " (stored)" if entry.counts.source == "stored" else ""
        rows.append((entry.candidate_short, entry.baseline_short + stored, si(d.candidate), si(d.baseline), *ratios,
                     "REGRESSION" if d.regression else d.verdict))
    return rows


def _change_cells(change: Change) -> tuple[str, str, str, str]:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) else str(value)

    before, after = change.baseline, change.candidate
    if isinstance(before, int) and isinstance(after, int):
        delta = after - before
        diff = f"{delta:+,}" + (f" ({delta / before * 100:+.3g}%)" if before else "")
    elif change.proxy in ("finding", "model"):
        diff = "added" if before is None else "removed"
    else:
        diff = "changed"
    return change.proxy, cell(before), cell(after), diff


def change_rows(result: RegressResult) -> list[tuple[str, str, str, str, str]]:
    """(model, proxy, baseline, candidate, change) per exact change, the model named on its first row only."""
    short = {entry.candidate: entry.candidate_short for entry in result.models}
    rows, previous = [], None
    for change in result.changes:
        name = short.get(change.model, change.model)
        rows.append((name if name != previous else "", *_change_cells(change)))
        previous = name
    return rows


def _changes_table(result: RegressResult) -> Table:
    count = len(result.changes)
    table = Table(show_header=True, header_style="bold", title=f"exact proxies: {count} change"
                  f"{'s' if count != 1 else ''}", title_justify="left")
    # Widths that keep a 100-column terminal readable: numbers fit whole, long names and findings fold.
    for name, width in (("model", 18), ("proxy", 30), ("baseline", 15), ("candidate", 15), ("change", None)):
        table.add_column(name, justify="left" if name in ("model", "proxy") else "right", overflow="fold",
                         max_width=width, no_wrap=width is None)
    for row in change_rows(result):
        table.add_row(*(Text(cell) for cell in row))
    return table


def skipped_lines(result: RegressResult) -> list[str]:
    """Why latency was not judged: one line when every model shares the reason, else one per model. Nothing for
    ``--no-latency``, which the user asked for."""
    skipped = [(e.candidate_short, e.latency_skipped) for e in result.models
               if e.latency is None and e.counts is None and e.latency_skipped and e.latency_skipped != NOT_ASKED]
    if not skipped:
        return []
    what = "counts" if result.device.counted else "latency"
    reasons = {reason for _, reason in skipped}
    if len(reasons) == 1 and len(skipped) == len(result.models):
        return [f"{what} not judged: {skipped[0][1]}"]
    return [f"{what} of {name} not judged: {reason}" for name, reason in skipped]


def _no_change_line(result: RegressResult) -> str:
    compared = sum(1 for entry in result.models if entry.proxies)
    return (f"exact proxies: no change in {compared} model{'s' if compared != 1 else ''} (multiply-adds, params, MAC, "
            "kernels, guideline findings)")


def _decision_warnings(result: RegressResult) -> list[str]:
    return [w for entry in result.models if entry.latency for w in entry.latency.decision.warnings]


LATENCY_HEADERS = ("candidate", "baseline", "cand. ms", "base ms", "ratio", "CI", "MDE", "rounds", "verdict")


def _verdict_table(title: str, headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    """Candidate and baseline (folded, left), numbers (right, whole), the verdict (left)."""
    table = Table(show_header=True, header_style="bold", title=title, title_justify="left")
    for i, name in enumerate(headers):
        label = i < 2
        table.add_column(name, justify="left" if label or i == len(headers) - 1 else "right", overflow="fold",
                         no_wrap=not label)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def render_regress(result: RegressResult) -> Group:
    """Settings, the latency verdicts, the exact-proxy changes, notes, warnings, environment and the outcome."""
    parts: list[Any] = [Text(_settings_line(result), style="bold"),
                        *banners(emulated=result.emulated, interrupted=result.interrupted,
                                 counted=result.device.counted)]
    counted = count_rows(result)
    if counted:
        title = f"{str(_counted_figure(result)).replace('_', ' ')} counted per inference"
        parts.append(_verdict_table(title, count_headers(result), counted))
    for entry in result.models:
        if entry.counts:
            parts.append(Text(f"{entry.candidate_short}: {entry.counts.decision.describe()}"))
    rows = latency_rows(result)
    if rows:
        parts.append(_verdict_table("latency (interleaved)", LATENCY_HEADERS, rows))
    for entry in result.models:
        if entry.latency:
            parts.append(Text(f"{entry.candidate_short}: {entry.latency.decision.describe()}"))
            for warning in entry.latency.decision.warnings:
                parts.append(Text(f"warning: {warning}", style="yellow"))
    for line in skipped_lines(result):
        parts.append(Text(line, style="dim"))
    parts.append(_changes_table(result) if result.changes else Text(_no_change_line(result), style="green"))
    for note in result.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    for warning in result.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    parts.append(Text(f"{environment_line(result.environment)}, fingerprint {result.fingerprint}", style="dim"))
    outcome = result.outcome
    verdict = "FAIL: " + "; ".join(outcome.reasons) if outcome.regression else "PASS: no regression"
    parts.append(Text(verdict, style="bold red" if outcome.regression else "bold green"))
    return Group(*parts)


HOW_TO_READ = (
    "ratio = candidate median / baseline median, measured interleaved on the same machine in the same run; "
    "CI = its bootstrap confidence interval; MDE = the smallest change this run could detect. A regression is a CI "
    "entirely above 1 + threshold."
)


COUNTED_HOW_TO_READ = (
    "figure = what one inference executed, counted (estimated cycles where caches are simulated, else "
    "instructions); ratio = candidate / baseline of that figure, deterministic. A regression is a ratio above "
    "1 + threshold."
)


def regress_markdown(result: RegressResult) -> str:
    """A pull-request comment: outcome, latency table, proxy changes, warnings, environment."""
    outcome = result.outcome
    head = "PASS, no regression" if not outcome.regression else "FAIL"
    lines = [f"### shufflebench regress: {head}", "",
             *banners_markdown(emulated=result.emulated, interrupted=result.interrupted,
                               counted=result.device.counted)]
    lines += [_settings_line(result), ""]
    lines += [f"- **{reason}**" for reason in outcome.reasons]
    if outcome.reasons:
        lines.append("")
    counted = count_rows(result)
    if counted:
        headers = count_headers(result)
        lines += [f"{str(_counted_figure(result)).replace('_', ' ')} counted per inference:", "",
                  "| " + " | ".join(headers) + " |", "| --- | --- |" + " ---: |" * (len(headers) - 3) + " --- |"]
        lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in counted]
        lines += ["", f"_{COUNTED_HOW_TO_READ}_", ""]
    rows = latency_rows(result)
    if rows:
        lines += ["| candidate | baseline | candidate ms | baseline ms | ratio | CI | MDE | rounds | verdict |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
        lines += ["", f"_{HOW_TO_READ}_", ""]
    skipped = skipped_lines(result)
    if skipped:
        lines += [*skipped, ""]
    if result.changes:
        lines += [f"**Exact proxies: {len(result.changes)} change(s)**", "",
                  "| model | proxy | baseline | candidate | change |", "| --- | --- | ---: | ---: | ---: |"]
        lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in change_rows(result)]
        lines.append("")
    else:
        lines += [_no_change_line(result) + ".", ""]
    lines += [f"- warning: {w}" for w in _decision_warnings(result)]
    lines += [f"- warning: {w}" for w in result.warnings]
    lines += [f"- note: {n}" for n in result.notes]
    lines += ["", "<details><summary>Environment</summary>", "",
              f"{environment_line(result.environment)}; fingerprint `{result.fingerprint}`", "", "</details>", ""]
    return "\n".join(lines)


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")
