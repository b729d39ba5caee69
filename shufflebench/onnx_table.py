"""The layer table of an ONNX graph, with shapes from ONNX shape inference and costs from the rules in `ops`.

Parameters are the constant tensors in weight slots (Conv W and B, Gemm B and C, a constant MatMul operand,
BatchNormalization scale and bias; running statistics are not parameters), so a zoo model exported with batch norm
kept apart (`export`) has exactly the torch view's parameter count. Unlike torch, where ``chunk`` and ``transpose``
are views, ONNX ``Split`` and ``Transpose`` materialize their outputs, and their MAC says so.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError
from .layer_table import LayerTable, RowDraft, finish_table
from .ops import OpCost, OpKind, Tensor, batch_norm_cost, conv_cost, copy_cost, elementwise_cost, gather_cost
from .ops import generic_cost, linear_cost, norm_cost, pool_cost, view_cost

# What onnxruntime does with each node, the deployed view's rules (see `ops`): Split and Slice write new tensors
# (a Slice reads only its part), Gather moves one output's worth of data, Transpose, Pad, Resize, Expand, Tile and a
# Cast of data copy, Reshape and its kin alias their input.
_ACTIVATIONS = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "Elu", "Selu", "Celu",
                "Gelu", "Mish", "Softplus", "Softsign", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Sin", "Cos",
                "Erf", "Sign", "Floor", "Ceil", "Round", "ThresholdedRelu", "Shrink"}
_ELEMENTWISE = {"Add": OpKind.ADD, "Sub": OpKind.ADD, "Sum": OpKind.ADD, "Max": OpKind.ADD, "Min": OpKind.ADD,
                "Mul": OpKind.MUL, "Div": OpKind.MUL, "Pow": OpKind.MUL, "Where": OpKind.MUL}
_VIEWS = {"Reshape": OpKind.RESHAPE, "Flatten": OpKind.RESHAPE, "Squeeze": OpKind.RESHAPE,
          "Unsqueeze": OpKind.RESHAPE, "Identity": OpKind.RESHAPE, "Dropout": OpKind.RESHAPE}
_POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "LpPool"}
_REDUCTIONS = {"ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
               "ReduceSumSquare", "ArgMax", "ArgMin"}
_COPIES = {"Pad": OpKind.PAD, "Resize": OpKind.RESIZE, "Upsample": OpKind.RESIZE, "DepthToSpace": OpKind.COPY,
           "SpaceToDepth": OpKind.COPY, "Expand": OpKind.COPY, "Tile": OpKind.COPY, "Cast": OpKind.COPY}
_NORMS = {"LayerNormalization": (1, 2), "InstanceNormalization": (1, 2), "GroupNormalization": (1, 2),
          "Softmax": (), "LogSoftmax": ()}
_GATHERS = {"Gather", "GatherElements", "GatherND"}
#: Nodes that compute sizes: their outputs, and everything computed from sizes and constants alone, are shape
#: arithmetic (no row, no cost). Nodes that make data of a computed size are not.
_SIZE_SOURCES = {"Shape", "Size"}
_DATA_MAKERS = {"ConstantOfShape", "Expand", "Tile", "RandomNormalLike", "RandomUniformLike"}
#: ONNX TensorProto element types -> the canonical dtype names of `ops.DTYPE_BYTES` (others are refused when a
#: tensor of them is costed: no width is guessed).
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
                16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz"}


def _onnx_dtype(elem_type: int) -> str:
    return _ONNX_DTYPES.get(elem_type, f"onnx element type {elem_type}")


def _load(path: Path):
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a damaged file
        raise UsageError(f"{path} is not a readable ONNX model: {str(exc).splitlines()[0][:120]}") from None
    if not model.graph.node:  # an empty file (or any bytes that parse as an empty message) reads as an empty model
        raise UsageError(f"{path} is not an ONNX model: it holds no graph")
    return model


def _graph_inputs(model):
    initializers = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def onnx_input_name(path: Path) -> str:
    """The name of the model's single (non-initializer) input."""
    inputs = _graph_inputs(_load(path))
    if len(inputs) != 1:
        raise UsageError(f"{path} has {len(inputs)} inputs; shufflebench profiles single-input models")
    return inputs[0].name


