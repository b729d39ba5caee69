"""The `count` result: one plain dict (what ``--format json`` prints) and its table and CSV renderings."""

from __future__ import annotations

import csv
import io
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..cost import final_fc_madd
from ..layer_table import Coverage, LayerTable
from ..prepared import PreparedModel
from ..zoo.papers import PaperFigure, figures_for
from .units import binary_bytes, shape, si

COUNT_SCHEMA = "shufflebench.count/2"
_SORT_FIELDS = {"madd": "flops_madd", "mac": "mac_bytes", "params": "params"}


def published_figures(model: PreparedModel) -> list[PaperFigure]:
    """The papers' published figures for this exact variant (none for your own models)."""
    return figures_for(model.ref.spec) if model.ref.spec is not None else []


def count_data(model: PreparedModel, *, per_layer: bool) -> dict[str, Any]:
    """The machine-readable count of one model, beside the papers' figures. Keys are stable: other tools and CI
    parse them."""
    table = model.layer_table
    data: dict[str, Any] = {
        "schema": COUNT_SCHEMA,
        **{k: v for k, v in model.identity.to_dict().items() if k != "short_label"},
        "graph": table.source,
        **model.cost.to_dict(),
        "paper": [paper_comparison(figure, table) for figure in published_figures(model)],
    }
    if per_layer:
        data["layers"] = [layer.to_dict() for layer in table.layers]
    return data


def block_of(layer_name: str, depth: int = 2) -> str:
    """The stage/block a layer belongs to: the first ``depth`` parts of its module path (``stage2.0``)."""
    module = layer_name.split(":")[0]
    return ".".join(module.split(".")[:depth]) if module else "(top)"


def _selected_layers(layers: list[dict], sort: str, top: int | None) -> list[dict]:
    if sort != "order":
        layers = sorted(layers, key=lambda row: row[_SORT_FIELDS[sort]], reverse=True)
    return layers[:top] if top else layers


def render_count(data: dict[str, Any], *, sort: str = "order", top: int | None = None) -> Group:
    """A rich renderable of a count result: the totals, and the layer table when the data has one.

    Rows are grouped by block (a section per stage/unit) in execution order; ``sort`` orders them by a cost column
    instead, and ``top`` keeps the first N. Totals close the table.
    """
    parts: list[Any] = [Text.from_markup(f"[bold]{data['label']}[/]  input {shape(data['input_shape'])}")]
    summary = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("multiply-adds", "params", "MAC eager", "MAC deployed", "MAdd/byte (dep.)"):
        summary.add_column(column, justify="right")
    summary.add_row(
        si(data["flops_madd"]),
        si(data["params"]),
        binary_bytes(data["mac_bytes"]["eager"]),
        binary_bytes(data["mac_bytes"]["deployed"]),
        f"{data['arithmetic_intensity']['deployed']:.2f}",
    )
    parts.append(summary)
    if data["other_ops"]:
        others = ", ".join(f"{kind} {si(n)}" for kind, n in sorted(data["other_ops"].items()))
        parts.append(Text(f"not in multiply-adds (element ops): {others}"))
    for figure in data["paper"]:
        parts.append(Text(_paper_line(figure), style="cyan"))
    if "layers" in data:
        parts.append(_layer_table(data["layers"], sort, top, data))
    cov = data["coverage"]
    partial = bool(cov["unknown"] or cov["estimated"])
    parts.append(Text(f"coverage: {Coverage.from_dict(cov).describe()}", style="yellow" if partial else "dim"))
    return Group(*parts)


def figure_dict(figure: PaperFigure) -> dict[str, Any]:
    """A published figure as plain data (its variant as a mapping)."""
    return {
        "model": figure.model,
        "variant": dict(figure.variant),
        "flops_madd": figure.flops_madd,
        "params": figure.params,
        "excludes_fc": figure.excludes_fc,
        "tolerance": figure.tolerance,
        "source": figure.source,
        "note": figure.note,
    }


def paper_comparison(figure: PaperFigure, table: LayerTable) -> dict[str, Any]:
    """A published figure next to this count, like with like (when the paper leaves the final FC out, so do we), and
    whether the count agrees with it within the figure's stated tolerance (``agrees``)."""
    entry = figure_dict(figure)
    ours = table.flops_madd - (final_fc_madd(table) if figure.excludes_fc else 0)
    entry["counted_flops_madd"] = ours
    entry["flops_madd_deviation"] = ours / figure.flops_madd - 1
    agrees = abs(ours - figure.flops_madd) <= figure.flops_allowance
    if figure.params is not None and figure.params_allowance is not None:
        entry["params_deviation"] = table.params / figure.params - 1
        agrees = agrees and abs(table.params - figure.params) <= figure.params_allowance
    entry["agrees"] = agrees
    return entry


def _paper_line(figure: dict) -> str:
    text = f"paper: {si(figure['flops_madd'])} multiply-adds ({figure['flops_madd_deviation']:+.1%} here"
    text += ", final FC left out like the paper)" if figure["excludes_fc"] else ")"
    if figure["params"]:
        text += f", {si(figure['params'])} params ({figure['params_deviation']:+.1%} here)"
    verdict = "agrees" if figure["agrees"] else "DISAGREES beyond the figure's tolerance"
    return f"{text}: {verdict} -- {figure['source']}"


def _layer_table(layers: list[dict], sort: str, top: int | None, data: dict) -> Table:
    table = Table(show_header=True, header_style="bold", show_footer=True, expand=False)
    table.add_column("layer", footer="total", overflow="ellipsis", max_width=34, no_wrap=True)
    table.add_column("kind", overflow="ellipsis", max_width=14, no_wrap=True)
    table.add_column("output", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column("MAdd", justify="right", footer=si(data["flops_madd"]))
    table.add_column("params", justify="right", footer=si(data["params"]))
    table.add_column("MAC", justify="right", footer=binary_bytes(data["mac_bytes"]["eager"]))
    selected = _selected_layers(layers, sort, top)
    previous = None
    for row in selected:
        block = block_of(row["name"])
        if sort == "order" and previous is not None and block != previous:
            table.add_section()
        previous = block
        out = shape(row["output_shapes"][0]) if row["output_shapes"] else ""
        table.add_row(
            row["name"], row["kind"], out,
            si(row["flops_madd"]) if row["flops_madd"] else "-",
            si(row["params"]) if row["params"] else "-",
            binary_bytes(row["mac_bytes"]) if row["mac_bytes"] else "-",
        )
    if top and top < len(layers):
        table.caption = f"{len(selected)} of {len(layers)} layers shown (sorted by {sort})"
    return table


def count_csv(data: dict[str, Any]) -> str:
    """CSV: one line per layer with ``--per-layer``, else one line of totals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if "layers" in data:
        fields = ["index", "name", "kind", "op", "input_shapes", "output_shapes", "kernel", "stride", "groups",
                  "flops_madd", "other_ops", "params", "mac_elements", "mac_bytes", "mac_elements_deployed",
                  "mac_bytes_deployed"]
        writer.writerow(fields)
        for row in data["layers"]:
            writer.writerow([_csv_cell(row[f]) for f in fields])
    else:
        writer.writerow(["model", "label", "input_shape", "flops_madd", "params", "mac_bytes_eager", "mac_bytes_deployed"])
        writer.writerow([data["model"], data["label"], shape(data["input_shape"]), data["flops_madd"], data["params"],
                         data["mac_bytes"]["eager"], data["mac_bytes"]["deployed"]])
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(shape(v) if isinstance(v, list) else str(v) for v in value) if value and isinstance(value[0], list) else shape(value)
    return "" if value is None else value
