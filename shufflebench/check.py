"""The `check` lint: the four ShuffleNet V2 guidelines as metrics on a layer table, and their findings.

* G1 -- equal channel width minimizes MAC. For a 1x1 convolution with FLOPs B = hw*c1*c2/g, the MAC of the layer is
  compared with that of an equal-width layer (c = sqrt(c1*c2)) of the same FLOPs; for g = 1 and equal input and output
  sizes that is the paper's bound 2*sqrt(hw*B) + B/hw. A finding when the saving is above a threshold.

Every finding holds ONE metric (``metric``) and the threshold it is judged against, and is above it when
``value > threshold``, strictly, for every guideline. A G3 block has two metrics (parallel branches and fragments);
its finding carries the one nearest to, or furthest past, its own limit (relative to that limit), so a row never
reads "2 / limit 2 / above" because another metric set it off.
* G2 -- excessive group convolution increases MAC. For a group convolution (depthwise excluded: it is a different
  trade, see G4) with fixed input channels c1 and FLOPs B, Eq. 2 gives MAC = hw*c1 + B*g/c1 + B/hw; the overhead is
  its ratio to the same layer at g = 1 (hw*c1 + B/c1 + B/hw).
* G3 -- fragmentation reduces parallelism. Per block (`blocks`: found from the graph, between rows every path
  passes through, so a residual unit or a split-and-concat is one block whatever its modules are called), the
  fragments are its compute operators (convolutions, linear, pooling); the critical path is the longest chain of
  operators through it; the parallel branches are the largest number of fragments at the same depth.
* G4 -- element-wise operators are not negligible: the share of MAC spent in activations, adds, multiplies and
  unfused batch norm, in the deployed view (what an inference engine still runs) and the eager view.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .errors import UsageError
from .files import read_text_file
from .layer_table import Coverage, Layer, LayerTable
from .models import ModelIdentity
from .ops import COMPUTE, ELEMENTWISE, OpKind
from .prepared import PreparedModel

CHECK_SCHEMA = "shufflebench.check/2"
GUIDELINES = {
    "G1": "equal channel width minimizes MAC",
    "G2": "excessive group convolution increases MAC",
    "G3": "network fragmentation reduces parallelism",
    "G4": "element-wise operations are not negligible",
}

_FRAGMENTS = COMPUTE | {OpKind.POOL}
_VIEW_KINDS = {OpKind.RESHAPE, OpKind.TRANSPOSE}


#: Thresholds that are fractions of a MAC figure: at 1 or more a finding could never be above them.
_FRACTIONS = ("g1_min_mac_saving", "g4_max_elementwise_share")


@dataclass(frozen=True)
class Thresholds:
    """When a guideline metric becomes a finding. Set in ``[tool.shufflebench]`` of pyproject.toml or ``--config``."""

    g1_min_mac_saving: float = 0.10  # equal widths would cut the layer's MAC by more than this fraction
    g2_max_overhead: float = 0.50  # group conv MAC above g=1 at the same FLOPs, as a fraction
    g3_max_branches: int = 2  # parallel fragments in one block
    g3_max_fragments: int = 6  # compute operators in one block
    g4_max_elementwise_share: float = 0.10  # deployed-view MAC share of element-wise operators

    @classmethod
    def from_mapping(cls, values: dict[str, Any], origin: str) -> "Thresholds":
        """Thresholds from a TOML table; unknown keys and values a finding could never cross (or always crosses) are
        refused, naming the file: every threshold is a finite positive number, a whole number for counts, below 1
        for a fraction of the MAC."""
        known = {f.name: f for f in fields(cls)}
        parsed: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise UsageError(f"{origin}: unknown key {key!r}; allowed: {', '.join(known)}")
            kind = int if known[key].type in ("int", int) else float
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value <= 0):
                raise UsageError(f"{origin}: {key} = {value!r} must be a positive number")
            if kind is int and value != int(value):
                raise UsageError(f"{origin}: {key} = {value!r} must be a whole number")
            if key in _FRACTIONS and value >= 1:
                raise UsageError(f"{origin}: {key} = {value!r} is a fraction of the MAC; allowed: above 0, below 1")
            parsed[key] = kind(value)
        return cls(**parsed)


def load_thresholds(config: Path | None = None) -> Thresholds:
    """Thresholds from ``config`` (a TOML file, its ``[tool.shufflebench]`` table or top-level keys), else from the
    ``[tool.shufflebench]`` table of ``pyproject.toml`` in the current directory, else defaults."""
    if config is not None:
        data = _read_toml(config)
        table = data.get("tool", {}).get("shufflebench", data) if "tool" in data else data
        return Thresholds.from_mapping(table, str(config))
    pyproject = Path.cwd() / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("shufflebench", {})
        return Thresholds.from_mapping(table, f"{pyproject} [tool.shufflebench]")
    return Thresholds()


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(read_text_file(path, "config file"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None


#: What a finding's value measures, by metric; the unit shown with it.
METRICS = {
    "mac_saving": "fraction of the layer's MAC an equal-width layer of the same multiply-adds would save",
    "mac_overhead": "extra MAC over the same layer at groups=1 with the same multiply-adds, as a fraction",
    "branches": "compute fragments at the same depth of a block",
    "fragments": "compute operators in a block",
    "elementwise_share": "share of the deployed MAC in element-wise operators",
}
#: Metrics that are counts (shown as whole numbers); the others are fractions (shown as percentages).
COUNT_METRICS = frozenset({"branches", "fragments"})


@dataclass(frozen=True)
class Finding:
    """One metric of one guideline on one layer or block, judged against its threshold (above: value > threshold)."""

    guideline: str
    where: str
    metric: str
    value: float
    threshold: float
    message: str

    @property
    def above(self) -> bool:
        """Whether the metric crossed its threshold (strictly above, for every guideline)."""
        return self.value > self.threshold

    def to_dict(self) -> dict:
        return {**asdict(self), "above": self.above}


def _spatial(shape: tuple[int, ...]) -> int:
    return math.prod(shape[2:]) if len(shape) > 2 else 1


def g1_metrics(layer: Layer) -> tuple[float, float] | None:
    """(c_out / c_in, MAC saving of an equal-width layer at the same FLOPs) for a 1x1 convolution, else None."""
    if layer.kind not in (OpKind.CONV, OpKind.GROUP_CONV) or layer.kernel is None or any(k != 1 for k in layer.kernel):
        return None
    (x,), (y,) = layer.input_shapes, layer.output_shapes
    c1, c2, g = x[1], y[1], layer.groups or 1
    hw_in, hw_out = _spatial(x), _spatial(y)
    mac = hw_in * c1 + hw_out * c2 + c1 * c2 / g
    c = math.sqrt(c1 * c2)
    mac_equal = hw_in * c + hw_out * c + c * c / g
    return c2 / c1, 1 - mac_equal / mac


def g2_overhead(layer: Layer) -> float | None:
    """MAC of a group convolution over the same layer at g = 1 with the same FLOPs and input channels (Eq. 2)."""
    if layer.kind is not OpKind.GROUP_CONV:
        return None
    (x,), (y,) = layer.input_shapes, layer.output_shapes
    c1, g = x[1], layer.groups or 1
    hw_in, hw_out = _spatial(x), _spatial(y)
    k = math.prod(layer.kernel or (1,))
    madd = hw_out * c1 * y[1] * k / g  # per sample
    mac_g = hw_in * c1 + madd * g / (c1 * k) + madd / hw_out
    mac_1 = hw_in * c1 + madd / (c1 * k) + madd / hw_out
    return mac_g / mac_1 - 1


@dataclass(frozen=True)
class Fragmentation:
    """G3 for one block: compute fragments, the longest operator chain, and the widest set of parallel fragments."""

    block: str
    fragments: int
    critical_path: int
    branches: int


def cut_points(table: LayerTable) -> list[int]:
    """Rows every path of the network passes through: no data made before the row is read after it (the model's
    input counts as made before the first row). Between two cut points lies one block, whatever the modules are
    called."""
    rows = table.layers
    last_read = [layer.index for layer in rows]
    for layer in rows:
        for source in layer.inputs_from:
            last_read[source] = max(last_read[source], layer.index)
    # The model's input is read by the rows that read more tensors than other rows made (a residual add of the input
    # reads one row and the input); a constant buffer read there would widen the first block, a rare case.
    reach = max((layer.index for layer in rows if len(layer.input_shapes) > len(layer.inputs_from)), default=-1)
    cuts = []
    for layer in rows:
        if reach <= layer.index:
            cuts.append(layer.index)
        reach = max(reach, last_read[layer.index])
    return cuts


def _unit(module: str) -> str:
    """The repeated unit a chained row belongs to, from its module path: up to the first numbered part (``blocks.1``
    of ``blocks.1.fragments.2``: a container of repeated units), else the module itself (a chain under names alone
    is no evidence of one block)."""
    parts = module.split(".") if module else []
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return module or "(top)"


def _common_prefix(modules: list[str]) -> str:
    split = [m.split(".") for m in modules if m]
    if not split:
        return ""
    prefix = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return ".".join(prefix)


def blocks(table: LayerTable) -> list[tuple[str, list[Layer]]]:
    """The model's blocks, in execution order: the rows between two cut points where data branches (a residual
    unit, a split and concat, parallel fragments), named by the modules they share; and runs of plain chained rows,
    grouped by the repeated unit their modules belong to (a block of fragments in series has no graph boundary). A
    block is a block whatever the naming: a stage of ten residual units is ten blocks."""
    found: list[tuple[str, list[Layer]]] = []
    start = 0
    for cut in cut_points(table):
        span = list(table.layers[start:cut + 1])
        start = cut + 1
        if len(span) > 1:  # something branches inside
            name = _common_prefix([layer.module for layer in span]) or f"rows {span[0].index}-{span[-1].index}"
        else:
            name = _unit(span[0].module)
        if found and found[-1][0] == name:
            found[-1][1].extend(span)
        else:
            found.append((name, span))
    return found


def fragmentation(table: LayerTable) -> list[Fragmentation]:
    """G3 per block (`blocks`), in execution order, for blocks with compute operators. Views are transparent; every
    other operator lengthens the path."""
    result = []
    for block, layers in blocks(table):
        members = {layer.index for layer in layers}
        depth: dict[int, int] = {}
        for layer in layers:
            base = max((depth[i] for i in layer.inputs_from if i in members), default=0)
            depth[layer.index] = base + (0 if layer.kind in _VIEW_KINDS else 1)
        levels: dict[int, int] = {}
        for layer in layers:
            if layer.kind in _FRAGMENTS:
                levels[depth[layer.index]] = levels.get(depth[layer.index], 0) + 1
        fragments = sum(levels.values())
        if fragments:
            result.append(Fragmentation(block, fragments, max(depth.values()), max(levels.values())))
    return result


def elementwise_share(table: LayerTable, view: str = "deployed") -> float:
    """Share of the model's MAC (bytes) spent in element-wise operators, in the ``deployed`` or ``eager`` view."""
    attr = "mac_bytes_deployed" if view == "deployed" else "mac_bytes"
    total = table.total(attr)
    part = sum(getattr(layer, attr) for layer in table.layers if layer.kind in ELEMENTWISE)
    return part / total if total else 0.0


