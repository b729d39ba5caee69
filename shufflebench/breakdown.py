"""Per-operator time (the ShuffleNet V2 paper's Figure 2): onnxruntime's executed kernels, mapped back to the exported
graph and grouped by operator category, each category's share of time next to its share of FLOPs and of MAC.

onnxruntime rewrites the graph before it runs it: batch norm folds into a convolution, an activation fuses into it
(``FusedConv``, or an NCHWc ``Conv`` named after the activation's output), a channel split becomes ``Split``, and
layout conversions (``ReorderInput``/``ReorderOutput``) are inserted. The report is honest about that:

* every executed kernel is one row, with the exported nodes it covers: the node of the same name, or the node whose
  output names it, plus the exported nodes that vanished in optimization and fed only into it (folded batch norms,
  fused activations);
* inserted kernels that cover no exported node are their own category, ``inserted``;
* shares are of the summed kernel time (they add up to 100%), and the gap between that sum and the end-to-end run
  time is shown as framework overhead.

The multiply-add and MAC shares come from the layer table (torch view, deployed MAC) grouped by the same categories.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .layer_table import LayerTable
from .ops import OpKind
from .prepared import PreparedModel

CATEGORIES = ("dense conv", "depthwise conv", "group conv", "element-wise", "shuffle/concat/split/transpose",
              "pooling", "other", "inserted")

_KIND_CATEGORY = {
    OpKind.CONV: "dense conv", OpKind.LINEAR: "dense conv",
    OpKind.DEPTHWISE_CONV: "depthwise conv", OpKind.GROUP_CONV: "group conv",
    OpKind.ACTIVATION: "element-wise", OpKind.ADD: "element-wise", OpKind.MUL: "element-wise",
    OpKind.BATCH_NORM: "element-wise",
    OpKind.SHUFFLE: "shuffle/concat/split/transpose", OpKind.CONCAT: "shuffle/concat/split/transpose",
    OpKind.SPLIT: "shuffle/concat/split/transpose", OpKind.TRANSPOSE: "shuffle/concat/split/transpose",
    OpKind.COPY: "shuffle/concat/split/transpose", OpKind.RESHAPE: "shuffle/concat/split/transpose",
    OpKind.POOL: "pooling", OpKind.OTHER: "other",
}
_ELEMENTWISE_OPS = {"Relu", "Clip", "Add", "Sum", "Mul", "Sub", "Div", "BatchNormalization", "Sigmoid", "HardSigmoid",
                    "HardSwish", "LeakyRelu"}
_DATA_OPS = {"Concat", "Split", "Slice", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}
_POOL_OPS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean"}
_FOLDABLE = {"BatchNormalization", "Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu"}
# Down from a convolution, onnxruntime also fuses a residual Add (FusedConv's "Sum" input).
_FOLDABLE_BELOW = _FOLDABLE | {"Add", "Sum"}
_SUFFIXES = ("_nchwc",)


def category_of_kind(kind: OpKind) -> str:
    """The breakdown category of a layer-table kind."""
    return _KIND_CATEGORY.get(kind, "other")


def category_of_kernel(op: str, group: int | None, in_channels: int | None) -> str:
    """The category of an executed kernel from its op type and, for convolutions, its groups and input channels."""
    if op in ("Conv", "FusedConv", "ConvTranspose"):
        if not group or group == 1:
            return "dense conv"
        return "depthwise conv" if in_channels is not None and group == in_channels else "group conv"
    if op in ("Gemm", "MatMul", "FusedGemm", "FusedMatMul"):
        return "dense conv"
    if op in _ELEMENTWISE_OPS:
        return "element-wise"
    if op in _DATA_OPS:
        return "shuffle/concat/split/transpose"
    if op in _POOL_OPS:
        return "pooling"
    return "other"


@dataclass(frozen=True)
class KernelTime:
    """One executed kernel: mean time per run (microseconds), category, and the exported nodes it covers."""

    name: str
    op: str
    category: str
    time_us: float
    covers: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "covers": list(self.covers)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "KernelTime":
        return cls(data["name"], data["op"], data["category"], float(data["time_us"]), tuple(data["covers"]))


@dataclass(frozen=True)
class CategoryShare:
    """One operator category: its kernels' summed time per run (microseconds) and its shares of kernel time, of
    multiply-adds and of deployed MAC (fractions), and how many kernels it has."""

    category: str
    time_us: float
    time_share: float
    madd_share: float
    mac_share: float
    kernels: int


@dataclass(frozen=True)
class Breakdown:
    """Where one model's time goes: per category, per kernel, and the framework overhead around the kernels.

    node_time_us: summed kernel time per run; run_time_us: end-to-end time per run of the same profiled runs.
    uncovered_nodes: exported nodes (by op type) that no executed kernel claims.
    """

    categories: tuple[CategoryShare, ...]
    node_time_us: float
    run_time_us: float
    kernels: tuple[KernelTime, ...]
    profiled_runs: int
    uncovered_nodes: dict[str, int]

    @property
    def overhead_us(self) -> float:
        """Time per run outside the kernels (session, allocation, scheduling)."""
        return self.run_time_us - self.node_time_us

    @property
    def overhead_share(self) -> float:
        return self.overhead_us / self.run_time_us if self.run_time_us else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "categories": [asdict(c) for c in self.categories],
            "node_time_us": self.node_time_us,
            "run_time_us": self.run_time_us,
            "overhead_us": self.overhead_us,
            "overhead_share": self.overhead_share,
            "kernels": [k.to_dict() for k in self.kernels],
            "profiled_runs": self.profiled_runs,
            "uncovered_nodes": dict(self.uncovered_nodes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Breakdown":
        """Inverse of `to_dict` (derived keys recomputed)."""
        return cls(tuple(CategoryShare(**c) for c in data["categories"]), float(data["node_time_us"]),
                   float(data["run_time_us"]), tuple(KernelTime.from_dict(k) for k in data["kernels"]),
                   int(data["profiled_runs"]), dict(data["uncovered_nodes"]))


def map_kernels(node_profile: dict[str, Any], exported_nodes: list[dict[str, Any]]) -> list[KernelTime]:
    """Attribute onnxruntime's kernels (``node_profile``, see `board_runner`) to the exported graph's nodes.

    ``exported_nodes``: ``[{"name", "op_type", "inputs", "outputs"}]`` of the model as exported, in graph order.
    """
    by_name = {n["name"]: n for n in exported_nodes}
    producer = {out: n for n in exported_nodes for out in n["outputs"]}
    consumers: dict[str, int] = {}
    for n in exported_nodes:
        for name in n["inputs"]:
            consumers[name] = consumers.get(name, 0) + 1
    optimized = {n["name"]: n for n in node_profile["optimized_nodes"]}
    survivors = set(optimized)
    kernels = []
    claimed: set[str] = set()
    for kernel in node_profile["kernels"]:
        name = kernel["name"]
        anchor = by_name.get(name)
        if anchor is None:
            base = name
            for suffix in _SUFFIXES:
                base = base[: -len(suffix)] if base.endswith(suffix) else base
            anchor = producer.get(base)
        covers: list[str] = []
        if anchor is not None:
            covers.append(anchor["name"])
            # Walk up through nodes that vanished in optimization (batch norm, activations) to the convolution
            # they were folded or fused into; walk down from a surviving convolution likewise.
            node = anchor
            while node["op_type"] in _FOLDABLE and node["inputs"] and node["inputs"][0] in producer:
                up = producer[node["inputs"][0]]
                if up["name"] in survivors and up["name"] != anchor["name"] or consumers.get(node["inputs"][0], 0) != 1:
                    break
                covers.append(up["name"])
                node = up
            node = anchor
            while node["outputs"] and consumers.get(node["outputs"][0], 0) == 1:
                down = next((n for n in exported_nodes if node["outputs"][0] in n["inputs"]), None)
                if down is None or down["op_type"] not in _FOLDABLE_BELOW or down["name"] in survivors:
                    break
                covers.append(down["name"])
                node = down
        covers = [c for c in covers if c not in claimed]
        claimed.update(covers)
        info = optimized.get(name, {})
        if covers:
            category = category_of_kernel(kernel["op"], info.get("group"), info.get("in_channels"))
        else:
            category = "inserted"
        kernels.append(KernelTime(name, kernel["op"], category, float(kernel["time_us"]), tuple(covers)))
    return kernels


def breakdown(kernels: list[KernelTime], run_us: float, table: LayerTable, *, profiled_runs: int = 0,
              uncovered_nodes: Mapping[str, int] | None = None) -> Breakdown:
    """Per category: share of summed kernel time, of multiply-adds and of deployed MAC; and the framework overhead."""
    node_total = sum(k.time_us for k in kernels)
    madd_total = table.flops_madd or 1
    mac_total = table.total("mac_bytes_deployed") or 1
    rows = []
    for category in CATEGORIES:
        time_us = sum(k.time_us for k in kernels if k.category == category)
        layers = [layer for layer in table.layers if category_of_kind(layer.kind) == category]
        madd = sum(layer.flops_madd for layer in layers)
        mac = sum(layer.mac_bytes_deployed for layer in layers)
        if time_us or madd or mac:
            rows.append(CategoryShare(category, time_us, time_us / node_total if node_total else 0.0,
                                      madd / madd_total, mac / mac_total,
                                      sum(1 for k in kernels if k.category == category)))
    return Breakdown(tuple(rows), node_total, run_us, tuple(kernels), profiled_runs, dict(uncovered_nodes or {}))


def exported_nodes(path) -> list[dict[str, Any]]:
    """The exported graph's nodes as plain data (name, op type, tensor inputs and outputs)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [{"name": n.name, "op_type": n.op_type, "inputs": list(n.input), "outputs": list(n.output)}
            for n in graph.node]