def onnx_input_shape(path: Path, *, batch: int = 1, override: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The shape the model's single input is given: ``override`` where the graph's fixed dimensions allow it, else
    the graph's, a dynamic batch set to ``batch``. Other dynamic dimensions need ``--input-shape``; a shape the model
    cannot run (another rank, another value of a fixed dimension, another batch than a fixed one) is refused."""
    inputs = _graph_inputs(_load(path))
    if len(inputs) != 1:
        raise UsageError(f"{path} has {len(inputs)} inputs; shufflebench profiles single-input models")
    declared = [dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None
                for dim in inputs[0].type.tensor_type.shape.dim]
    takes = "x".join("?" if d is None else str(d) for d in declared)
    if override is not None:
        wrong = [(i, d) for i, (d, o) in enumerate(zip(declared, override)) if d is not None and d != o]
        if len(override) != len(declared) or wrong:
            raise UsageError(f"--input-shape {'x'.join(map(str, override))} does not fit {path}, whose input takes "
                             f"{takes} (? is free)")
        return tuple(override)
    shape = []
    for i, fixed in enumerate(declared):
        if i == 0 and fixed is not None and batch not in (1, fixed):
            raise UsageError(f"--batch {batch} does not fit {path}: its input takes {takes}, a fixed batch of {fixed}")
        if fixed is None and i > 0:
            raise UsageError(f"{path} input {inputs[0].name!r} takes {takes}: give --input-shape for the ? dimensions")
        shape.append(batch if fixed is None else fixed)
    return tuple(shape)


def _with_input_shape(model, shape: tuple[int, ...]):
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph_input = _graph_inputs(model)[0]
    dims = graph_input.type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise UsageError(f"input shape {list(shape)} has {len(shape)} dimensions; the model's input has {len(dims)}")
    for dim, size in zip(dims, shape):
        dim.Clear()
        dim.dim_value = size
    return model


class _Shapes:
    """Shapes and dtypes of every named tensor after ONNX shape inference; constant values of initializers."""

    def __init__(self, model) -> None:
        import onnx
        from onnx import numpy_helper

        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        graph = inferred.graph
        self.tensors: dict[str, Tensor] = {}
        for info in (*graph.input, *graph.value_info, *graph.output):
            t = info.type.tensor_type
            if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
                self.tensors[info.name] = Tensor(tuple(d.dim_value for d in t.shape.dim), _onnx_dtype(t.elem_type))
        self.constants: dict[str, object] = {}
        for init in graph.initializer:
            self.tensors[init.name] = Tensor(tuple(init.dims), _onnx_dtype(init.data_type))
            self.constants[init.name] = numpy_helper.to_array(init)
        # Identity of an initializer (the exporter's de-duplication of equal weights) is a constant too, and
        # such Identity nodes may chain in any order.
        pending = [node for node in graph.node if node.op_type == "Identity"]
        while True:
            ready = [node for node in pending if node.input[0] in self.constants]
            if not ready:
                break
            for node in ready:
                self.constants[node.output[0]] = self.constants[node.input[0]]
                self.tensors[node.output[0]] = self.tensors[node.input[0]]
                pending.remove(node)
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.constants[node.output[0]] = numpy_helper.to_array(attr.t)
        self.graph = graph
        missing = [name for node in graph.node for name in node.output if name and name not in self.tensors]
        if missing:
            self._execute_for_shapes(inferred, missing)

    def _execute_for_shapes(self, model, names: list[str]) -> None:
        # ONNX shape inference stops at shapes computed at run time (a traced ``chunk`` becomes Shape -> Div ->
        # Slice); one run of the graph on zeros gives every remaining shape exactly.
        import numpy as np
        import onnx
        import onnxruntime as ort

        probe = onnx.ModelProto.FromString(model.SerializeToString())
        del probe.graph.value_info[:]
        known_outputs = {o.name for o in probe.graph.output}
        probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in known_outputs)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds = {}
        for graph_input in session.get_inputs():
            dtype = np.float16 if "float16" in graph_input.type else np.float32
            feeds[graph_input.name] = np.zeros(self.tensors[graph_input.name].shape, dtype=dtype)
        outputs = [o.name for o in session.get_outputs()]
        for name, value in zip(outputs, session.run(outputs, feeds)):
            if name not in self.tensors and hasattr(value, "shape"):
                self.tensors[name] = Tensor(tuple(value.shape), str(value.dtype))

    def get(self, name: str) -> Tensor | None:
        return self.tensors.get(name) if name else None


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _module_of(node) -> str:
    # The exporter names nodes after their module scope: "/stage2/stage2.0/branch2/Conv" -> "stage2.0.branch2".
    parts = [p for p in node.name.split("/") if p]
    return parts[-2] if len(parts) >= 2 else ""


class ShapeUnknown(Exception):
    """An operand whose shape neither shape inference nor a run on zeros gave: its node is reported as unknown."""


def _cost(node, shapes: _Shapes) -> OpCost:
    """The cost of one node (a data node: shape arithmetic never gets here); `ShapeUnknown` for an operand of
    unknown shape."""
    op = node.op_type
    ins = [shapes.get(n) for n in node.input]
    outs = [shapes.get(n) for n in node.output]

    def inp(i: int) -> Tensor:
        tensor = ins[i] if i < len(ins) else None
        if tensor is None:
            raise ShapeUnknown(f"input {i} of {node.name}")
        return tensor

    def out(i: int = 0) -> Tensor:
        tensor = outs[i] if i < len(outs) else None
        if tensor is None:
            raise ShapeUnknown(f"output {i} of {node.name}")
        return tensor

    known_ins = tuple(t for t in ins if t is not None)
    known_outs = tuple(t for t in outs if t is not None)
    tensors_in = tuple(t for t, name in zip(ins, node.input) if t is not None and name not in shapes.constants)
    attrs = _attrs(node)
    if op == "Conv":
        return conv_cost(inp(0), inp(1), out(), bias=inp(2) if len(ins) > 2 else None,
                         stride=attrs.get("strides", [1, 1]), groups=attrs.get("group", 1))
    if op == "Gemm":
        weight = inp(1) if attrs.get("transB", 0) else Tensor(tuple(reversed(inp(1).shape)), inp(1).dtype)
        return linear_cost(inp(0), weight, out(), bias=inp(2) if len(ins) > 2 else None)
    if op == "MatMul":
        if node.input[1] in shapes.constants:
            w = inp(1)
            return linear_cost(inp(0), Tensor((w.shape[-1], w.shape[-2]), w.dtype), out(), bias=None)
        return OpCost(OpKind.LINEAR, flops_madd=out().numel * inp(0).shape[-1], reads=(inp(0), inp(1)),
                      writes=(out(),))
    if op == "BatchNormalization":
        return batch_norm_cost(inp(0), out(), channels=inp(0).shape[1], affine=True)
    if op in _NORMS:
        weights = tuple(inp(i) for i in _NORMS[op] if i < len(ins) and node.input[i])
        return norm_cost(inp(0), out(), weights=weights)
    if op == "PRelu":
        slope = inp(1)
        return OpCost(OpKind.ACTIVATION, other_ops=out().numel, params=slope.numel, reads=(inp(0),), writes=(out(),),
                      weights=(slope,))
    if op in _ACTIVATIONS:
        return elementwise_cost(OpKind.ACTIVATION, tensors_in[:1], out())
    if op in _ELEMENTWISE:
        return elementwise_cost(_ELEMENTWISE[op], known_ins, out())
    if op in _POOLS:
        return pool_cost(inp(0), out(), kernel=attrs.get("kernel_shape"), stride=attrs.get("strides"))
    if op in _REDUCTIONS:
        return OpCost(OpKind.REDUCE, other_ops=inp(0).numel, reads=(inp(0),), writes=known_outs)
    if op == "Concat":
        return copy_cost(OpKind.CONCAT, known_ins, known_outs)
    if op == "Split":
        return copy_cost(OpKind.SPLIT, (inp(0),), known_outs)
    if op == "Slice":
        return copy_cost(OpKind.SPLIT, (Tensor(out().shape, inp(0).dtype),), (out(),))
    if op in _GATHERS:
        return gather_cost(inp(0), ins[1] if len(ins) > 1 else None, out())
    if op == "Transpose":
        perm = list(attrs.get("perm", []))
        kind = OpKind.SHUFFLE if len(perm) == 5 and perm[:3] == [0, 2, 1] else OpKind.TRANSPOSE
        return copy_cost(kind, (inp(0),), known_outs)
    if op in _COPIES:
        return copy_cost(_COPIES[op], (inp(0),), known_outs)
    if op in _VIEWS:
        return view_cost(_VIEWS[op])
    if op == "ConstantOfShape":
        return copy_cost(OpKind.OTHER, (), known_outs)
    return generic_cost(tensors_in, known_outs)


def _shape_arithmetic(graph, shapes: _Shapes) -> set[int]:
    """Names of the nodes that only compute sizes: Shape and Size, constants, and every node all of whose inputs are
    sizes or integer constants (a traced ``chunk`` becomes Shape -> Gather -> Div -> Slice: all but the Slice)."""
    import numpy as np

    sizes = {name for name, value in shapes.constants.items()
             if np.issubdtype(np.asarray(value).dtype, np.integer) and np.asarray(value).ndim <= 1}
    nodes = set()
    for index, node in enumerate(graph.node):
        inputs = [name for name in node.input if name]
        if node.op_type in _SIZE_SOURCES or node.op_type == "Constant" or (
                node.op_type not in _DATA_MAKERS and inputs and all(name in sizes for name in inputs)):
            nodes.add(index)
            sizes.update(node.output)
    return nodes


def onnx_layer_table(path: Path, input_shape: tuple[int, ...]) -> LayerTable:
    """One row per ONNX node (shape bookkeeping skipped) at ``input_shape``; unknown ops are listed in coverage."""
    model = _with_input_shape(_load(Path(path)), tuple(input_shape))
    shapes = _Shapes(model)
    drafts: list[RowDraft] = []
    producer_of: dict[str, int] = {}
    bookkeeping = 0
    unknown: list[tuple[str, int]] = []
    params = 0
    arithmetic = _shape_arithmetic(shapes.graph, shapes)
    for index, node in enumerate(shapes.graph.node):
        if index in arithmetic or (node.op_type == "Identity" and node.input[0] in shapes.constants):
            bookkeeping += 1
            continue
        try:
            cost = _cost(node, shapes)
        except ShapeUnknown:
            unknown.append((f"{node.op_type} (shape unknown)", 1))
            continue
        params += cost.params
        sources = tuple(dict.fromkeys(producer_of[n] for n in node.input if n in producer_of))
        inputs = tuple(t for n in node.input if (t := shapes.get(n)) is not None and n not in shapes.constants)
        outputs = tuple(t for n in node.output if (t := shapes.get(n)) is not None)
        drafts.append(RowDraft(_module_of(node), node.op_type, cost, sources, inputs, outputs))
        for name in node.output:
            producer_of[name] = len(drafts) - 1
    return finish_table(drafts, input_shape=input_shape, params=params, bookkeeping=bookkeeping, unknown=unknown,
                        source="onnx")