def g3_finding(frag: Fragmentation, thresholds: Thresholds) -> Finding:
    """The G3 finding of one block: the metric (branches or fragments) nearest to, or furthest past, its limit."""
    branches = frag.branches / thresholds.g3_max_branches
    fragments = frag.fragments / thresholds.g3_max_fragments
    metric, value, limit = (("branches", frag.branches, thresholds.g3_max_branches) if branches >= fragments
                            else ("fragments", frag.fragments, thresholds.g3_max_fragments))
    return Finding(
        "G3", frag.block, metric, value, limit,
        f"{frag.block}: {frag.fragments} fragments, {frag.branches} in parallel, critical path "
        f"{frag.critical_path} operators; fewer, wider operators keep a GPU busy",
    )


def check(table: LayerTable, thresholds: Thresholds = Thresholds()) -> list[Finding]:
    """Every guideline metric of a model as findings (``above`` flags those past their threshold), with one-line
    suggestions."""
    findings: list[Finding] = []
    for layer in table.layers:
        g1 = g1_metrics(layer)
        if g1 is not None:
            ratio, saving = g1
            c1, c2 = layer.input_shapes[0][1], layer.output_shapes[0][1]
            findings.append(Finding(
                "G1", layer.name, "mac_saving", saving, thresholds.g1_min_mac_saving,
                f"c1:c2 = {_ratio_text(c1, c2)} in {layer.name}; equal widths would cut this layer's MAC by "
                f"{saving:.0%}",
            ))
        overhead = g2_overhead(layer)
        if overhead is not None:
            findings.append(Finding(
                "G2", layer.name, "mac_overhead", overhead, thresholds.g2_max_overhead,
                f"groups={layer.groups} in {layer.name} costs {overhead:.0%} more MAC than groups=1 at the same "
                f"multiply-adds; fewer groups (or a wider dense conv) would cut it",
            ))
    findings += [g3_finding(frag, thresholds) for frag in fragmentation(table)]
    share = elementwise_share(table, "deployed")
    findings.append(Finding(
        "G4", "(model)", "elementwise_share", share, thresholds.g4_max_elementwise_share,
        f"element-wise operators move {share:.0%} of the deployed MAC ({elementwise_share(table, 'eager'):.0%} "
        f"eager); fuse or remove adds and activations where accuracy allows",
    ))
    return findings


