"""The `regress` result rendered: a terminal table, and Markdown fit for a pull-request comment.

Both views read the same plain data (`regress.gate.regress`), which is also what ``--format json`` prints.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..regress.gate import NOT_ASKED
from .profile import environment_line


def _pct(fraction: float, signed: bool = True) -> str:
    return f"{fraction * 100:+.1f}%" if signed else f"{fraction * 100:.1f}%"


def _settings_line(data: dict[str, Any]) -> str:
    s = data["settings"]
    dev = data["device_profile"]
    threads = f"{dev['threads']} thread{'s' if dev['threads'] != 1 else ''}"
    if not any(entry.get("latency") for entry in data["models"]):
        return f"regress: exact proxies only ({s['proxies']})"
    return (f"regress on {data['device']} ({dev['description']}, {threads}): threshold {_pct(s['threshold'], False)}, "
            f"minimum effect {_pct(s['min_effect'], False)}, {s['confidence']:.0%} CI, proxies {s['proxies']}")


def latency_rows(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """(candidate, baseline, candidate ms, baseline ms, ratio, CI, MDE, rounds, verdict) per measured pair."""
    rows = []
    for entry in data["models"]:
        latency = entry.get("latency")
        if not latency:
            continue
        d = latency["decision"]
        verdict = "REGRESSION" if d["regression"] else d["verdict"]
        rounds = f"{d['rounds'][0]}" + ("" if d["paired"] else f"/{d['rounds'][1]}")
        rows.append((
            entry.get("candidate_short", entry["candidate"]), entry.get("baseline_short", entry["baseline"]),
            f"{latency['candidate']['median_ms']:.3f}", f"{latency['baseline']['median_ms']:.3f}",
            f"{d['ratio']:.3f}", f"{d['ci'][0]:.3f}-{d['ci'][1]:.3f}", _pct(d["mde"], False),
            rounds + ("" if d["paired"] else " (stored)"), verdict,
        ))
    return rows


def _change_cells(change: dict[str, Any]) -> tuple[str, str, str, str]:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) else str(value)

    before, after = change["baseline"], change["candidate"]
    if isinstance(before, int) and isinstance(after, int):
        delta = after - before
        diff = f"{delta:+,}" + (f" ({delta / before * 100:+.3g}%)" if before else "")
    elif change["proxy"] in ("finding", "model"):
        diff = "added" if before is None else "removed"
    else:
        diff = "changed"
    return change["proxy"], cell(before), cell(after), diff


def _short_names(data: dict[str, Any]) -> dict[str, str]:
    return {entry["candidate"]: entry.get("candidate_short", entry["candidate"]) for entry in data["models"]}


def change_rows(data: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(model, proxy, baseline, candidate, change) per exact change, the model named on its first row only."""
    short = _short_names(data)
    rows, previous = [], None
    for change in data["changes"]:
        name = short.get(change["model"], change["model"])
        rows.append((name if name != previous else "", *_change_cells(change)))
        previous = name
    return rows


def _changes_table(data: dict[str, Any]) -> Table:
    table = Table(show_header=True, header_style="bold", title=f"exact proxies: {len(data['changes'])} change"
                  f"{'s' if len(data['changes']) != 1 else ''}", title_justify="left")
    # Widths that keep a 100-column terminal readable: numbers fit whole, long names and findings fold.
    for name, justify, width in (("model", "left", 18), ("proxy", "left", 30), ("baseline", "right", 15),
                                 ("candidate", "right", 15), ("change", "right", None)):
        table.add_column(name, justify=justify, overflow="fold", max_width=width, no_wrap=width is None)
    for row in change_rows(data):
        table.add_row(*(Text(cell) for cell in row))
    return table


def skipped_lines(data: dict[str, Any]) -> list[str]:
    """Why latency was not judged: one line when every model shares the reason, else one per model. Nothing for
    ``--no-latency``, which the user asked for."""
    skipped = [(e.get("candidate_short", e["candidate"]), e["latency_skipped"]) for e in data["models"]
               if not e.get("latency") and e.get("latency_skipped") and e["latency_skipped"] != NOT_ASKED]
    if not skipped:
        return []
    reasons = {reason for _, reason in skipped}
    if len(reasons) == 1 and len(skipped) == len(data["models"]):
        return [f"latency not judged: {skipped[0][1]}"]
    return [f"latency of {name} not judged: {reason}" for name, reason in skipped]


