"""The operator vocabulary and the cost of one operator, computed from its input and output shapes.

Every executed operator of a model maps to one `OpKind`. Its cost has three parts that are never mixed:

* ``flops_madd`` -- multiply-adds of convolutions and fully connected layers, as the papers count FLOPs;
* ``other_ops``  -- the arithmetic the papers leave out (batch norm, activations, pooling, element-wise add/mul),
  one per element processed, reported separately;
* memory traffic -- the tensors an operator reads and writes, from which the memory access cost (MAC, ShuffleNet V2
  section 2) is summed in elements and in bytes.

The rules here are pure functions of shapes, shared by the torch (`layer_table`) and ONNX (`onnx_table`) views so
the two agree by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from .errors import UsageError


class OpKind(str, Enum):
    """One small vocabulary of operator kinds, used in the layer table, the guideline checks and every report."""

    CONV = "conv"
    DEPTHWISE_CONV = "depthwise_conv"
    GROUP_CONV = "group_conv"
    LINEAR = "linear"
    BATCH_NORM = "batch_norm"
    ACTIVATION = "activation"
    ADD = "add"
    MUL = "mul"
    CONCAT = "concat"
    SPLIT = "split"
    SHUFFLE = "channel_shuffle"
    TRANSPOSE = "transpose"
    POOL = "pool"
    REDUCE = "reduce"
    NORM = "norm"
    RESIZE = "resize"
    GATHER = "gather"
    PAD = "pad"
    RESHAPE = "reshape"
    COPY = "copy"
    OTHER = "other"


#: Kinds that are element-wise in the ShuffleNet V2 sense (guideline G4): cheap in FLOPs, not in MAC.
ELEMENTWISE = frozenset({OpKind.ACTIVATION, OpKind.ADD, OpKind.MUL, OpKind.BATCH_NORM, OpKind.NORM})
#: Kinds whose cost is dominated by multiply-adds.
COMPUTE = frozenset({OpKind.CONV, OpKind.DEPTHWISE_CONV, OpKind.GROUP_CONV, OpKind.LINEAR})

#: Bytes per element of every dtype a tensor may have, by canonical name (`torch_table` and `onnx_table` translate
#: their own spellings to these). A dtype missing here is refused, never counted at a guessed width.
DTYPE_BYTES = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
    "float8_e4m3fn": 1, "float8_e4m3fnuz": 1, "float8_e5m2": 1, "float8_e5m2fnuz": 1,
    "complex128": 16, "complex64": 8,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1, "bool": 1,
    "qint32": 4, "qint8": 1, "quint8": 1,
}


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of ``dtype``; `UsageError` naming it when its width is not known."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise UsageError(f"tensor dtype {dtype!r} has no known width in bytes, so its MAC cannot be counted; known: "
                         f"{', '.join(DTYPE_BYTES)}") from None


@dataclass(frozen=True)
class Tensor:
    """A tensor an operator touches: its shape and dtype name."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * dtype_bytes(self.dtype)


@dataclass(frozen=True)
class OpCost:
    """The cost of one operator. ``reads``/``writes`` list the tensors it moves; a pure view moves none.

    ``estimated``: no rule of its own knows this operator; the generic rule (read every input, write every output)
    costed it. ``deployed``: the operator's cost as an inference engine (onnxruntime) runs it, where that differs from
    eager torch: a channel split is a view in torch and a copy in the engine, a transpose the engine materializes
    itself while torch copies only in the ``contiguous`` after it, SiLU runs as two kernels.
    """

    kind: OpKind
    flops_madd: int = 0
    other_ops: int = 0
    params: int = 0
    reads: tuple[Tensor, ...] = ()
    writes: tuple[Tensor, ...] = ()
    weights: tuple[Tensor, ...] = ()
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    groups: int | None = None
    estimated: bool = False
    deployed: "OpCost | None" = None

    @property
    def mac_elements(self) -> int:
        """Memory access cost in elements: every input read, every output written, every weight read."""
        return sum(t.numel for t in (*self.reads, *self.writes, *self.weights))

    @property
    def mac_bytes(self) -> int:
        """Memory access cost in bytes, each tensor at its own dtype's width."""
        return sum(t.nbytes for t in (*self.reads, *self.writes, *self.weights))


def conv_kind(c_in: int, c_out: int, groups: int) -> OpKind:
    """Dense when ``groups == 1``; depthwise when every group holds one input channel; grouped otherwise."""
    if groups == 1:
        return OpKind.CONV
    if groups == c_in:
        return OpKind.DEPTHWISE_CONV
    return OpKind.GROUP_CONV