def _ratio_text(c1: int, c2: int) -> str:
    if c2 >= c1:
        return f"1:{c2 / c1:.3g}"
    return f"{c1 / c2:.3g}:1"


@dataclass(frozen=True)
class CheckResult:
    """The lint of one model: every finding, under the thresholds it was judged with."""

    model: ModelIdentity
    thresholds: Thresholds
    findings: tuple[Finding, ...]
    coverage: Coverage

    def counts(self, guideline: str) -> tuple[int, int]:
        """(metrics checked, metrics above threshold) of one guideline."""
        mine = [f for f in self.findings if f.guideline == guideline]
        return len(mine), sum(f.above for f in mine)

    @property
    def above(self) -> bool:
        """Whether any finding crossed its threshold (what ``--strict`` fails on)."""
        return any(f.above for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable findings: every metric, with ``above`` telling which ones break their threshold."""
        summary = {}
        for guideline in GUIDELINES:
            checked, above = self.counts(guideline)
            summary[guideline] = {"checked": checked, "above": above}
        return {
            "schema": CHECK_SCHEMA,
            "model": self.model.name,
            "label": self.model.label,
            "input_shape": list(self.model.input_shape),
            "thresholds": asdict(self.thresholds),
            "summary": summary,
            "findings": [f.to_dict() for f in self.findings],
            "coverage": self.coverage.to_dict(),
        }


def check_model(model: PreparedModel, thresholds: Thresholds = Thresholds()) -> CheckResult:
    """Lint one model against the guidelines."""
    table = model.layer_table
    return CheckResult(model.identity, thresholds, tuple(check(table, thresholds)), table.coverage)
