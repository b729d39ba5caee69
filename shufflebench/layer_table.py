"""The layer table: one row per executed operator, with shapes, attributes and costs.

This is the one table that `count --per-layer`, `check` and the latency breakdown read, so a `Layer` means the same
thing everywhere. It is built either from a traced torch model (here, through fvcore's analysis engine) or from an
ONNX graph (`onnx_table`); both use the cost rules of `ops`.

Two views of memory access cost are kept on every row:

* eager    -- every operator as traced, each reading its inputs and writing its output;
* deployed -- as inference engines run it: a batch norm that directly follows a convolution or linear layer (and is
  that layer's only consumer) is folded into it, which gives the layer a bias; an activation that directly follows
  such a layer (or its folded batch norm) is fused into it. Folded and fused rows then move no memory of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from .ops import COMPUTE, OpCost, OpKind, Tensor

#: Activations an inference engine fuses into the preceding convolution.
FUSABLE_ACTIVATIONS = frozenset({"relu", "relu6", "hardtanh", "clip", "clamp"})


@dataclass(frozen=True)
class Layer:
    """One executed operator.

    ``flops_madd`` counts multiply-adds (convolution and linear only); ``other_ops`` the element operations the
    papers leave out; ``mac_*`` the memory access cost in elements and bytes, eager and deployed. ``inputs_from``
    holds the indices of the rows that produced this row's tensor inputs (the data-flow graph).
    """

    index: int
    name: str
    module: str
    op: str
    kind: OpKind
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    dtype: str
    flops_madd: int
    other_ops: int
    params: int
    mac_elements: int
    mac_bytes: int
    mac_elements_deployed: int
    mac_bytes_deployed: int
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    groups: int | None = None
    inputs_from: tuple[int, ...] = ()
    fused_into: int | None = None
    estimated: bool = False

    @property
    def arithmetic_intensity(self) -> dict[str, float | None]:
        """Multiply-adds per byte moved, eager and deployed (None where the row moves nothing)."""
        return {
            "eager": self.flops_madd / self.mac_bytes if self.mac_bytes else None,
            "deployed": self.flops_madd / self.mac_bytes_deployed if self.mac_bytes_deployed else None,
        }

    def to_dict(self) -> dict:
        """Plain JSON-ready data; shapes as lists, kind as its string value."""
        return {
            "index": self.index,
            "name": self.name,
            "module": self.module,
            "op": self.op,
            "kind": self.kind.value,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "dtype": self.dtype,
            "kernel": list(self.kernel) if self.kernel else None,
            "stride": list(self.stride) if self.stride else None,
            "groups": self.groups,
            "flops_madd": self.flops_madd,
            "other_ops": self.other_ops,
            "params": self.params,
            "mac_elements": self.mac_elements,
            "mac_bytes": self.mac_bytes,
            "mac_elements_deployed": self.mac_elements_deployed,
            "mac_bytes_deployed": self.mac_bytes_deployed,
            "arithmetic_intensity": self.arithmetic_intensity,
            "inputs_from": list(self.inputs_from),
            "fused_into": self.fused_into,
            "estimated": self.estimated,
        }


@dataclass(frozen=True)
class Coverage:
    """What the counter understood. counted: rows a rule of their own costed (views included); estimated: rows the
    generic rule costed (read every input, write every output), per operator; unknown: operators not costed at all
    (no rule, or an operand of unknown shape), per operator; bookkeeping: shape arithmetic skipped;
    estimated_mac_share: the share of the eager MAC (bytes) that rests on the generic rule."""

    counted: int
    bookkeeping: int
    unknown: tuple[tuple[str, int], ...] = ()
    estimated: tuple[tuple[str, int], ...] = ()
    estimated_mac_share: float = 0.0

    @property
    def complete(self) -> bool:
        """Every operator costed by a rule of its own."""
        return not self.unknown and not self.estimated

    def to_dict(self) -> dict:
        return {"counted": self.counted, "estimated": dict(self.estimated), "unknown": dict(self.unknown),
                "bookkeeping": self.bookkeeping, "estimated_mac_share": self.estimated_mac_share}

    @classmethod
    def from_dict(cls, data: dict) -> "Coverage":
        """Inverse of `to_dict`."""
        return cls(int(data["counted"]), int(data["bookkeeping"]), tuple(data["unknown"].items()),
                   tuple(data["estimated"].items()), float(data["estimated_mac_share"]))

    def describe(self) -> str:
        """One line for the reports: ``246 operators counted, 0 unknown``, and what was estimated or left out."""
        text = f"{self.counted} operators counted"
        if self.estimated:
            listed = ", ".join(f"{op} x{n}" for op, n in self.estimated)
            text += (f", {sum(n for _, n in self.estimated)} estimated ({listed}: {self.estimated_mac_share:.1%} of "
                     "the MAC rests on the generic rule, reading every input and writing every output)")
        unknown = sum(n for _, n in self.unknown)
        text += f", {unknown} unknown"
        if self.unknown:
            text += " (not counted: " + ", ".join(f"{op} x{n}" for op, n in self.unknown) + ")"
        return text


@dataclass(frozen=True)
class LayerTable:
    """All executed operators of one model at one input shape, and the model's parameter total."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]
    params: int
    coverage: Coverage
    source: str  # "torch" or "onnx"

    @property
    def flops_madd(self) -> int:
        return sum(layer.flops_madd for layer in self.layers)

    def total(self, field_name: str) -> int:
        """Sum of one numeric field over all rows (e.g. ``mac_bytes_deployed``)."""
        return sum(getattr(layer, field_name) for layer in self.layers)

    def other_ops_by_kind(self) -> dict[str, int]:
        """Element operations outside ``flops_madd``, per kind (batch_norm, activation, pool, add, mul)."""
        totals: dict[str, int] = {}
        for layer in self.layers:
            if layer.other_ops:
                totals[layer.kind.value] = totals.get(layer.kind.value, 0) + layer.other_ops
        return totals


