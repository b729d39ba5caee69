"""What a calibration measures: a designed set of small ONNX graphs, one kernel each, stacks of blocks, whole networks.

Kernels (`full_design`, about 440 graphs; `quick_design`, about 70): 1x1, kxk, depthwise and grouped convolutions
with the activations and residual adds engines fuse into them; element-wise adds and activations; concat, split and
the channel shuffle (reshape, transpose, reshape); max, average and global pooling; fully connected layers. Shapes
are drawn with a fixed seed over the channels and spatial sizes of ShuffleNet, MobileNet, ResNet and AlexNet at
input resolutions 128 to 224, never from the zoo's own layer tables. Whole networks come from the generated space
(`zoo.networks.space`) at seeds that only the calibration uses; *stacks* chain one kind of block (1x1 pairs of
unequal width, grouped 1x1, depthwise-separable, bottleneck with or without its shortcut) at a drawn width and
feature map, up to the working sets of wide blocks on 56x56 maps, so that kernels are also seen where they follow
and feed each other at sizes the generated networks never reach. Two graphs measure the device's peaks: a large matrix
product (multiply-adds per second) and an element-wise add over tensors far larger than any cache (bandwidth).

Every graph also carries the same *reference* convolution on an input of its own. It runs in every profiled run, so
each kernel's time is taken as a ratio to the reference in the same run: a machine that switches between fast and
slow spells (docs/measurement.md) moves both alike and the ratio stays.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..export import OPSET

DESIGN_VERSION = 3  # 1: 16 whole networks and no stacks; 2: the 48 stacks; 3: more grouped, kxk and element-wise
# The version each part of the design was last drawn in (its seed): a new version redraws only the parts it changed.
DRAWN_IN = {"kernels": 3, "stacks": 2, "networks": 2}
SUBJECT_INPUT = "x"
REFERENCE_INPUT = "shufflebench_reference_input"
REFERENCE_OUTPUT = "shufflebench_reference_output"
REFERENCE_SHAPE = (1, 32, 28, 28)  # a 3x3 convolution 32 -> 32 on 28x28: 7.2M multiply-adds

CHANNELS = (8, 12, 16, 24, 32, 40, 48, 58, 64, 72, 96, 116, 120, 128, 144, 160, 192, 232, 240, 256, 320, 384, 464,
            480, 512, 576, 640, 768, 960, 1024, 1280)
# Channel counts that are not multiples of 4: onnxruntime keeps their convolutions in plain NCHW (ShuffleNet V2's
# 58-channel branches, say), which runs other code than the blocked layout; a quarter of the draws come from here.
PLAIN_CHANNELS = (18, 22, 26, 30, 42, 58, 90, 122, 174, 234, 350)
SPATIAL = (112, 96, 80, 64, 56, 48, 40, 32, 28, 24, 20, 16, 14, 12, 10, 8, 7, 6, 5, 4)
PROBE_CHANNELS = 33  # the layout probe's output channels: padded to 36, 40, 48 or 64 by a block of 4, 8, 16 or 32
MAX_ELEMENTS = 1_300_000  # the largest feature map of the networks in view (96 x 112 x 112 is 1.2M)
MAX_MADD = 300_000_000
NETWORKS = 48  # whole generated networks in the full design, half of each family
STACKS = 48  # stacks of repeated blocks in the full design
STACK_CHANNELS = (16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1280, 1536)
# Widths that are not multiples of 4 (plain NCHW, as in narrow networks); a quarter of the stacks draw from here.
STACK_PLAIN_CHANNELS = (9, 13, 18, 22, 26, 46, 90, 138, 174, 234)
STACK_SIZES = (56, 56, 56, 28, 28, 14, 7)
STACK_BLOCKS = ("pointwise", "grouped", "separable", "bottleneck")
MAX_STACK_ELEMENTS = 6_000_000  # wide blocks on 56x56 maps: the guideline experiments' x4 columns reach 5.4M
MAX_STACK_MADD = 4_000_000_000  # tens of milliseconds a run here: a calibration stays within its minutes


@dataclass(frozen=True)
class Case:
    """One calibration graph: a name, what it builds (``builder`` and its ``params``), and the group it belongs to
    (``kernel``, ``peak``, or ``model/<family>`` for a whole network)."""

    name: str
    builder: str
    params: dict[str, Any] = field(default_factory=dict)
    group: str = "kernel"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Design:
    """The graphs of one calibration, in the order they are measured, and the profiled runs per graph."""

    name: str
    cases: tuple[Case, ...]
    profile_runs: int = 40

    @property
    def digest(self) -> str:
        """What a partial calibration must match to be resumed: the version, the cases and the profiled runs."""
        text = json.dumps({"version": DESIGN_VERSION, "runs": self.profile_runs,
                           "cases": [c.to_dict() for c in self.cases]}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- drawing the shapes ---------------------------------------------------------------------------------------------

def _spatial_for(rng: random.Random, channels: int, limit: int = MAX_ELEMENTS) -> int:
    """A spatial size that keeps ``channels`` x size^2 within what real networks carry."""
    fitting = [s for s in SPATIAL if channels * s * s <= limit and channels * s * s >= 256]
    return rng.choice(fitting or [SPATIAL[-1]])


def _channels(rng: random.Random, largest: int = len(CHANNELS)) -> int:
    """A channel count: a quarter of the time one that keeps a convolution out of the blocked layout."""
    return rng.choice(PLAIN_CHANNELS) if rng.random() < 0.25 else rng.choice(CHANNELS[:largest])


def _activation(rng: random.Random) -> str:
    return rng.choice(("relu", "relu", "none", "relu6"))


def _pointwise(rng: random.Random) -> dict[str, Any]:
    while True:
        c_in, c_out = _channels(rng), rng.choice(CHANNELS)
        size = _spatial_for(rng, max(c_in, c_out))
        stride = 2 if rng.random() < 0.1 and size >= 8 else 1
        madd = c_in * c_out * (size // stride) ** 2
        if madd <= MAX_MADD:
            return {"c_in": c_in, "c_out": c_out, "size": size, "kernel": 1, "stride": stride, "groups": 1,
                    "act": _activation(rng), "residual": stride == 1 and rng.random() < 0.2}


def _spatial_conv(rng: random.Random) -> dict[str, Any]:
    while True:
        stem = rng.random() < 0.35
        c_in = 3 if stem else _channels(rng, 24)
        c_out = rng.choice(CHANNELS[:26])
        kernel = rng.choice((3, 3, 3, 5, 7, 11) if stem else (3, 3, 3, 5))
        size = rng.choice((224, 192, 160, 128)) if stem else _spatial_for(rng, max(c_in, c_out))
        stride = rng.choice((2, 2, 4) if kernel == 11 else (2,)) if stem else rng.choice((1, 1, 2))
        if c_out * (size // stride) ** 2 <= 2 * MAX_ELEMENTS and c_in * c_out * kernel ** 2 * (size // stride) ** 2 <= MAX_MADD:
            return {"c_in": c_in, "c_out": c_out, "size": size, "kernel": kernel, "stride": stride, "groups": 1,
                    "act": _activation(rng), "residual": False}


def _depthwise(rng: random.Random) -> dict[str, Any]:
    channels = _channels(rng)
    size = _spatial_for(rng, channels, limit=MAX_ELEMENTS * 2)
    return {"c_in": channels, "c_out": channels, "size": size, "kernel": rng.choice((3, 3, 3, 5, 7)),
            "stride": rng.choice((1, 1, 2)) if size >= 4 else 1, "groups": channels, "act": _activation(rng),
            "residual": False}


def _grouped(rng: random.Random) -> dict[str, Any]:
    while True:
        groups = rng.choice((2, 3, 4, 8))
        c_in = max(groups, round(rng.choice(CHANNELS[4:]) / groups) * groups)
        c_out = max(groups, round(rng.choice(CHANNELS[4:]) / groups) * groups)
        size = _spatial_for(rng, max(c_in, c_out))
        kernel = rng.choice((1, 1, 1, 3))
        if c_in * c_out // groups * kernel ** 2 * size ** 2 <= MAX_MADD:
            return {"c_in": c_in, "c_out": c_out, "size": size, "kernel": kernel, "stride": 1, "groups": groups,
                    "act": rng.choice(("relu", "none")), "residual": kernel == 1 and rng.random() < 0.3}


def _feature_map(rng: random.Random) -> dict[str, Any]:
    channels = _channels(rng)
    return {"channels": channels, "size": _spatial_for(rng, channels)}


def _elementwise(rng: random.Random) -> dict[str, Any]:
    return {**_feature_map(rng), "op": rng.choice(("Add", "Add", "Relu", "Clip", "Mul"))}


def _concat(rng: random.Random) -> dict[str, Any]:
    first = rng.choice(CHANNELS[:24])
    second = rng.choice((first, first, rng.choice(CHANNELS[:24])))
    return {"parts": [first, second], "size": _spatial_for(rng, first + second)}


def _split(rng: random.Random) -> dict[str, Any]:
    half = rng.choice(CHANNELS[:24])
    return {"parts": [half, half], "size": _spatial_for(rng, 2 * half)}


def _shuffle(rng: random.Random) -> dict[str, Any]:
    groups = rng.choice((2, 2, 3, 4, 8))
    channels = max(groups, round(rng.choice(CHANNELS[2:]) / groups) * groups)
    return {"channels": channels, "groups": groups, "size": _spatial_for(rng, channels)}


def _pool(rng: random.Random) -> dict[str, Any]:
    return {**_feature_map(rng), "op": rng.choice(("MaxPool", "AveragePool"))}


def _global_pool(rng: random.Random) -> dict[str, Any]:
    channels = rng.choice(PLAIN_CHANNELS[5:]) if rng.random() < 0.3 else rng.choice(CHANNELS[15:])
    return {"channels": channels, "size": rng.choice((4, 5, 6, 7, 7, 10, 14))}


def _fully_connected(rng: random.Random) -> dict[str, Any]:
    return {"inputs": rng.choice(CHANNELS[10:] + (1536, 2048, 4096)), "outputs": rng.choice((10, 100, 1000, 1000, 2048))}


#: kind -> (draw, cases in the full design, cases in the quick one)
DRAWS: dict[str, tuple[Callable[[random.Random], dict[str, Any]], int, int]] = {
    "conv.pointwise": (_pointwise, 70, 14),
    "conv.spatial": (_spatial_conv, 60, 6),
    "conv.depthwise": (_depthwise, 60, 12),
    "conv.grouped": (_grouped, 100, 8),
    "elementwise": (_elementwise, 50, 6),
    "concat": (_concat, 15, 3),
    "split": (_split, 15, 3),
    "shuffle": (_shuffle, 20, 4),
    "pool": (_pool, 18, 4),
    "global_pool": (_global_pool, 10, 3),
    "fully_connected": (_fully_connected, 20, 3),
}
BUILDER = {"conv.pointwise": "conv", "conv.spatial": "conv", "conv.depthwise": "conv", "conv.grouped": "conv"}
# The classifiers of AlexNet and of wide networks: matrix-vector products over weights larger than any cache.
LARGE_FC = ({"inputs": 9216, "outputs": 4096}, {"inputs": 4096, "outputs": 4096}, {"inputs": 2048, "outputs": 1000})
PEAK_CASES = (Case("peak/matmul", "matmul", {"size": 512}, "peak"),
              Case("peak/bandwidth", "elementwise", {"channels": 64, "size": 256, "op": "Add"}, "peak"))
# A 1x1 convolution from 64 channels (a multiple of every block, so onnxruntime blocks it) to PROBE_CHANNELS.
LAYOUT_PROBE = Case("probe/layout", "conv", {"c_in": 64, "c_out": PROBE_CHANNELS, "size": 8, "kernel": 1, "stride": 1,
                                             "groups": 1, "act": "relu", "residual": False}, "peak")
# Chains of tiny element-wise kernels: short graphs whose time is nearly all per-run and per-kernel overhead.
CHAIN_LENGTHS = (1, 8, 32, 64, 128)


def nchwc_block(padded: int, channels: int = PROBE_CHANNELS) -> int:
    """The channel block that pads ``channels`` to ``padded`` (0 when none of 4, 8, 16, 32, 64 does)."""
    return next((block for block in (4, 8, 16, 32, 64) if -(-channels // block) * block == padded), 0)


def _draw(quick: bool) -> list[Case]:
    cases = []
    for kind, (draw, full, small) in DRAWS.items():
        rng = random.Random(f"shufflebench-calibration/{DRAWN_IN['kernels']}/{kind}")  # more of one kind: same others
        for index in range(small if quick else full):
            cases.append(Case(f"{kind}/{index}", BUILDER.get(kind, kind), draw(rng)))
    if not quick:
        cases += [Case(f"fully_connected/large{i}", "fully_connected", p) for i, p in enumerate(LARGE_FC)]
    return cases


def _models(count: int) -> list[Case]:
    from ..zoo.networks.space import CALIBRATION_SEED_BASE, FAMILIES

    rng = random.Random(f"shufflebench-calibration-models/{DRAWN_IN['networks']}")
    cases = []
    for index in range(count):
        family = FAMILIES[index % len(FAMILIES)]
        seed = CALIBRATION_SEED_BASE + index
        resolution = rng.choice((128, 160, 192, 224))
        cases.append(Case(f"model/{family}-{seed}", "model",
                          {"model": f"searchspace:family={family},seed={seed},resolution={resolution}"},
                          f"model/{family}"))
    return cases


def _stack(rng: random.Random) -> dict[str, Any]:
    """A stack of one kind of block at one width and map size: its depth is cut to stay within `MAX_STACK_MADD`."""
    while True:
        block = rng.choice(STACK_BLOCKS)
        channels = rng.choice(STACK_PLAIN_CHANNELS if rng.random() < 0.25 else STACK_CHANNELS)
        size = rng.choice(STACK_SIZES)
        params: dict[str, Any] = {"block": block, "channels": channels, "size": size, "ratio": 1, "groups": 1,
                                  "relu": True, "shortcut": False}
        if block == "pointwise":
            params["ratio"] = rng.choice((1, 2, 4, 8))
        elif block == "grouped":
            params["groups"] = rng.choice((1, 2, 4, 8))
            params["channels"] = max(params["groups"], channels // params["groups"] * params["groups"])
        elif block == "bottleneck":
            params["relu"] = rng.random() < 0.7
            params["shortcut"] = rng.random() < 0.7
            params["channels"] = max(16, channels // 4 * 4)
        per_block = _stack_block_madd(params)
        widest = params["channels"] * params["ratio"] * size * size
        if widest <= MAX_STACK_ELEMENTS and per_block <= MAX_STACK_MADD // 2 and per_block > 0:
            params["blocks"] = max(2, min(10, MAX_STACK_MADD // per_block, rng.randint(2, 10)))
            return params


def _stack_block_madd(p: Mapping[str, Any]) -> int:
    c, area = p["channels"], p["size"] ** 2
    per_pixel = {"pointwise": 2 * c * c * p["ratio"], "grouped": c * c // p["groups"], "separable": 9 * c + c * c,
                 "bottleneck": c * c // 4 * 2 + 9 * (c // 4) ** 2}[p["block"]]
    return per_pixel * area


def _stacks(count: int) -> list[Case]:
    rng = random.Random(f"shufflebench-calibration-stacks/{DRAWN_IN['stacks']}")
    return [Case(f"stack/{index}", "stack", _stack(rng), "stack") for index in range(count)]


def _chains(repeats: int) -> list[Case]:
    return [Case(f"chain/{length}-{r}", "chain", {"length": length, "channels": 8, "size": 4}, "chain")
            for r in range(repeats) for length in CHAIN_LENGTHS]


def full_design() -> Design:
    """About 440 kernel graphs, the peak and layout graphs, 15 chains, `STACKS` stacks and `NETWORKS` whole generated
    networks."""
    return Design("full", tuple([LAYOUT_PROBE, *PEAK_CASES, *_chains(3), *_draw(False), *_stacks(STACKS),
                                 *_models(NETWORKS)]))


def quick_design() -> Design:
    """About 70 kernel graphs, the peak and layout graphs, 5 chains, 4 stacks and 4 whole networks (emulated
    devices, trials)."""
    return Design("quick", tuple([LAYOUT_PROBE, *PEAK_CASES, *_chains(1), *_draw(True), *_stacks(4), *_models(4)]),
                  profile_runs=20)


DESIGNS = {"full": full_design, "quick": quick_design}
OWN_GROUP = "model/own"  # the group of a user's own networks (`with_networks`)


def with_networks(design: Design, models: Sequence[str]) -> Design:
    """``design`` with a user's own whole networks added (``calibrate --network``): their kernels are fitted with the
    rest, inside the networks where they run, and they check the context factors and sigma like the generated
    ones. A family unlike the generated space is predicted much better once about eight of its networks are in the
    calibration (docs/prediction.md: family held out)."""
    own = tuple(Case(f"{OWN_GROUP}-{index}", "model", {"model": model}, OWN_GROUP)
                for index, model in enumerate(models))
    return replace(design, cases=design.cases + own) if own else design


# --- building the graphs --------------------------------------------------------------------------------------------

class GraphBuilder:
    """Nodes, inputs and seeded weights of one graph, written out as ONNX (tensor names start with ``name/``)."""

    def __init__(self, name: str) -> None:
        import numpy as np

        self.name = name
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[str] = []
        self.initializers: list[Any] = []
        self._rng = np.random.Generator(np.random.PCG64(int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)))
        self._count = 0

    def tensor(self, prefix: str) -> str:
        self._count += 1
        return f"{self.name}/{prefix}_{self._count}"

    def input(self, name: str, shape: tuple[int, ...]) -> str:
        from onnx import TensorProto, helper

        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def weight(self, shape: tuple[int, ...], scale: float = 0.1) -> str:
        from onnx import numpy_helper

        name = self.tensor("w")
        values = (self._rng.random(shape, dtype="float32") * 2 - 1) * scale
        self.initializers.append(numpy_helper.from_array(values, name))
        return name

    def constant(self, values: Any, dtype: str = "int64") -> str:
        import numpy as np
        from onnx import numpy_helper

        name = self.tensor("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int = 1, out: str | None = None, **attributes: Any) -> list[str]:
        from onnx import helper

        names = [out] if out else [self.tensor(op.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=self.tensor(op), **attributes))
        return names

    def conv(self, x: str, c_in: int, c_out: int, kernel: int, stride: int, groups: int) -> str:
        weight = self.weight((c_out, c_in // groups, kernel, kernel))
        bias = self.weight((c_out,))
        pad = kernel // 2
        return self.node("Conv", [x, weight, bias], kernel_shape=[kernel, kernel], strides=[stride, stride],
                         pads=[pad] * 4, group=groups)[0]

    def activation(self, x: str, act: str) -> str:
        if act == "relu":
            return self.node("Relu", [x])[0]
        if act == "relu6":
            return self.node("Clip", [x, self.constant(0.0, "float32"), self.constant(6.0, "float32")])[0]
        return x

    def reference(self) -> None:
        """The reference branch: its own input, a 3x3 convolution and ReLU, its own output."""
        x = self.input(REFERENCE_INPUT, REFERENCE_SHAPE)
        y = self.conv(x, REFERENCE_SHAPE[1], REFERENCE_SHAPE[1], 3, 1, 1)
        self.outputs += self.node("Relu", [y], out=REFERENCE_OUTPUT)

    def model(self) -> Any:
        """The graph as an ONNX ``ModelProto``."""
        from onnx import TensorProto, helper

        values = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in self.outputs]
        graph = helper.make_graph(self.nodes, self.name.replace("/", "_"), self.inputs, values, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        return model


def _build_conv(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    x = g.input(SUBJECT_INPUT, (1, p["c_in"], p["size"], p["size"]))
    y = g.conv(x, p["c_in"], p["c_out"], p["kernel"], p["stride"], p["groups"])
    if p["residual"]:
        out = p["size"] // p["stride"]
        y = g.node("Add", [y, g.input("residual", (1, p["c_out"], out, out))])[0]
    g.outputs.append(g.activation(y, p["act"]))


def _build_elementwise(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    shape = (1, p["channels"], p["size"], p["size"])
    x = g.input(SUBJECT_INPUT, shape)
    if p["op"] in ("Add", "Mul"):
        g.outputs += g.node(p["op"], [x, g.input("other", shape)])
    else:
        g.outputs.append(g.activation(x, "relu" if p["op"] == "Relu" else "relu6"))


def _build_concat(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    parts = [g.input(SUBJECT_INPUT if i == 0 else f"part{i}", (1, c, p["size"], p["size"]))
             for i, c in enumerate(p["parts"])]
    g.outputs += g.node("Concat", parts, axis=1)


def _build_split(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    x = g.input(SUBJECT_INPUT, (1, sum(p["parts"]), p["size"], p["size"]))
    g.outputs += g.node("Split", [x, g.constant(p["parts"])], outputs=len(p["parts"]), axis=1)


def _build_shuffle(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    c, groups, size = p["channels"], p["groups"], p["size"]
    x = g.input(SUBJECT_INPUT, (1, c, size, size))
    y = g.node("Reshape", [x, g.constant([1, groups, c // groups, size, size])])[0]
    y = g.node("Transpose", [y], perm=[0, 2, 1, 3, 4])[0]
    g.outputs += g.node("Reshape", [y, g.constant([1, c, size, size])])


def _build_pool(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    x = g.input(SUBJECT_INPUT, (1, p["channels"], p["size"], p["size"]))
    extra: dict[str, Any] = {"count_include_pad": 1} if p["op"] == "AveragePool" else {}
    g.outputs += g.node(p["op"], [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], **extra)


def _build_global_pool(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    x = g.input(SUBJECT_INPUT, (1, p["channels"], p["size"], p["size"]))
    g.outputs += g.node("Flatten", [g.node("GlobalAveragePool", [x])[0]], axis=1)


def _build_fully_connected(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    x = g.input(SUBJECT_INPUT, (1, p["inputs"]))
    weight, bias = g.weight((p["outputs"], p["inputs"]), scale=0.01), g.weight((p["outputs"],))
    g.outputs += g.node("Gemm", [x, weight, bias], transB=1)


def _build_matmul(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    x = g.input(SUBJECT_INPUT, (p["size"], p["size"]))
    g.outputs += g.node("MatMul", [x, g.weight((p["size"], p["size"]), scale=0.01)])


def _build_chain(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    y = g.input(SUBJECT_INPUT, (1, p["channels"], p["size"], p["size"]))
    bias = g.weight((1, p["channels"], 1, 1))
    for index in range(p["length"]):
        y = g.node("Relu", [y])[0] if index % 2 else g.node("Add", [y, bias])[0]
    g.outputs.append(y)


def _conv_relu(g: GraphBuilder, x: str, c_in: int, c_out: int, kernel: int = 1, groups: int = 1,
               relu: bool = True) -> str:
    y = g.conv(x, c_in, c_out, kernel, 1, groups)
    return g.activation(y, "relu") if relu else y


def _build_stack(g: GraphBuilder, p: Mapping[str, Any]) -> None:
    c = p["channels"]
    y = g.input(SUBJECT_INPUT, (1, c, p["size"], p["size"]))
    for _ in range(p["blocks"]):
        if p["block"] == "pointwise":
            y = _conv_relu(g, _conv_relu(g, y, c, c * p["ratio"]), c * p["ratio"], c)
        elif p["block"] == "grouped":
            y = _conv_relu(g, y, c, c, groups=p["groups"])
        elif p["block"] == "separable":
            y = _conv_relu(g, g.conv(y, c, c, 3, 1, c), c, c)
        else:
            inner = c // 4
            z = _conv_relu(g, y, c, inner, relu=p["relu"])
            z = _conv_relu(g, z, inner, inner, kernel=3, relu=p["relu"])
            z = g.conv(z, inner, c, 1, 1, 1)
            z = g.node("Add", [z, y])[0] if p["shortcut"] else z
            y = g.activation(z, "relu") if p["relu"] else z
    g.outputs.append(y)


BUILDERS: dict[str, Callable[[GraphBuilder, Mapping[str, Any]], None]] = {
    "chain": _build_chain, "stack": _build_stack,
    "conv": _build_conv, "elementwise": _build_elementwise, "concat": _build_concat, "split": _build_split,
    "shuffle": _build_shuffle, "pool": _build_pool, "global_pool": _build_global_pool,
    "fully_connected": _build_fully_connected, "matmul": _build_matmul,
}


def subject_shape(case: Case) -> tuple[int, ...]:
    """The shape of a kernel graph's subject input (``x``)."""
    p = case.params
    shapes = {"conv": lambda: (1, p["c_in"], p["size"], p["size"]),
              "concat": lambda: (1, p["parts"][0], p["size"], p["size"]),
              "split": lambda: (1, sum(p.get("parts", [])), p["size"], p["size"]),
              "fully_connected": lambda: (1, p["inputs"]), "matmul": lambda: (p["size"], p["size"])}
    return shapes.get(case.builder, lambda: (1, p["channels"], p["size"], p["size"]))()


