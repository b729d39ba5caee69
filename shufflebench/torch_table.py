"""The layer table of a torch model, from its TorchScript trace, through fvcore's analysis engine.

fvcore walks the traced graph and calls one handle per operator kind with the operator's inputs and outputs. The
handles here compute the operator's full cost (`ops`), record it as a row, and hand fvcore back the multiply-adds,
so fvcore's total and the table's total are the same number from the same pass. fvcore's built-in list of silently
ignored operators is emptied: every operator is either handled, shape bookkeeping (``aten::size`` and friends), or
reported as unknown -- a ReLU or a channel shuffle is never quietly free.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, Callable

from .errors import SetupError
from .layer_table import LayerTable, RowDraft, finish_table
from .ops import OpCost, OpKind, Tensor, batch_norm_cost, conv_cost, copy_cost, elementwise_cost, gather_cost
from .ops import generic_cost, linear_cost, norm_cost, pool_cost, view_cost

#: Operators that compute shapes, not tensors: no row, no cost.
SHAPE_BOOKKEEPING = (
    "aten::size", "aten::Int", "aten::ScalarImplicit", "aten::floor_divide", "aten::floordiv", "aten::__getitem__",
    "aten::len", "aten::dim", "aten::numel",
)

#: One element in, one element out (`elementwise_cost`, kind ACTIVATION): activations and unary math.
_ACTIVATIONS = (
    "relu", "relu6", "hardtanh", "clamp", "clamp_min", "clamp_max", "sigmoid", "hardswish", "hardsigmoid", "gelu",
    "tanh", "leaky_relu", "elu", "selu", "celu", "softplus", "softsign", "mish", "log_sigmoid", "hardshrink",
    "abs", "neg", "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "erf", "sign", "floor", "ceil", "round",
    "square", "pow", "logit", "threshold", "nan_to_num",
)
#: Several tensors in, one out, element by element.
_BINARY = {
    "add": OpKind.ADD, "sub": OpKind.ADD, "rsub": OpKind.ADD, "maximum": OpKind.ADD, "minimum": OpKind.ADD,
    "mul": OpKind.MUL, "div": OpKind.MUL, "where": OpKind.MUL, "masked_fill": OpKind.MUL, "addcmul": OpKind.MUL,
}
#: No data moves in torch. ``deployed`` marks those the inference engine materializes: onnxruntime's Split, Slice
#: and Gather write new tensors, its Transpose copies (torch copies only in the ``contiguous`` after a transpose).
_VIEWS = {
    "view": OpKind.RESHAPE, "reshape": OpKind.RESHAPE, "flatten": OpKind.RESHAPE, "squeeze": OpKind.RESHAPE,
    "unsqueeze": OpKind.RESHAPE, "expand": OpKind.RESHAPE, "expand_as": OpKind.RESHAPE, "detach": OpKind.RESHAPE,
    "dropout": OpKind.RESHAPE, "feature_dropout": OpKind.RESHAPE, "alpha_dropout": OpKind.RESHAPE,
    "type_as": OpKind.RESHAPE, "alias": OpKind.RESHAPE, "clone": OpKind.RESHAPE, "identity": OpKind.RESHAPE,
    "transpose": OpKind.TRANSPOSE, "permute": OpKind.TRANSPOSE, "t": OpKind.TRANSPOSE,
    "chunk": OpKind.SPLIT, "split": OpKind.SPLIT, "split_with_sizes": OpKind.SPLIT, "unbind": OpKind.SPLIT,
    "slice": OpKind.SPLIT, "select": OpKind.SPLIT, "narrow": OpKind.SPLIT, "tensor_split": OpKind.SPLIT,
}
_DEPLOYED_COPIES = {"transpose", "permute", "t", "chunk", "split", "split_with_sizes", "unbind", "slice", "select",
                    "narrow", "tensor_split"}
_POOLS = ("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
          "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "mean")
_REDUCTIONS = ("sum", "amax", "amin", "max", "min", "std", "var", "norm", "logsumexp", "prod", "argmax", "argmin")
_RESIZES = ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_bilinear2d",
            "upsample_bicubic2d", "upsample_linear1d", "upsample_trilinear3d", "grid_sampler", "pixel_shuffle",
            "pixel_unshuffle")
_PADS = ("constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d",
         "replication_pad3d", "zero_pad2d")
_CREATIONS = ("zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like", "new_zeros",
              "new_ones", "new_empty", "new_full", "rand", "randn", "rand_like", "randn_like")
#: TorchScript's scalar type names -> the canonical dtype names of `ops.DTYPE_BYTES`.
TORCH_DTYPES = {
    "Float": "float32", "Double": "float64", "Half": "float16", "BFloat16": "bfloat16", "Long": "int64",
    "Int": "int32", "Short": "int16", "Char": "int8", "Byte": "uint8", "Bool": "bool", "ComplexFloat": "complex64",
    "ComplexDouble": "complex128", "Float8_e4m3fn": "float8_e4m3fn", "Float8_e5m2": "float8_e5m2",
    "Float8_e4m3fnuz": "float8_e4m3fnuz", "Float8_e5m2fnuz": "float8_e5m2fnuz", "QInt8": "qint8", "QUInt8": "quint8",
    "QInt32": "qint32", "UInt16": "uint16", "UInt32": "uint32", "UInt64": "uint64",
}


def _tensor(value) -> Tensor | None:
    """The shape and dtype of a traced value, or None when it is not a tensor of known shape."""
    if not value.isCompleteTensor():
        return None
    dtype = str(value.type().scalarType())
    return Tensor(tuple(value.type().sizes()), TORCH_DTYPES.get(dtype, dtype))


def _const(value) -> Any:
    """The Python value of a constant input (scalars, lists of scalars); None when it is computed."""
    node = value.node()
    if node.kind() == "prim::Constant":
        return value.toIValue()
    if node.kind() == "prim::ListConstruct":
        return [_const(v) for v in node.inputs()]
    return None


class ShapeUnknown(Exception):
    """A traced value whose shape the trace did not record: its operator cannot be costed (reported as unknown)."""


def _t(value) -> Tensor:
    """The shape and dtype of a traced tensor the rule needs; `ShapeUnknown` when the trace did not record it."""
    tensor = _tensor(value)
    if tensor is None:
        raise ShapeUnknown(value.debugName())
    return tensor


def _list_items(value) -> list:
    """The values inside a traced list (``torch.cat``'s input), or the value itself."""
    node = value.node()
    return list(node.inputs()) if node.kind() == "prim::ListConstruct" else [value]


def _tensors(values) -> tuple[Tensor, ...]:
    return tuple(t for t in (_tensor(v) for v in values) if t is not None)


def _outputs(outputs) -> tuple[Tensor, ...]:
    # A split returns a list; its tensors appear on the ListUnpack that consumes it.
    found = list(_tensors(outputs))
    for out in outputs:
        for use in out.uses():
            if use.user.kind() == "prim::ListUnpack":
                found.extend(_tensors(use.user.outputs()))
    return tuple(found)


# Each rule maps (inputs, outputs) of one traced operator to its cost.
def _conv(inputs, outputs) -> OpCost:
    stride = _const(inputs[3]) or [1, 1]
    groups = _const(inputs[8]) or 1
    return conv_cost(_t(inputs[0]), _t(inputs[1]), _t(outputs[0]),
                     bias=_tensor(inputs[2]), stride=stride, groups=groups)


def _linear(inputs, outputs) -> OpCost:
    return linear_cost(_t(inputs[0]), _t(inputs[1]), _t(outputs[0]), bias=_tensor(inputs[2]))


def _addmm(inputs, outputs) -> OpCost:
    # addmm(bias, x, weight.t()): the weight arrives transposed, (in, out).
    weight_t = _t(inputs[2])
    weight = Tensor((weight_t.shape[1], weight_t.shape[0]), weight_t.dtype)
    return linear_cost(_t(inputs[1]), weight, _t(outputs[0]), bias=_t(inputs[0]))


def _matmul(inputs, outputs) -> OpCost:
    a, b, out = _t(inputs[0]), _t(inputs[1]), _t(outputs[0])
    madd = out.numel * a.shape[-1]
    return OpCost(OpKind.LINEAR, flops_madd=madd, reads=(a, b), writes=(out,))


def _batch_norm(inputs, outputs) -> OpCost:
    x = _t(inputs[0])
    return batch_norm_cost(x, _t(outputs[0]), channels=x.shape[1], affine=_tensor(inputs[1]) is not None)


def _norm(weight_slots: tuple[int, ...]) -> Callable:
    """Layer / group / instance norm, its affine weight and bias at ``weight_slots`` of the call."""

    def rule(inputs, outputs) -> OpCost:
        weights = tuple(t for t in (_tensor(inputs[i]) for i in weight_slots if i < len(inputs)) if t is not None)
        return norm_cost(_t(inputs[0]), _t(outputs[0]), weights=weights)

    return rule


def _softmax(inputs, outputs) -> OpCost:
    return norm_cost(_t(inputs[0]), _t(outputs[0]), weights=())


def _elementwise(kind: OpKind) -> Callable:
    def rule(inputs, outputs) -> OpCost:
        return elementwise_cost(kind, _tensors(inputs), _t(outputs[0]))

    return rule


def _prelu(inputs, outputs) -> OpCost:
    # PReLU's slopes are a learned weight: read with the input, counted as parameters.
    x, slope, out = _t(inputs[0]), _t(inputs[1]), _t(outputs[0])
    return OpCost(OpKind.ACTIVATION, other_ops=out.numel, params=slope.numel, reads=(x,), writes=(out,),
                  weights=(slope,))


def _silu(inputs, outputs) -> OpCost:
    # One kernel in torch; onnxruntime runs SiLU as Sigmoid then Mul (opset 17 has no SiLU), moving more.
    x, out = _t(inputs[0]), _t(outputs[0])
    deployed = OpCost(OpKind.ACTIVATION, other_ops=2 * out.numel, reads=(x, x, out), writes=(out, out))
    return replace(elementwise_cost(OpKind.ACTIVATION, (x,), out), deployed=deployed)


def _pool(inputs, outputs) -> OpCost:
    kernel = _const(inputs[1]) if len(inputs) > 2 else None
    stride = _const(inputs[2]) if len(inputs) > 2 else None
    kernel = kernel if isinstance(kernel, list) and all(isinstance(k, int) for k in kernel) else None
    stride = stride if isinstance(stride, list) and stride and all(isinstance(s, int) for s in stride) else None
    return pool_cost(_t(inputs[0]), _t(outputs[0]), kernel=kernel, stride=stride)


def _reduce(inputs, outputs) -> OpCost:
    x, out = _t(inputs[0]), _tensors(outputs)
    return OpCost(OpKind.REDUCE, other_ops=x.numel, reads=(x,), writes=out)


def _copying(kind: OpKind) -> Callable:
    """An operator that reads its first input and writes its outputs (pad, resize)."""

    def rule(inputs, outputs) -> OpCost:
        return copy_cost(kind, (_t(inputs[0]),), _tensors(outputs))

    return rule


def _gather(data_slot: int, index_slot: int) -> Callable:
    """index_select, gather, embedding: the data read is one output's worth, plus the indices."""

    def rule(inputs, outputs) -> OpCost:
        index = _tensor(inputs[index_slot]) if index_slot < len(inputs) else None
        return gather_cost(_t(inputs[data_slot]), index, _t(outputs[0]))

    return rule


def _index(inputs, outputs) -> OpCost:
    # x[idx] with tensor indices: aten::index(input, [indices...])
    indices = _tensors(_list_items(inputs[1])) if len(inputs) > 1 else ()
    return gather_cost(_t(inputs[0]), indices[0] if indices else None, _t(outputs[0]))


def _cat(inputs, outputs) -> OpCost:
    return copy_cost(OpKind.CONCAT, _tensors(_list_items(inputs[0])), _tensors(outputs))


def _view(name: str, kind: OpKind) -> Callable:
    copies = name in _DEPLOYED_COPIES

    def rule(inputs, outputs) -> OpCost:
        if name in ("reshape", "flatten") and _after_transpose(inputs[0]):
            return _materialized(inputs, outputs)
        if not copies:
            return view_cost(kind)
        written = _outputs(outputs)
        # A split writes every part; a slice or select reads and writes its own part only.
        source = (_t(inputs[0]),) if kind is OpKind.SPLIT and len(written) > 1 else written
        return view_cost(kind, deployed=copy_cost(kind, source, written))

    return rule


def _after_transpose(value) -> bool:
    return value.node().kind() in ("aten::transpose", "aten::permute", "aten::t")


def _materialized(inputs, outputs) -> OpCost:
    """``contiguous`` (or a ``reshape``) of a transposed tensor: torch copies here; onnxruntime already did in its
    Transpose, so the deployed view moves nothing more. After the transpose(1, 2) of a (N, g, C/g, H, W) view -- the
    channel shuffle -- that copy is the shuffle's whole memory cost."""
    source = inputs[0].node()
    dims = _const(source.inputsAt(1)) if source.kind() == "aten::permute" else [
        _const(source.inputsAt(1)), _const(source.inputsAt(2))] if source.kind() == "aten::transpose" else None
    shape = _t(inputs[0]).shape
    is_shuffle = len(shape) == 5 and dims is not None and sorted(dims[:2] if len(dims) == 2 else dims[1:3]) == [1, 2]
    kind = OpKind.SHUFFLE if is_shuffle else OpKind.COPY
    return replace(copy_cost(kind, (_t(inputs[0]),), _tensors(outputs)), deployed=view_cost(kind))


def _contiguous(inputs, outputs) -> OpCost:
    # contiguous() copies only a tensor whose layout a transpose/permute changed.
    if not _after_transpose(inputs[0]):
        return view_cost(OpKind.RESHAPE)
    return _materialized(inputs, outputs)


def _to(inputs, outputs) -> OpCost:
    # .to() moves data only when it changes the dtype (a cast); otherwise it returns its input.
    x, out = _tensor(inputs[0]), _t(outputs[0])
    if x is None or x.dtype == out.dtype:
        return view_cost(OpKind.RESHAPE)
    return copy_cost(OpKind.COPY, (x,), (out,))


def _creation(inputs, outputs) -> OpCost:
    return copy_cost(OpKind.OTHER, (), _tensors(outputs))


def generic_rule(inputs, outputs) -> OpCost:
    """Any other aten operator: read every tensor input, write every output, marked estimated."""
    return generic_cost(_tensors(i for v in inputs for i in _list_items(v)), _outputs(outputs))


def default_rules() -> dict[str, Callable]:
    """The cost rule for every traced operator shufflebench understands, keyed by fvcore's op name (in-place forms
    ``op_`` share the rule of ``op``)."""
    rules: dict[str, Callable] = {
        "aten::_convolution": _conv,
        "aten::conv1d": _conv,
        "aten::conv2d": _conv,
        "aten::conv3d": _conv,
        "aten::linear": _linear,
        "aten::addmm": _addmm,
        "aten::matmul": _matmul,
        "aten::mm": _matmul,
        "aten::bmm": _matmul,
        "aten::batch_norm": _batch_norm,
        "aten::layer_norm": _norm((2, 3)),
        "aten::group_norm": _norm((2, 3)),
        "aten::instance_norm": _norm((1, 2)),
        "aten::softmax": _softmax,
        "aten::log_softmax": _softmax,
        "aten::prelu": _prelu,
        "aten::silu": _silu,
        "aten::cat": _cat,
        "aten::concat": _cat,
        "aten::stack": _cat,
        "aten::contiguous": _contiguous,
        "aten::to": _to,
        "aten::index_select": _gather(0, 2),
        "aten::gather": _gather(0, 2),
        "aten::embedding": _gather(0, 1),
        "aten::index": _index,
    }
    rules.update({f"aten::{name}": _elementwise(OpKind.ACTIVATION) for name in _ACTIVATIONS})
    rules.update({f"aten::{name}": _elementwise(kind) for name, kind in _BINARY.items()})
    rules.update({f"aten::{name}": _view(name, kind) for name, kind in _VIEWS.items()})
    rules.update({f"aten::{name}": _pool for name in _POOLS})
    rules.update({f"aten::{name}": _reduce for name in _REDUCTIONS})
    rules.update({f"aten::{name}": _copying(OpKind.RESIZE) for name in _RESIZES})
    rules.update({f"aten::{name}": _copying(OpKind.PAD) for name in _PADS})
    rules.update({f"aten::{name}": _creation for name in _CREATIONS})
    rules.update({f"{name}_": rule for name, rule in list(rules.items())})  # in-place forms: relu_, add_, ...
    return rules


def aten_operators() -> list[str]:
    """Every aten operator this torch knows (``aten::name``), so that each has a rule, the generic one at least."""
    import torch

    return sorted({schema.name for schema in torch._C._jit_get_all_schemas() if schema.name.startswith("aten::")})


def _scalar_arithmetic(inputs, outputs) -> bool:
    """No input or output is a tensor with a dimension: arithmetic on sizes (``rsub`` on a shape scalar)."""
    tensors = [t for t in (_tensor(v) for v in (*inputs, *outputs)) if t is not None]
    return all(not t.shape for t in tensors) and not any(
        use.user.kind() == "prim::ListUnpack" for out in outputs for use in out.uses())


class _Recorder:
    """Turns fvcore's per-operator handle calls into rows, remembering which row produced which traced value."""

    def __init__(self) -> None:
        self.drafts: list[RowDraft] = []
        self.producer_of: dict[int, int] = {}
        self.bookkeeping = 0
        self.unknown: list[tuple[str, int]] = []

    def handle(self, rule: Callable) -> Callable:
        def call(inputs, outputs):
            node = outputs[0].node()
            if _scalar_arithmetic(inputs, outputs):  # shape arithmetic on 0-dim tensors: no row, no cost
                self.bookkeeping += 1
                return 0
            try:
                cost = rule(inputs, outputs)
            except ShapeUnknown:  # listed in coverage as unknown, never costed by guess
                self.unknown.append((f"{node.kind()} (shape unknown)", 1))
                return 0
            row = len(self.drafts)
            scope = node.scopeName().split("/")[-1]
            # Weights are graph inputs too; a row's input shapes are its activations only.
            tensors_in = cost.reads if cost.weights else _tensors(i for v in inputs for i in _list_items(v))
            self.drafts.append(RowDraft(scope, node.kind(), cost, self._producers(inputs), tensors_in, _outputs(outputs)))
            for out in outputs:
                self.producer_of[out.unique()] = row
                for use in out.uses():
                    if use.user.kind() == "prim::ListUnpack":
                        for item in use.user.outputs():
                            self.producer_of[item.unique()] = row
            return cost.flops_madd

        return call

    def skip(self, inputs, outputs) -> int:
        self.bookkeeping += 1
        return 0

    def _producers(self, inputs) -> tuple[int, ...]:
        rows: list[int] = []
        for value in inputs:
            for item in _list_items(value):
                row = self.producer_of.get(item.unique())
                if row is not None and row not in rows:
                    rows.append(row)
        return tuple(rows)


def _fvcore_version() -> str:
    from importlib import metadata

    return metadata.version("fvcore")


def trace_layer_table(module, input_shape: tuple[int, ...], *, dtype=None) -> LayerTable:
    """Trace ``module`` (put in eval mode) on a zero input of ``input_shape`` and return its layer table.

    Params are all the module's trainable parameters (batch-norm affine included), whether or not the trace uses
    them. ``dtype`` is the input dtype (default float32).
    """
    import torch
    from fvcore.nn.jit_analysis import JitModelAnalysis

    module = module.eval()
    example = torch.zeros(tuple(input_shape), dtype=dtype or torch.float32)
    recorder = _Recorder()
    analysis = JitModelAnalysis(module, (example,))
    # fvcore silently skips a built-in list (relu, cat, transpose...); every op must be handled or reported. That
    # list is private (``_ignored_ops``, fvcore 0.1.5); a fvcore without it is refused rather than trusted to count
    # every op, and a test pins the attribute so an upgrade that drops it fails loudly.
    if not isinstance(getattr(analysis, "_ignored_ops", None), set):
        raise SetupError(f"fvcore {_fvcore_version()} has no JitModelAnalysis._ignored_ops; shufflebench counts every "
                         "operator only with fvcore 0.1.5 (pip install 'fvcore==0.1.5.post20221221')")
    analysis._ignored_ops = set()
    # Every aten operator gets the generic rule first (read every input, write every output, marked estimated);
    # rules of their own replace it where shufflebench knows the operator. Only what is not aten (a Python autograd
    # function, a custom op) stays unknown.
    generic = recorder.handle(generic_rule)
    analysis.set_op_handle(**{op: generic for op in aten_operators()})
    for op, rule in default_rules().items():
        analysis.set_op_handle(op, recorder.handle(rule))
    for op in SHAPE_BOOKKEEPING:
        analysis.set_op_handle(op, recorder.skip)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total_madd = analysis.total()
        unknown = [*analysis.unsupported_ops().items(), *recorder.unknown]
    drafts = recorder.drafts
    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    table = finish_table(drafts, input_shape=input_shape, params=params, bookkeeping=recorder.bookkeeping,
                         unknown=unknown, source="torch")
    if table.flops_madd != total_madd:  # both come from the same pass; a mismatch is a bug here, not the user's
        raise RuntimeError(f"layer table multiply-adds {table.flops_madd} != fvcore total {total_madd}")
    return table
