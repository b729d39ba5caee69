"""The `list` result: every registered model with its options and the papers' figures."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from ..zoo.catalog import entries, format_value
from .count import figure_dict
from .units import si

LIST_SCHEMA = "shufflebench.list/1"


def zoo_data() -> dict[str, Any]:
    """Plain data of the whole zoo (what ``list --format json`` prints)."""
    from ..zoo.papers import all_figures

    figures = all_figures()
    models = []
    for entry in entries():
        models.append(
            {
                "name": entry.name,
                "aliases": list(entry.aliases),
                "family": entry.family,
                "summary": entry.summary,
                "options": [
                    {
                        "name": o.name,
                        "type": o.type.__name__,
                        "default": o.default,
                        "choices": list(o.choices) if o.choices is not None else None,
                        "minimum": o.minimum,
                        "help": o.help,
                    }
                    for o in entry.options
                ],
                "paper": [figure_dict(f) for f in figures if f.model == entry.name],
            }
        )
    return {"schema": LIST_SCHEMA, "models": models}


def _option_text(option: dict) -> str:
    if option["choices"] is not None:
        values = "|".join(format_value(c) for c in option["choices"])
    else:
        values = f">={format_value(option['minimum'])}" if option["minimum"] is not None else option["type"]
    return f"{option['name']}={values} ({format_value(option['default'])})"


def render_zoo(data: dict[str, Any]) -> Table:
    """A table of the zoo: name and aliases, options with defaults, papers' figures."""
    table = Table(show_header=True, header_style="bold", show_lines=True)
    table.add_column("model", no_wrap=True)
    table.add_column("options (default)", overflow="fold", max_width=42)
    table.add_column("paper figures (multiply-adds / params)", overflow="fold")
    for model in data["models"]:
        name = model["name"] + (f"\n({', '.join(model['aliases'])})" if model["aliases"] else "")
        options = "\n".join(_option_text(o) for o in model["options"])
        papers = "\n".join(
            f"{_variant_text(f['variant'])}: {si(f['flops_madd'])}"
            + (f" / {si(f['params'])}" if f.get("params") else "")
            for f in model["paper"]
        )
        table.add_row(name, options, papers or "-")
    return table


def _variant_text(variant: dict) -> str:
    return ",".join(f"{k}={format_value(v)}" for k, v in variant.items()) or "default"
