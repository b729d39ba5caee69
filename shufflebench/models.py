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
from typing import Any, Callable, Mapping, Sequence

from .errors import UsageError
from .options import VariantOptions
from .user_code import user_code
from .zoo.catalog import ModelSpec, get_entry, is_registered, resolve_spec, short_label, unknown_model

_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class ModelIdentity:
    """What a result says about the model it describes: names, variant and input shape (plain data, no module)."""

    name: str
    label: str
    short_label: str
    source: str
    variant: dict[str, Any]
    input_shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """The keys every result file carries about its model."""
        return {"model": self.name, "label": self.label, "short_label": self.short_label, "source": self.source,
                "variant": dict(self.variant), "input_shape": list(self.input_shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelIdentity":
        """Inverse of `to_dict` (extra keys of the enclosing result are ignored)."""
        return cls(data["model"], data["label"], data["short_label"], data["source"], dict(data["variant"]),
                   tuple(data["input_shape"]))


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
        """The zoo options of this variant (empty for ONNX files and callables)."""
        return self.spec.options if self.spec is not None else {}

    @property
    def identity(self) -> ModelIdentity:
        """The model as results name it."""
        return ModelIdentity(self.name, self.label, self.short_label, self.source, self.variant, self.input_shape)

    def build(self):
        """The ``nn.Module`` in eval mode (zoo and callable models only), with weights drawn from a fixed seed so
        the same model gives the same weights (and the same cached export) every time."""
        if self.source == "onnx":
            raise UsageError(f"{self.label} is an ONNX file; it has no torch module")
        if self.spec is not None:
            spec = self.spec
            return seeded(lambda: get_entry(spec.name).builder(**spec.options)).eval()
        return seeded(lambda: _call_target(str(self.target))).eval()


def seeded(make: Callable[[], Any]) -> Any:
    """What ``make`` builds, with torch's random generator seeded at 0 while it runs (and restored after): the same
    builder gives the same weights, and so the same cached export, every time."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return make()


def is_zoo_model(arg: str) -> bool:
    """Whether a model argument names a zoo model (``name`` or ``name:options``) rather than a file or a callable."""
    return is_registered(arg.partition(":")[0].strip())


def resolve_models(args: Sequence[str], options: VariantOptions = VariantOptions(), *, zoo: bool = False,
                   default_batch: int = 1) -> list[ModelRef]:
    """Several model arguments, then (with ``zoo``) every registered model at its default variant. The zoo variant
    flags apply to the zoo models among them and ``input_shape`` to the others; an option that no model takes is
    refused."""
    from .zoo.catalog import entries

    names = list(args) + ([entry.name for entry in entries()] if zoo else [])
    if not names:
        raise UsageError("no model given: name one or more models, or use --zoo")
    in_zoo = [is_zoo_model(name) for name in names]
    zoo_flags = {"width": options.width, "groups": options.groups, "resolution": options.resolution}
    for flag, value in zoo_flags.items():
        if value is not None and not any(in_zoo):
            raise UsageError(f"--{flag} applies to zoo models, and none is given; use --input-shape")
    if options.input_shape is not None and all(in_zoo):
        raise UsageError("--input-shape is for your own models, and only zoo models are given; use --resolution")
    batch = options.batch if options.batch is not None else default_batch
    return [resolve_model(name, overrides=zoo_flags, batch=batch) if zoo_model
            else resolve_model(name, batch=batch, input_shape=options.input_shape)
            for name, zoo_model in zip(names, in_zoo)]


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
        if path.is_dir():
            raise UsageError(f"ONNX file {arg!r} is a folder; give a .onnx file")
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


def import_attribute(target: str, what: str = "") -> Any:
    """The attribute ``package.module:attribute`` names (dots allowed on both sides), imported from the current
    ``sys.path``; `UsageError` naming what failed otherwise (``what`` says what the target is for)."""
    module_name, _, attr = target.partition(":")
    with user_code(what or target, f"importing {module_name}"):
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise UsageError(f"cannot import {module_name!r} for {what or target}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def import_callable(target: str):
    """Import ``package.module:callable`` from the current ``sys.path`` and return the ``nn.Module`` it gives (the
    attribute itself when it is a module instance); `UsageError` naming what failed otherwise."""
    import torch

    obj = import_attribute(target)
    if isinstance(obj, torch.nn.Module):
        return obj
    if not callable(obj):
        raise UsageError(f"{target} is a value of type {type(obj).__name__}, not an nn.Module or a callable that "
                         "returns one")
    with user_code(target, "calling it"):
        model = obj()
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"{target} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def resolve_variant(arg: str, options: VariantOptions, *, default_batch: int = 1) -> ModelRef:
    """The `ModelRef` of one model argument under the shared model options (``default_batch`` when none is given)."""
    overrides = {"width": options.width, "groups": options.groups, "resolution": options.resolution}
    batch = options.batch if options.batch is not None else default_batch
    return resolve_model(arg, overrides=overrides, batch=batch, input_shape=options.input_shape)
