"""The model registry: named, parametrized network builders and their variant options.

This module is pure: it holds the registered entries and the rules for resolving a model argument, and imports no
network. The networks register themselves (`networks`), and `catalog` is the loader that imports them; everything
outside the zoo asks `catalog`, so the import graph runs one way: catalog -> networks -> registry.

A builder is registered once under a canonical name (and optional aliases) with the options it accepts. A *spec*
(`ModelSpec`) is a canonical name plus a fully resolved variant; it is plain, hashable data and the unit every later
stage talks about. Variant options come from flags (``--width 0.5``) or inline in the model argument
(``shufflenet_v1:groups=3,width=0.5``); both go through `resolve_spec`, which refuses unknown names, unknown options
and values that are not offered, with one line naming the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import UsageError, allowed

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One variant option of a model: its type, default and allowed values (``choices=None`` means any value
    accepted by ``minimum``)."""

    name: str
    type: type
    default: Any
    choices: tuple | None = None
    minimum: float | None = None
    help: str = ""

    def coerce(self, model: str, raw: Any) -> Any:
        """Turn a raw value (a string from the command line, or a Python value) into this option's type and check
        it is allowed; raise `UsageError` otherwise."""
        value = self._convert(model, raw)
        if self.choices is not None and value not in self.choices:
            raise UsageError(
                f"{model}: {self.name}={format_value(raw)} is not offered; allowed: {allowed(self.choices)}"
            )
        if self.minimum is not None and value < self.minimum:
            raise UsageError(f"{model}: {self.name}={format_value(raw)} is too small; the minimum is {format_value(self.minimum)}")
        return value

    def _convert(self, model: str, raw: Any) -> Any:
        kind = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[self.type]
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise UsageError(f"{model}: {self.name}={raw!s} is not {kind}; allowed: true, false")
        try:
            if self.type is int:
                number = float(raw)
                if not math.isfinite(number) or number != int(number):
                    raise ValueError
                return int(number)
            if self.type is float:
                number = float(raw)
                if not math.isfinite(number):
                    raise ValueError
                return number
            return str(raw)
        except (TypeError, ValueError):
            hint = f"; allowed: {allowed(self.choices)}" if self.choices else ""
            raise UsageError(f"{model}: {self.name}={raw!s} is not {kind}{hint}") from None


@dataclass(frozen=True)
class ModelEntry:
    """A registered network: how to build it, which options it takes, and the shape of its input.

    ``input_shape(variant, batch)`` returns the NCHW input the network expects for that variant.
    """

    name: str
    builder: Callable[..., Any]
    options: tuple[Option, ...]
    input_shape: Callable[[Mapping[str, Any], int], tuple[int, ...]]
    family: str
    summary: str
    aliases: tuple[str, ...] = ()

    def option(self, name: str) -> Option:
        """The option called ``name``; `UsageError` naming the allowed options otherwise."""
        for opt in self.options:
            if opt.name == name:
                return opt
        names = [o.name for o in self.options] or ["(none)"]
        raise UsageError(f"{self.name}: unknown option {name!r}; allowed: {allowed(names)}")

    @property
    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}


@dataclass(frozen=True)
class ModelSpec:
    """A registered model with every variant option resolved: plain, hashable, printable data."""

    name: str
    variant: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.variant)

    @property
    def label(self) -> str:
        """The inline form, e.g. ``shufflenet_v1:groups=3,width=0.5``; parsing it gives this spec back."""
        if not self.variant:
            return self.name
        return self.name + ":" + ",".join(f"{k}={format_value(v)}" for k, v in self.variant)


_ENTRIES: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    name: str,
    *,
    family: str,
    summary: str,
    options: tuple[Option, ...] = (),
    input_shape: Callable[[Mapping[str, Any], int], tuple[int, ...]],
    aliases: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a builder (called with the resolved options as keyword arguments) under ``name`` and ``aliases``.

    A name or alias that is already taken is refused with `ValueError`, never silently replaced.
    """

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        for key in (name, *aliases):
            if key in _ENTRIES or key in _ALIASES:
                raise ValueError(f"model name {key!r} is already registered")
        _ENTRIES[name] = ModelEntry(name, builder, tuple(options), input_shape, family, summary, tuple(aliases))
        for alias in aliases:
            _ALIASES[alias] = name
        return builder

    return decorate


def short_label(spec: "ModelSpec") -> str:
    """The inline form with only the options that differ from their defaults (``shufflenet_v1:width=0.5``)."""
    defaults = get_entry(spec.name).defaults
    changed = [(k, v) for k, v in spec.variant if defaults.get(k) != v]
    return spec.name + (":" + ",".join(f"{k}={format_value(v)}" for k, v in changed) if changed else "")


def entries() -> list[ModelEntry]:
    """Every registered model, in registration order."""
    return list(_ENTRIES.values())


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered model name or alias."""
    return name in _ENTRIES or name in _ALIASES


def get_entry(name: str) -> ModelEntry:
    """The entry for a canonical name or an alias; `UsageError` listing the known names otherwise."""
    canonical = _ALIASES.get(name, name)
    if canonical not in _ENTRIES:
        raise unknown_model(name)
    return _ENTRIES[canonical]


def unknown_model(name: str) -> UsageError:
    """The error for a model argument that is no zoo name, no .onnx file and no module:callable."""
    return UsageError(
        f"unknown model {name!r}; known: {allowed(_ENTRIES)} (or an .onnx file, or package.module:callable)"
    )


def parse_inline(text: str) -> tuple[str, dict[str, str]]:
    """Split ``name:key=value,key=value`` into the name and raw option strings."""
    name, _, rest = text.partition(":")
    raw: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"{name}: option {item!r} is not key=value (e.g. {name}:width=0.5)")
        if key.strip() in raw:
            raise UsageError(f"{name}: option {key.strip()!r} is given twice")
        raw[key.strip()] = value.strip()
    return name.strip(), raw


def resolve_spec(text: str, overrides: Mapping[str, Any] | None = None) -> ModelSpec:
    """Resolve a model argument (name, alias or inline form) and flag overrides to a full `ModelSpec`.

    Flag values (``overrides``; ``None`` values are ignored) take precedence over inline ones. An override for an
    option the model does not have is an error, so ``--groups`` on ShuffleNet V2 is not silently dropped.
    """
    name, raw = parse_inline(text)
    entry = get_entry(name)
    given: dict[str, Any] = dict(raw)
    for key in given:
        entry.option(key)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        option = entry.option(key)
        if key in raw and option.coerce(entry.name, raw[key]) != option.coerce(entry.name, value):
            raise UsageError(f"{entry.name}: {key} is given twice, {key}={raw[key]} inline and --{key} "
                             f"{format_value(value)}; give it once")
        given[key] = value
    variant = tuple(
        (opt.name, opt.coerce(entry.name, given[opt.name]) if opt.name in given else opt.default)
        for opt in entry.options
    )
    return ModelSpec(entry.name, variant)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return f"{value:.1f}"
    return str(value)
