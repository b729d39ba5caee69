"""The kernels onnxruntime runs, as the latency model sees them: kind, shapes, multiply-adds, bytes and features.

A kernel is one node of the graph onnxruntime executes after its optimizations (a convolution with its batch norm
folded and its activation and residual add fused, a layout reorder it inserted, a concat...). Its shapes are the ones
the profiler recorded as executed, so a blocked layout's padded channels are counted. Each kernel falls into one
*kind*, and each kind has its own predictor (`fit`):

==================  ================================================================================
conv.pointwise      dense 1x1 convolution            conv.spatial    dense kxk convolution (k > 1)
conv.stem           dense convolution of an image    conv.depthwise  one input channel per group
                    (at most `STEM_CHANNELS` input   conv.grouped    other grouped convolutions
                    channels)
gemm                fully connected / matrix product elementwise     activation, unfused batch norm
elementwise.binary  add, multiply... of two tensors  pool            max / average pooling
global_pool         global average / max pooling,   concat          channel concatenation
                    ReduceMean
split               channel split                    transpose       a data transpose (the shuffle)
reorder             a layout conversion the engine   reshape         reshape, flatten (views)
                    inserted                         other           anything else
==================  ================================================================================

Convolutions and pooling that run in onnxruntime's blocked NCHWc layout get the suffix ``+nchwc``: the same
operator runs different code there. A stem is its own kind because it runs other code too (in the blocked layout it
reads the plain image and writes blocks) and because inside a network it is the first kernel, on an input nothing
has touched yet: fitted with the other kxk convolutions, its context factor (measured 1.34 on the calibration's
networks) was applied to every 3x3 convolution of a network. Binary element-wise operators are their own kind
because onnxruntime runs them through its broadcasting loop, activations through MLAS: on tensors of 1-6 MB an add
moved 27-30 GB/s where a ReLU moved 55, and one fit for both was right for neither. Everything is float32 (4 bytes
per element), as every shufflebench export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

BYTES_PER_ELEMENT = 4
NCHWC_DOMAIN = "com.microsoft.nchwc"

_CONV_OPS = {"Conv", "FusedConv"}
_GEMM_OPS = {"Gemm", "MatMul", "FusedGemm", "FusedMatMul"}
_BINARY_OPS = {"Add", "Sum", "Mul", "Sub", "Div", "Max", "Min"}
_ELEMENTWISE_OPS = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "BatchNormalization", "Tanh"}
_POOL_OPS = {"MaxPool", "AveragePool"}
_GLOBAL_POOL_OPS = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean"}
_RESHAPE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}
_SIMPLE = {"Concat": "concat", "Split": "split", "Transpose": "transpose", "ReorderInput": "reorder",
           "ReorderOutput": "reorder"}

#: Every kind a kernel can have, without the layout suffix.
KINDS = ("conv.pointwise", "conv.spatial", "conv.stem", "conv.depthwise", "conv.grouped", "gemm", "elementwise",
         "elementwise.binary",
         "pool", "global_pool", "concat", "split", "transpose", "reorder", "reshape", "other")
COMPUTE_KINDS = frozenset({"conv.pointwise", "conv.spatial", "conv.stem", "conv.depthwise", "conv.grouped", "gemm"})
STEM_CHANNELS = 4  # a dense convolution reading at most this many channels reads an image (RGB, RGBA, grey)


def base_kind(kind: str) -> str:
    """The kind without its layout suffix (``conv.depthwise+nchwc`` -> ``conv.depthwise``)."""
    return kind.split("+", 1)[0]


def is_compute(kind: str) -> bool:
    """Whether kernels of ``kind`` do multiply-adds (convolutions, fully connected)."""
    return base_kind(kind) in COMPUTE_KINDS


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape else 0


def _log2(value: float) -> float:
    return math.log2(max(value, 1.0))


@dataclass(frozen=True)
class Kernel:
    """One executed kernel: what it is, the shapes it ran on, and what it costs in multiply-adds and bytes.

    inputs / outputs: executed shapes (weights are inputs too). group, kernel, stride: convolution and pooling
    attributes (1, () and () otherwise). fused: what the engine folded into it (``relu``, ``sum``...).
    """

    name: str
    op: str
    domain: str
    inputs: tuple[tuple[int, ...], ...]
    outputs: tuple[tuple[int, ...], ...]
    group: int = 1
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    fused: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """The predictor this kernel belongs to (module docstring)."""
        return classify(self.op, self.domain, self.inputs, self.group, self.kernel)

    @property
    def madd(self) -> int:
        """Multiply-adds as executed (padded channels of a blocked layout included)."""
        base = base_kind(self.kind)
        if base.startswith("conv.") and len(self.inputs) > 1 and self.outputs:
            weight = self.inputs[1]
            return _numel(self.outputs[0]) * (weight[1] if len(weight) > 1 else 1) * _numel(weight[2:])
        if base == "gemm" and self.inputs and self.outputs:
            return _numel(self.outputs[0]) * (self.inputs[0][-1] if self.inputs[0] else 0)
        return 0

    @property
    def bytes(self) -> int:
        """Bytes the kernel reads and writes: every input (weights included) and every output, once."""
        return BYTES_PER_ELEMENT * (sum(_numel(s) for s in self.inputs) + sum(_numel(s) for s in self.outputs))

    @property
    def per_group_product(self) -> tuple[int, int]:
        """A convolution as the matrix product each of its groups runs: (reduction length, outputs per position) =
        (input channels per group x kernel taps, output channels per group); (1, 1) for other kernels."""
        if base_kind(self.kind).startswith("conv.") and len(self.inputs) > 1 and len(self.inputs[1]) > 1:
            weight = self.inputs[1]
            return weight[1] * _numel(weight[2:]), max(1, weight[0] // max(self.group, 1))
        return 1, 1

    @property
    def arithmetic_intensity(self) -> float:
        """Multiply-adds per byte."""
        return self.madd / self.bytes if self.bytes else 0.0

    def features(self) -> dict[str, float]:
        """Shape features for the learned correction (log2 of sizes; the same names for every kernel of a kind)."""
        base = base_kind(self.kind)
        data = self.inputs[0] if self.inputs else ()
        out = self.outputs[0] if self.outputs else ()
        size = {"log_bytes": _log2(self.bytes)}  # where the working set sits: L1, L2, last-level cache or DRAM
        if base == "gemm":
            k = data[-1] if data else 1
            n = out[-1] if out else 1
            return {"log_m": _log2(_numel(out) / max(n, 1)), "log_n": _log2(n), "log_k": _log2(k), **size}
        channels_in = data[1] if len(data) > 1 else 1
        channels_out = out[1] if len(out) > 1 else 1
        spatial = _numel(out[2:]) if len(out) > 2 else 1
        if base.startswith("conv."):
            weight = self.inputs[1] if len(self.inputs) > 1 else (1, 1)
            return {"log_c_in": _log2(channels_in), "log_c_out": _log2(channels_out), "log_hw": _log2(spatial),
                    "log_k2": _log2(_numel(weight[2:])), "stride": float(max(self.stride or (1,))),
                    "log_c_group": _log2(weight[1] if len(weight) > 1 else 1), "sum": float("sum" in self.fused),
                    "clip": float("clip" in self.fused), **size}
        features = {"log_elements": _log2(_numel(out)), "log_c": _log2(max(channels_in, channels_out)),
                    "log_hw": _log2(_numel(data[2:]) if len(data) > 2 else 1),
                    "inputs": float(len(self.inputs)), "outputs": float(len(self.outputs)), **size}
        if base == "pool":
            features.update(log_k2=_log2(_numel(self.kernel)), stride=float(max(self.stride or (1,))))
        return features

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "domain": self.domain, "inputs": [list(s) for s in self.inputs],
                "outputs": [list(s) for s in self.outputs], "group": self.group, "kernel": list(self.kernel),
                "stride": list(self.stride), "fused": list(self.fused)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Kernel":
        return cls(str(data["name"]), str(data["op"]), str(data["domain"]),
                   tuple(tuple(int(d) for d in s) for s in data["inputs"]),
                   tuple(tuple(int(d) for d in s) for s in data["outputs"]), int(data["group"]),
                   tuple(data["kernel"]), tuple(data["stride"]), tuple(data["fused"]))


def classify(op: str, domain: str, inputs: Sequence[Sequence[int]], group: int, kernel: Sequence[int]) -> str:
    """The kind of a kernel from its op type, domain, input shapes, groups and kernel size (module docstring)."""
    layout = "+nchwc" if domain == NCHWC_DOMAIN else ""
    if op in _CONV_OPS:
        weight = inputs[1] if len(inputs) > 1 else ()
        per_group = weight[1] if len(weight) > 1 else 0
        if group > 1:
            kind = "conv.depthwise" if per_group == 1 else "conv.grouped"
        elif 0 < per_group <= STEM_CHANNELS:
            kind = "conv.stem"
        else:
            kind = "conv.pointwise" if _numel(weight[2:]) == 1 else "conv.spatial"
        return kind + layout
    if op in _GEMM_OPS:
        return "gemm"
    if op in _BINARY_OPS:
        return "elementwise.binary"
    if op in _ELEMENTWISE_OPS:
        return "elementwise"
    if op in _POOL_OPS:
        return "pool" + layout
    if op in _GLOBAL_POOL_OPS:
        return "global_pool" + layout
    if op in _RESHAPE_OPS:
        return "reshape"
    return _SIMPLE.get(op, "other")


def _fused(node: Mapping[str, Any]) -> tuple[str, ...]:
    """What the engine fused into a node: its activation, and a residual sum (a Conv's fourth input)."""
    attributes = node.get("attributes") or {}
    fused = []
    if attributes.get("activation"):
        fused.append(str(attributes["activation"]).lower())
    if node["op_type"] in _CONV_OPS and len([i for i in node.get("inputs", []) if i]) > 3:
        fused.append("sum")
    return tuple(fused)


def _inputs(profiled: Sequence[Sequence[int]], node: Mapping[str, Any]) -> tuple[tuple[int, ...], ...]:
    """A kernel's input shapes: the profiler's, with the weights it does not list filled in from the graph.

    onnxruntime packs some constant weights at load time (a fully connected layer's matrix) and frees the original,
    so the profiler lists the remaining inputs only; a weight whose shape is not next in the profiler's list is one
    of those."""
    shapes = [tuple(int(d) for d in shape) for shape in profiled]
    constants = node.get("constants") or {}
    names = [name for name in node.get("inputs", []) if name]
    if len(shapes) >= len(names):
        return tuple(shapes)
    filled, position = [], 0
    for name in names:
        constant = tuple(int(d) for d in constants[name]) if name in constants else None
        if position < len(shapes) and (constant is None or shapes[position] == constant):
            filled.append(shapes[position])
            position += 1
        elif constant is not None:
            filled.append(constant)
    return tuple(filled)


def kernels_of(node_profile: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> list[Kernel]:
    """The kernels of a profile (`board_runner.profile_nodes`) with the attributes of the optimized graph's nodes
    (`breakdown.optimized_nodes`), in execution order."""
    by_name = {node["name"]: node for node in nodes}
    kernels = []
    for entry in node_profile["kernels"]:
        node = by_name.get(entry["name"], {"op_type": entry["op"], "domain": "", "attributes": {}, "inputs": []})
        attributes = node.get("attributes") or {}
        kernels.append(Kernel(
            name=entry["name"], op=entry["op"], domain=str(node.get("domain") or ""),
            inputs=_inputs(entry.get("inputs", []), node),
            outputs=tuple(tuple(int(d) for d in s) for s in entry.get("outputs", [])),
            group=int(attributes.get("group") or 1), kernel=tuple(attributes.get("kernel_shape") or ()),
            stride=tuple(attributes.get("strides") or ()), fused=_fused(node)))
    return kernels


def reachable_from(nodes: Sequence[Mapping[str, Any]], tensor: str) -> set[str]:
    """Names of the nodes that depend on ``tensor`` (a graph input), directly or through other nodes."""
    reached: set[str] = set()
    tensors = {tensor}
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node["name"] not in reached and tensors.intersection(node.get("inputs", [])):
                reached.add(node["name"])
                tensors.update(node.get("outputs", []))
                changed = True
    return reached