def _outcome_text(data: dict[str, Any]) -> str:
    result = data["outcome"]
    if not result["regression"]:
        return "PASS: no regression"
    return "FAIL: " + "; ".join(result["reasons"])


def render_regress(data: dict[str, Any]) -> Group:
    """Settings, the latency verdicts, the exact-proxy changes, notes, warnings, environment and the outcome."""
    parts: list[Any] = [Text(_settings_line(data), style="bold")]
    rows = latency_rows(data)
    if rows:
        table = Table(show_header=True, header_style="bold", title="latency (interleaved)", title_justify="left")
        for name, justify in (("candidate", "left"), ("baseline", "left"), ("cand. ms", "right"),
                              ("base ms", "right"), ("ratio", "right"), ("CI", "right"), ("MDE", "right"),
                              ("rounds", "right"), ("verdict", "left")):
            wrap = name in ("candidate", "baseline")
            table.add_column(name, justify=justify, overflow="fold", no_wrap=not wrap)
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        parts.append(table)
    for entry in data["models"]:
        if entry.get("latency"):
            short = entry.get("candidate_short", entry["candidate"])
            parts.append(Text(f"{short}: {entry['latency']['decision']['summary']}"))
            for warning in entry["latency"]["decision"]["warnings"]:
                parts.append(Text(f"warning: {warning}", style="yellow"))
    for line in skipped_lines(data):
        parts.append(Text(line, style="dim"))
    compared = sum(1 for entry in data["models"] if entry.get("proxies"))
    if data["changes"]:
        parts.append(_changes_table(data))
    else:
        parts.append(Text(f"exact proxies: no change in {compared} model{'s' if compared != 1 else ''} "
                          "(multiply-adds, params, MAC, kernels, guideline findings)", style="green"))
    for note in data["notes"]:
        parts.append(Text(f"note: {note}", style="dim"))
    for warning in data["warnings"]:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    parts.append(Text(f"{environment_line(data)}, fingerprint {data['fingerprint']}", style="dim"))
    parts.append(Text(_outcome_text(data), style="bold red" if data["outcome"]["regression"] else "bold green"))
    return Group(*parts)


HOW_TO_READ = (
    "ratio = candidate median / baseline median, measured interleaved on the same machine in the same run; "
    "CI = its bootstrap confidence interval; MDE = the smallest change this run could detect. A regression is a CI "
    "entirely above 1 + threshold."
)


def regress_markdown(data: dict[str, Any]) -> str:
    """A pull-request comment: outcome, latency table, proxy changes, warnings, environment."""
    result = data["outcome"]
    head = "PASS, no regression" if not result["regression"] else "FAIL"
    lines = [f"### shufflebench regress: {head}", "", _settings_line(data), ""]
    for reason in result["reasons"]:
        lines.append(f"- **{reason}**")
    if result["reasons"]:
        lines.append("")
    rows = latency_rows(data)
    if rows:
        lines += ["| candidate | baseline | candidate ms | baseline ms | ratio | CI | MDE | rounds | verdict |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
        lines += ["", f"_{HOW_TO_READ}_", ""]
    skipped = skipped_lines(data)
    if skipped:
        lines += [*skipped, ""]
    compared = sum(1 for entry in data["models"] if entry.get("proxies"))
    if data["changes"]:
        lines += [f"**Exact proxies: {len(data['changes'])} change(s)**", "",
                  "| model | proxy | baseline | candidate | change |", "| --- | --- | ---: | ---: | ---: |"]
        lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in change_rows(data)]
        lines.append("")
    else:
        lines += [f"Exact proxies: no change in {compared} model{'s' if compared != 1 else ''} (multiply-adds, "
                  "params, MAC, kernels, guideline findings).", ""]
    for entry in data["models"]:
        for warning in (entry.get("latency") or {}).get("decision", {}).get("warnings", []):
            lines.append(f"- warning: {warning}")
    lines += [f"- warning: {w}" for w in data["warnings"]]
    lines += [f"- note: {n}" for n in data["notes"]]
    lines += ["", "<details><summary>Environment</summary>", "",
              f"{environment_line(data)}; fingerprint `{data['fingerprint']}`", "", "</details>", ""]
    return "\n".join(lines)


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")