@dataclass
class RowDraft:
    """A row before names and the deployed view are settled (builders of tables fill these in order)."""

    module: str
    op: str
    cost: OpCost
    inputs_from: tuple[int, ...]
    inputs: tuple[Tensor, ...] = ()
    outputs: tuple[Tensor, ...] = ()
    consumers: int = 0


def finish_table(
    drafts: Sequence[RowDraft], *, input_shape, params: int, bookkeeping: int,
    unknown: Iterable[tuple[str, int]], source: str
) -> LayerTable:
    """Name the rows, work out the deployed view and the coverage, and freeze everything into a `LayerTable`."""
    for draft in drafts:
        for producer in draft.inputs_from:
            drafts[producer].consumers += 1
    names = _unique_names(drafts)
    fused_into = _deployed_fusions(drafts)
    layers = []
    for i, draft in enumerate(drafts):
        cost = draft.cost
        deployed = _deployed_cost(i, drafts, fused_into)
        layers.append(
            Layer(
                index=i,
                name=names[i],
                module=draft.module,
                op=draft.op,
                kind=cost.kind,
                input_shapes=tuple(t.shape for t in draft.inputs or cost.reads),
                output_shapes=tuple(t.shape for t in draft.outputs or cost.writes),
                dtype=(draft.outputs or cost.writes or (Tensor(()),))[0].dtype,
                flops_madd=int(cost.flops_madd),
                other_ops=int(cost.other_ops),
                params=int(cost.params),
                mac_elements=cost.mac_elements,
                mac_bytes=cost.mac_bytes,
                mac_elements_deployed=deployed.mac_elements,
                mac_bytes_deployed=deployed.mac_bytes,
                kernel=cost.kernel,
                stride=cost.stride,
                groups=cost.groups,
                inputs_from=draft.inputs_from,
                fused_into=fused_into.get(i),
                estimated=cost.estimated,
            )
        )
    total = sum(layer.mac_bytes for layer in layers)
    estimated = [layer for layer in layers if layer.estimated]
    coverage = Coverage(
        counted=len(layers) - len(estimated), bookkeeping=bookkeeping, unknown=merge_unknown(unknown),
        estimated=merge_unknown((layer.op, 1) for layer in estimated),
        estimated_mac_share=sum(layer.mac_bytes for layer in estimated) / total if total else 0.0,
    )
    return LayerTable(tuple(layers), tuple(input_shape), params, coverage, source)


def _unique_names(drafts: Sequence[RowDraft]) -> list[str]:
    # A leaf module with a single operator is named by its module path alone (``stage2.0.branch2.pw1``); other
    # operators get the short op name after a colon, numbered when it repeats (``stage2.0:cat``, ``...:view#2``).
    per_module: dict[str, int] = {}
    for draft in drafts:
        per_module[draft.module] = per_module.get(draft.module, 0) + 1
    seen: dict[str, int] = {}
    names = []
    for draft in drafts:
        if per_module[draft.module] == 1 and draft.module:
            names.append(draft.module)
            continue
        short = draft.op.split("::")[-1].rstrip("_")
        base = f"{draft.module}:{short}" if draft.module else short
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return names


def _deployed_fusions(drafts: Sequence[RowDraft]) -> dict[int, int]:
    """Map each folded batch norm / fused activation to the compute row it disappears into."""
    fused: dict[int, int] = {}
    for i, draft in enumerate(drafts):
        if len(draft.inputs_from) != 1:
            continue
        producer = draft.inputs_from[0]
        host = fused.get(producer, producer)
        host_kind = drafts[host].cost.kind
        if host_kind not in COMPUTE or drafts[producer].consumers != 1:
            continue
        if draft.cost.kind is OpKind.BATCH_NORM and producer == host:
            fused[i] = host
        elif draft.cost.kind is OpKind.ACTIVATION and draft.op.split("::")[-1].rstrip("_").lower() in FUSABLE_ACTIVATIONS:
            if drafts[producer].cost.kind is not OpKind.ACTIVATION:
                fused[i] = host
    return fused


def _deployed_cost(i: int, drafts: Sequence[RowDraft], fused_into: dict[int, int]) -> OpCost:
    cost = drafts[i].cost
    if i in fused_into:
        return OpCost(cost.kind)
    if cost.deployed is not None:
        return cost.deployed
    folded_bn = [j for j, host in fused_into.items() if host == i and drafts[j].cost.kind is OpKind.BATCH_NORM]
    if folded_bn and len(cost.weights) == 1:
        # The folded batch norm leaves a per-channel bias on the layer that absorbed it.
        out_channels = cost.writes[0].shape[1] if cost.writes and len(cost.writes[0].shape) > 1 else 0
        bias = Tensor((out_channels,), cost.weights[0].dtype)
        return replace(cost, weights=(*cost.weights, bias))
    return cost


def merge_unknown(counts: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """Sorted (op, count) pairs with repeated ops added up."""
    totals: dict[str, int] = {}
    for op, n in counts:
        totals[op] = totals.get(op, 0) + n
    return tuple(sorted(totals.items()))