def _save(model: Any, path: Path) -> Path:
    """Write ``model`` with its outputs' shapes inferred (a valid ONNX file declares them)."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx.shape_inference.infer_shapes(model), str(path))
    return path


def build_graph(case: Case, folder: Path) -> Path:
    """The ONNX file of a kernel case, the reference branch first, written into ``folder``."""
    g = GraphBuilder(case.name)
    g.reference()
    BUILDERS[case.builder](g, case.params)
    return _save(g.model(), folder / f"{case.name.replace('/', '-')}.onnx")


def build_reference(folder: Path) -> Path:
    """The graph of the reference branch alone (measured in every batch, so end-to-end times can be normalized)."""
    g = GraphBuilder("reference")
    g.reference()
    return _save(g.model(), folder / "reference.onnx")


def with_reference(source: Path, target: Path) -> Path:
    """A copy of an exported network with the reference branch added first (its own input and output)."""
    import onnx

    model = onnx.load(str(source))
    g = GraphBuilder("shufflebench_reference")
    g.reference()
    branch = g.model().graph
    graph = model.graph
    for node in reversed(branch.node):
        graph.node.insert(0, node)
    graph.input.extend(branch.input)
    graph.output.extend(branch.output)
    graph.initializer.extend(branch.initializer)
    return _save(model, target)
