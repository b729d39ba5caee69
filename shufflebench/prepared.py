"""A model prepared once per command: built once, traced once, exported once, its reference output computed once.

Every stage after model resolution takes a `PreparedModel` instead of a `ModelRef`, so a user's builder runs exactly
once per model and command however many stages look at the model (layer table, cost, export, output check, torch
runner, operator breakdown, exact proxies). Each piece is computed on first use and kept: ``count`` never exports,
``profile`` on an ONNX file never builds anything. A slow or non-deterministic builder is therefore called once, and
every stage sees the same weights.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .cost import CostSummary, summarize
from .errors import ShufflebenchError, UsageError
from .export import INPUT_NAME, export_onnx
from .layer_table import LayerTable
from .models import ModelIdentity, ModelRef
from .user_code import require_fits, shape_text, user_code

if TYPE_CHECKING:
    import numpy as np

SEED = 0  # the seed of the input every backend feeds


def seeded_input(shape: Sequence[int], seed: int = SEED) -> "np.ndarray":
    """The input every backend feeds: uniform [-1, 1) float32 from a fixed seed, identical on every platform (the
    board runner makes it with the same function)."""
    from .measure.board_runner import make_inputs

    return make_inputs({INPUT_NAME: {"shape": list(shape), "dtype": "float32"}}, seed)[INPUT_NAME]


class PreparedModel:
    """One model of one command: its `ModelRef`, and what the stages need of it, each made on first use and kept."""

    def __init__(self, ref: ModelRef) -> None:
        self.ref = ref

    def __repr__(self) -> str:
        return f"PreparedModel({self.ref.label!r})"

    @property
    def label(self) -> str:
        return self.ref.label

    @property
    def short_label(self) -> str:
        return self.ref.short_label

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.ref.input_shape

    @property
    def is_onnx(self) -> bool:
        """An ``.onnx`` file: it has a graph, no torch module."""
        return self.ref.source == "onnx"

    @property
    def identity(self) -> ModelIdentity:
        return self.ref.identity

    @cached_property
    def module(self) -> Any:
        """The ``nn.Module`` in eval mode, built once (seeded weights); `UsageError` for an ONNX file."""
        if self.is_onnx:
            raise UsageError(f"{self.label} is an ONNX file; it has no torch module")
        return self.ref.build()

    @cached_property
    def layer_table(self) -> LayerTable:
        """One row per executed operator: traced from the module, or read from the ONNX graph."""
        require_fits(self.label, self.input_shape)
        if self.is_onnx:
            from .onnx_table import onnx_layer_table

            with user_code(self.label, f"running the ONNX graph on a {shape_text(self.input_shape)} input"):
                return onnx_layer_table(self.onnx_path, self.input_shape)
        from .torch_table import trace_layer_table

        module = self.module
        try:
            return trace_layer_table(module, self.input_shape)
        except ShufflebenchError:
            raise
        except (Exception, SystemExit):
            # Tracing runs the model's forward. If a plain forward fails too, the model is at fault: say so in one
            # line; otherwise the failure is shufflebench's own and keeps its traceback.
            self._forward_on_zeros()
            raise

    def _forward_on_zeros(self) -> None:
        import torch

        with user_code(self.label, f"forward on a {shape_text(self.input_shape)} input"), torch.no_grad():
            self.module(torch.zeros(self.input_shape))

    @cached_property
    def cost(self) -> CostSummary:
        """Whole-model multiply-adds, params and MAC."""
        return summarize(self.layer_table)

    @cached_property
    def onnx_path(self) -> Path:
        """The ONNX file: the model itself for ``.onnx`` models, else the cached export of the module."""
        if self.ref.path is not None:
            return self.ref.path
        module = self.module
        require_fits(self.label, self.input_shape)
        with user_code(self.label, "exporting to ONNX"):
            return export_onnx(module, self.input_shape, name=self.ref.name, label=self.label)

    @cached_property
    def input_name(self) -> str:
        """The name of the graph's single input (the export's own name, or the ONNX file's)."""
        if self.ref.path is None:
            return INPUT_NAME
        from .onnx_table import onnx_input_name

        return onnx_input_name(self.ref.path)

    @cached_property
    def torch_output(self) -> "np.ndarray":
        """torch's output for the seeded input (the reference a device's output must match)."""
        import torch

        module = self.module
        require_fits(self.label, self.input_shape)
        feed = torch.from_numpy(seeded_input(self.input_shape))
        with user_code(self.label, f"forward on the seeded {shape_text(self.input_shape)} input"), \
                torch.inference_mode():
            return module(feed).float().numpy()

    @cached_property
    def float64_output(self) -> "np.ndarray | None":
        """torch's output in float64 (a copy of the module and the seeded input cast up) for the seeded input: the
        model's answer without float32 rounding; None where the model does not run in float64."""
        import copy

        import torch

        module = self.module
        feed = torch.from_numpy(seeded_input(self.input_shape)).double()
        try:
            with torch.inference_mode():
                return copy.deepcopy(module).double()(feed).double().numpy()
        except Exception:  # an op without a float64 kernel, a forward that casts: float32 is the reference then
            return None

    @cached_property
    def onnxruntime_output(self) -> "np.ndarray":
        """This machine's onnxruntime output for the seeded input (the reference of an ONNX file on a board)."""
        from .measure import board_runner

        request = {"model": str(self.onnx_path), "seed": SEED,
                   "inputs": {self.input_name: {"shape": list(self.input_shape), "dtype": "float32"}}}
        opened = board_runner.open_model(request)
        return opened.session.run(opened.output_names, opened.feeds)[0]


def prepare(refs: Sequence[ModelRef]) -> list[PreparedModel]:
    """A `PreparedModel` per reference, in order."""
    return [PreparedModel(ref) for ref in refs]
