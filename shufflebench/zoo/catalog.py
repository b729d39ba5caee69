"""The zoo as the rest of shufflebench sees it: the registry with every shipped network registered.

Importing this module imports `networks` (and so torch), whose modules register themselves with `registry`; the
registry itself never imports a network. Everything outside the zoo looks models up here.
"""

from __future__ import annotations

from . import networks  # noqa: F401  (importing registers the shipped networks, in their order)
from .registry import (
    ModelEntry,
    ModelSpec,
    Option,
    entries,
    format_value,
    get_entry,
    is_registered,
    resolve_spec,
    short_label,
    unknown_model,
)

__all__ = ["ModelEntry", "ModelSpec", "Option", "entries", "format_value", "get_entry", "is_registered",
           "resolve_spec", "short_label", "unknown_model"]