def conv_cost(x: Tensor, weight: Tensor, out: Tensor, *, bias: Tensor | None, stride, groups: int) -> OpCost:
    """Convolution of any kernel, stride and groups (NCHW input, weight ``(c_out, c_in/g, kh, kw)``).

    flops_madd = N * H_out * W_out * c_out * (c_in/g) * kh * kw. MAC = input + output + weights (+ bias), which for
    a 1x1 convolution without bias is the paper's Eq. 1: hw(c1 + c2) + c1 * c2.
    """
    c_out, c_in_per_group, *kernel = weight.shape
    c_in = x.shape[1]
    if c_in != c_in_per_group * groups:
        raise ValueError(f"convolution weight {weight.shape} does not fit input {x.shape} with groups={groups}")
    spatial_out = math.prod(out.shape[2:])
    madd = out.shape[0] * spatial_out * c_out * c_in_per_group * math.prod(kernel)
    weights = (weight,) if bias is None else (weight, bias)
    return OpCost(
        conv_kind(c_in, c_out, groups), flops_madd=madd, params=sum(w.numel for w in weights),
        reads=(x,), writes=(out,), weights=weights, kernel=tuple(kernel), stride=tuple(stride), groups=groups,
    )


def linear_cost(x: Tensor, weight: Tensor, out: Tensor, *, bias: Tensor | None) -> OpCost:
    """Fully connected layer, weight ``(out_features, in_features)``: madds = rows * in * out."""
    out_features, in_features = weight.shape
    rows = x.numel // in_features
    weights = (weight,) if bias is None else (weight, bias)
    return OpCost(
        OpKind.LINEAR, flops_madd=rows * in_features * out_features, params=sum(w.numel for w in weights),
        reads=(x,), writes=(out,), weights=weights,
    )


def batch_norm_cost(x: Tensor, out: Tensor, *, channels: int, affine: bool) -> OpCost:
    """Unfused batch norm: reads the input and its four per-channel vectors, writes the output; one op per element.

    Params are the affine scale and shift (2C) when present; running statistics are buffers, not parameters.
    """
    stats = Tensor((4 * channels,), x.dtype)
    return OpCost(
        OpKind.BATCH_NORM, other_ops=x.numel, params=2 * channels if affine else 0,
        reads=(x,), writes=(out,), weights=(stats,),
    )


def elementwise_cost(kind: OpKind, inputs: tuple[Tensor, ...], out: Tensor) -> OpCost:
    """An element-wise operator (activation, add, mul, ...): reads every tensor input, writes the output."""
    return OpCost(kind, other_ops=out.numel, reads=tuple(inputs), writes=(out,))


def pool_cost(x: Tensor, out: Tensor, *, kernel=None, stride=None) -> OpCost:
    """Pooling (max, average, global): reads the input once, writes the output; one op per input element."""
    return OpCost(
        OpKind.POOL, other_ops=x.numel, reads=(x,), writes=(out,),
        kernel=tuple(kernel) if kernel else None, stride=tuple(stride) if stride else None,
    )


def copy_cost(kind: OpKind, inputs: tuple[Tensor, ...], outputs: tuple[Tensor, ...]) -> OpCost:
    """A materializing copy (concat, a shuffle's transpose made contiguous, a split that copies): read + write."""
    return OpCost(kind, reads=tuple(inputs), writes=tuple(outputs))


def view_cost(kind: OpKind, deployed: OpCost | None = None) -> OpCost:
    """A pure view (reshape, transpose, a split into views): no arithmetic and no memory traffic; ``deployed`` is
    what it costs where the engine materializes it."""
    return OpCost(kind, deployed=deployed)


def gather_cost(data: Tensor, indices: Tensor | None, out: Tensor) -> OpCost:
    """Gather / index_select: the indices and one output's worth of the data are read, the output written."""
    read_data = Tensor(out.shape, data.dtype)
    return OpCost(OpKind.GATHER, reads=(read_data,) if indices is None else (read_data, indices), writes=(out,))


def norm_cost(x: Tensor, out: Tensor, *, weights: tuple[Tensor, ...]) -> OpCost:
    """Layer, group or instance norm: reads the input (statistics and scaling in one pass each, counted once, as for
    batch norm) and its affine weights, writes the output; one op per element."""
    return OpCost(OpKind.NORM, other_ops=x.numel, params=sum(w.numel for w in weights), reads=(x,), writes=(out,),
                  weights=weights)


def generic_cost(inputs: tuple[Tensor, ...], outputs: tuple[Tensor, ...], kind: OpKind = OpKind.OTHER) -> OpCost:
    """An operator no rule knows: it reads every tensor input and writes every output (the least any implementation
    moves); marked ``estimated`` so reports can say how much of the MAC rests on it."""
    return OpCost(kind, reads=tuple(inputs), writes=tuple(outputs), estimated=True)
