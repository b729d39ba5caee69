"""Search spaces: a SPACE argument -> the architectures of a sweep (`Architecture`, plain data a worker can rebuild).

Three forms, told apart the way `models` tells model arguments apart:

* a zoo grid written inline: the zoo options of one model with ``|`` between the values to try,
  ``shufflenet_v1:groups=1|2|3|4|8,width=0.5|1.0|2.0`` (15 architectures; options left out keep their default);
* ``package.module:space``, a callable of your own returning named builders: ``{name: (builder, input_shape)}`` or
  an iterable of ``(name, builder, input_shape)`` (a builder takes no argument and returns an ``nn.Module``); the
  callable is called again on each worker, which builds only the architectures it is given;
* a folder of ``.onnx`` files (every one below it, in name order), or one ``.onnx`` file.

An `Architecture` is what the store and the workers talk about: its `key` names it for good (the canonical zoo
label, the callable's name, the file and its content digest, always with the input shape), so a rerun finds what is
already done. `work.prepare_architecture` turns one back into a model, on whichever machine runs it.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import UsageError
from ..files import is_dir

SOURCES = ("zoo", "callable", "onnx")
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_FORMS = "a zoo grid (shufflenet_v1:groups=1|2|3,width=0.5|1.0), a folder of .onnx files, or package.module:space"


@dataclass(frozen=True, order=True)
class Architecture:
    """One point of a search space, as plain data: what it is (``source`` and ``target``), the input it gets, and
    the `key` the store files it under.

    target: the zoo label (``shufflenet_v1:groups=3,width=0.5,resolution=224``), ``package.module:space/name``, or
    the absolute path of the ``.onnx`` file. digest: the file's SHA-256 (``.onnx`` only), checked again on the worker.
    """

    source: str
    target: str
    input_shape: tuple[int, ...]
    digest: str = ""
    label: str = field(default="", compare=False)  # the short name for tables (zoo defaults left out)

    @property
    def key(self) -> str:
        """The name this architecture has in every store: target, content digest (files) and input shape."""
        shape = "x".join(str(d) for d in self.input_shape)
        content = f"#{self.digest[:12]}" if self.digest else ""
        return f"{self.target}{content}@{shape}"

    def to_dict(self) -> dict[str, Any]:
        """The spec a store row keeps (`from_dict` reads it back)."""
        return {"source": self.source, "target": self.target, "input_shape": list(self.input_shape),
                "digest": self.digest, "label": self.label or self.target}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Architecture":
        if data.get("source") not in SOURCES:
            raise ValueError(f"architecture source {data.get('source')!r}; allowed: {', '.join(SOURCES)}")
        return cls(str(data["source"]), str(data["target"]), tuple(int(d) for d in data["input_shape"]),
                   str(data.get("digest", "")), str(data.get("label", "")))


def parse_space(args: Sequence[str], *, batch: int = 1) -> list[Architecture]:
    """Every architecture of one or more SPACE arguments, in order, each once; `UsageError` (one line naming the
    bad part) for anything that is not one of the three forms."""
    if batch < 1:
        raise UsageError(f"--batch {batch} is not allowed; it must be a positive integer")
    if not args:
        raise UsageError(f"no search space given: name {_FORMS}")
    found: dict[str, Architecture] = {}
    for arg in args:
        for arch in _parse_one(arg.strip(), batch):
            found.setdefault(arch.key, arch)
    return list(found.values())


def sample(architectures: Sequence[Architecture], count: int | None, seed: int = 0) -> list[Architecture]:
    """``count`` architectures drawn without replacement (the same ones for the same seed), in space order; all of
    them when ``count`` is None or not smaller."""
    if count is None or count >= len(architectures):
        return list(architectures)
    if count < 1:
        raise UsageError(f"--sample {count} is not allowed; it must be a positive integer")
    chosen = set(random.Random(seed).sample(range(len(architectures)), count))
    return [arch for i, arch in enumerate(architectures) if i in chosen]


def _parse_one(arg: str, batch: int) -> list[Architecture]:
    name = arg.partition(":")[0].strip()
    path = Path(arg)
    if arg.lower().endswith(".onnx") or is_dir(path):
        return _onnx_files(path, batch)
    if _is_zoo(name):
        return _zoo_grid(arg, batch)
    if _CALLABLE.match(arg):
        return _callable_space(arg)
    raise UsageError(f"search space {arg!r} is not {_FORMS}")


def _is_zoo(name: str) -> bool:
    from ..zoo.catalog import is_registered

    return is_registered(name)


def _zoo_grid(arg: str, batch: int) -> list[Architecture]:
    from ..models import resolve_model
    from ..zoo.registry import parse_inline

    name, raw = parse_inline(arg)
    axes: list[list[tuple[str, str]]] = []
    for key, text in raw.items():
        values = [value.strip() for value in text.split("|")]
        if not all(values):
            raise UsageError(f"{name}: option {key}={text!r} has an empty value; write values as {key}=a|b|c")
        if len(set(values)) != len(values):
            raise UsageError(f"{name}: option {key}={text!r} repeats a value")
        axes.append([(key, value) for value in values])
    architectures = []
    for combination in itertools.product(*axes):
        inline = name + (":" + ",".join(f"{k}={v}" for k, v in combination) if combination else "")
        ref = resolve_model(inline, batch=batch)  # refuses unknown options and values the model does not offer
        architectures.append(Architecture("zoo", ref.label, ref.input_shape, label=ref.short_label))
    return architectures


def _onnx_files(path: Path, batch: int) -> list[Architecture]:
    from ..onnx_table import onnx_input_shape

    if path.is_dir():
        files = sorted(p for p in path.rglob("*.onnx") if p.is_file())
        if not files:
            raise UsageError(f"search space {str(path)!r}: the folder holds no .onnx file")
    elif path.is_file():
        files = [path]
    else:
        raise UsageError(f"search space {str(path)!r}: no such .onnx file or folder")
    root = path if path.is_dir() else path.parent
    return [Architecture("onnx", str(file.resolve()), tuple(onnx_input_shape(file, batch=batch)), file_digest(file),
                         label=str(file.relative_to(root))) for file in files]


def _callable_space(target: str) -> list[Architecture]:
    return [Architecture("callable", f"{target}/{name}", shape, label=name)
            for name, (_, shape) in space_builders(target).items()]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@cache  # once per process: the driver lists the space, each worker builds from it
def space_builders(target: str) -> dict[str, tuple[Callable[[], Any], tuple[int, ...]]]:
    """``package.module:space`` imported (the current directory first on the path, like ``python -m``), called,
    and its answer checked: name -> (builder, input shape)."""
    from ..models import import_attribute

    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    obj = import_attribute(target, f"the space {target}")
    answer = obj() if callable(obj) else obj
    expected = "{name: (builder, input_shape)} or (name, builder, input_shape) items"
    try:
        entries = [(name, *value) for name, value in answer.items()] if isinstance(answer, Mapping) \
            else [tuple(item) for item in answer]
    except TypeError:
        raise UsageError(f"the space {target} returned {type(answer).__name__}; expected {expected}") from None
    builders: dict[str, tuple[Callable[[], Any], tuple[int, ...]]] = {}
    for entry in entries:
        if len(entry) != 3 or not isinstance(entry[0], str) or not callable(entry[1]):
            raise UsageError(f"the space {target} gave {entry!r}; expected {expected}")
        name, builder, shape = entry
        if not name or "/" in name or name in builders:
            raise UsageError(f"the space {target}: name {name!r} is empty, holds '/', or is given twice")
        builders[name] = (builder, _shape(target, name, shape))
    if not builders:
        raise UsageError(f"the space {target} is empty")
    return builders


def _shape(target: str, name: str, shape: Any) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
        if dims and all(d > 0 and d == float(s) for d, s in zip(dims, shape)):
            return dims
    except (TypeError, ValueError):
        pass
    raise UsageError(f"the space {target}: {name} has input shape {shape!r}; give positive integers, e.g. (1, 3, 224, "
                     "224)")
