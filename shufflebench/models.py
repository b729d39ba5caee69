"""Any model argument -> a `ModelRef`: a zoo name (with variant options), an ``.onnx`` file, or
``package.module:callable``.

This is where the rules for telling them apart live, so every command accepts the same things:

* the part before the first ``:`` is a registered name or alias -> a zoo model (``shufflenet_v1:groups=3``);
* the argument ends with ``.onnx`` -> an ONNX file (its input shape comes from the graph, ``--batch`` fills a
  dynamic batch dimension, ``--input-shape`` the rest);
* ``dotted.module:attribute`` -> a callable returning an ``nn.Module``; it needs ``--input-shape``.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError
from .zoo.registry import ModelSpec, get_entry, is_registered, resolve_spec, short_label, unknown_model

_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class ModelRef:
    """A model the pipeline can count and run, with the input shape it will be given."""

    label: str
    source: str  # "zoo", "onnx" or "callable"
    input_shape: tuple[int, ...]
    spec: ModelSpec | None = None
    path: Path | None = None
    target: str | None = None

    @property
    def name(self) -> str:
        """Canonical model name: the registry name, the file stem, or the callable's path."""
        if self.spec is not None:
            return self.spec.name
        return self.path.stem if self.path is not None else str(self.target)

    @property
    def short_label(self) -> str:
        """The label with default options left out, for tables."""
        return short_label(self.spec) if self.spec is not None else self.label

    @property
    def variant(self) -> dict[str, Any]:
        return self.spec.options if self.spec is not None else {}

    def build(self):
        """The ``nn.Module`` in eval mode (zoo and callable models only), with weights drawn from a fixed seed so
        the same model gives the same weights (and the same cached export) every time."""
        if self.source == "onnx":
            raise UsageError(f"{self.label} is an ONNX file; it has no torch module")
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            if self.spec is not None:
                return get_entry(self.spec.name).builder(**self.spec.options).eval()
            return _call_target(str(self.target)).eval()


def parse_shape(text: str) -> tuple[int, ...]:
    """``1,3,224,224`` (or ``1x3x224x224``) -> a shape of positive integers; `UsageError` otherwise."""
    parts = [p for p in re.split(r"[,x\s]+", text.strip()) if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"--input-shape {text!r} is not a list of positive integers (e.g. 1,3,224,224)")
    return shape


def resolve_model(
    arg: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    batch: int = 1,
    input_shape: tuple[int, ...] | None = None,
) -> ModelRef:
    """Resolve a model argument and its options to a `ModelRef` (see the module docstring for the rules)."""
    if batch < 1:
        raise UsageError(f"--batch {batch} is not allowed; it must be a positive integer")
    name = arg.partition(":")[0].strip()
    if is_registered(name):
        if input_shape is not None:
            raise UsageError(f"--input-shape is for your own models; {name} takes --resolution and --batch")
        spec = resolve_spec(arg, overrides)
        entry = get_entry(spec.name)
        return ModelRef(spec.label, "zoo", tuple(entry.input_shape(spec.options, batch)), spec=spec)
    _refuse_zoo_options(arg, overrides)
    if arg.lower().endswith(".onnx"):
        path = Path(arg)
        if not path.is_file():
            raise UsageError(f"ONNX file {arg!r} does not exist")
        from .onnx_table import onnx_input_shape

        return ModelRef(str(path), "onnx", onnx_input_shape(path, batch=batch, override=input_shape), path=path)
    if _CALLABLE.match(arg):
        if input_shape is None:
            raise UsageError(f"{arg} needs --input-shape (e.g. --input-shape 1,3,224,224)")
        return ModelRef(arg, "callable", tuple(input_shape), target=arg)
    raise unknown_model(name)


def _refuse_zoo_options(arg: str, overrides: Mapping[str, Any] | None) -> None:
    given = sorted(k for k, v in (overrides or {}).items() if v is not None)
    if given:
        raise UsageError(f"--{given[0]} applies to zoo models only; {arg} is not one")


def _call_target(target: str):
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # a user's own package in the current directory, like `python -m`
    return import_callable(target)


def import_callable(target: str):
    """Import ``package.module:callable`` from the current ``sys.path`` and return the ``nn.Module`` it gives (the
    attribute itself when it is a module instance); `UsageError` naming what failed otherwise."""
    import torch

    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r} for {target}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    model = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"{target} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def layer_table(ref: ModelRef):
    """The layer table of any model: traced from torch for zoo and callable models, read from the ONNX graph for
    ``.onnx`` files."""
    if ref.source == "onnx":
        from .onnx_table import onnx_layer_table

        return onnx_layer_table(ref.path, ref.input_shape)
    from .torch_table import trace_layer_table

    return trace_layer_table(ref.build(), ref.input_shape)
