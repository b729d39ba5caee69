"""torch -> ONNX, once per model content, cached on disk.

The legacy TorchScript exporter (``dynamo=False``) is used on purpose: measured with torch 2.13, it exported a small
net in 0.18 s where the torch.export-based default took 2.8 s and needs onnxscript; it traces the same way fvcore
does, so node names carry the module scopes the layer table uses; and with ``do_constant_folding=False`` in eval mode
it keeps batch norm as its own node, so the ONNX view counts the same parameters as the torch view (onnxruntime folds
batch norm itself when it optimizes the graph, so timings are unaffected). Its deprecation warning is silenced here.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .cache import cache_dir, evict, mark_used

OPSET = 17
INPUT_NAME = "input"  # the name every export gives the single input (onnx files keep their own)


def content_key(module: Any, input_shape: tuple[int, ...], label: str = "") -> str:
    """A digest of everything the exported file depends on: the model's label, the source code of every module class
    in it (a flag such as ``shortcut=False`` changes ``forward``, not the weights), the weights, the input shape,
    torch and the opset."""
    import torch

    digest = hashlib.sha256()
    digest.update(f"{label}|{torch.__version__}|{OPSET}|{tuple(input_shape)}|{module!r}".encode())
    for cls in sorted({type(m) for m in module.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        digest.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        try:
            digest.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):  # classes without retrievable source (C extensions, interactive sessions)
            pass
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def export_onnx(module: Any, input_shape: tuple[int, ...], *, name: str, label: str = "",
                directory: Path | None = None) -> Path:
    """The ONNX file of ``module`` (an ``nn.Module`` in eval mode) at ``input_shape``, exported once per content
    and kept in the cache (``name`` starts the file name)."""
    import torch

    target = (directory or cache_dir()) / f"{name}-{content_key(module, input_shape, label)}.onnx"
    if target.is_file():
        mark_used(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, (torch.zeros(input_shape),), tmp, dynamo=False, opset_version=OPSET,
                training=torch.onnx.TrainingMode.EVAL, do_constant_folding=False,
                input_names=[INPUT_NAME], output_names=["output"],
            )
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    evict(keep=target)
    return target