def optimized_nodes(graph_b64: str) -> list[dict[str, Any]]:
    """The nodes onnxruntime executed (from the optimized graph the board sent back), with convolution groups and
    input channels, so a kernel can be classified as dense, depthwise or group convolution; and each node's domain
    (``com.microsoft.nchwc`` for the blocked layout), tensor inputs and outputs, attributes (bytes decoded) and the
    shapes of its constant inputs (weights)."""
    import base64

    import onnx

    model = onnx.ModelProto.FromString(base64.b64decode(graph_b64))
    dims = {init.name: list(init.dims) for init in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()
                 if isinstance(v, (bytes, int, float, list))}
        group = attrs.get("group")
        weight = dims.get(node.input[1]) if len(node.input) > 1 else None
        in_channels = group * weight[1] if group and weight and len(weight) == 4 else None
        nodes.append({"name": node.name, "op_type": node.op_type, "group": group, "in_channels": in_channels,
                      "domain": node.domain, "inputs": list(node.input), "outputs": list(node.output),
                      "attributes": attrs, "constants": {i: dims[i] for i in node.input if i in dims}})
    return nodes


def breakdown_of(model: PreparedModel, node_profile: Mapping[str, Any]) -> Breakdown:
    """The operator breakdown of ``model`` from the per-kernel profile a runner measured (``profile_runs`` > 0)."""
    profile = dict(node_profile, optimized_nodes=optimized_nodes(node_profile["optimized_graph_b64"]))
    nodes = exported_nodes(model.onnx_path)
    kernels = map_kernels(profile, nodes)
    return breakdown(kernels, profile["run_us"], model.layer_table, profiled_runs=profile["runs"],
                     uncovered_nodes=uncovered(kernels, nodes))


def uncovered(kernels: list[KernelTime], nodes: list[dict[str, Any]]) -> dict[str, int]:
    """Exported nodes (by op type) that no executed kernel claims: constants and shape arithmetic onnxruntime folded
    away at load time, or fusions this mapping does not recognize. Reported so nothing vanishes silently."""
    claimed = {c for k in kernels for c in k.covers}
    counts: dict[str, int] = {}
    for node in nodes:
        if node["name"] not in claimed:
            counts[node["op_type"]] = counts.get(node["op_type"], 0) + 1
    return dict(sorted(counts.items()))
