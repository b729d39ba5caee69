"""Predict a model's latency on a calibrated device, kernel by kernel, and explain the gap to its multiply-adds.

1. The kernels: onnxruntime on this machine optimizes the model as the device's onnxruntime would (the device's
   optimization level; without the blocked NCHWc layout when the device does not use it) and runs it once under
   its profiler, which gives every executed kernel with its shapes. Nothing is timed: only the structure is used.
   When the device's layout cannot be reproduced here (another NCHWc block size, another onnxruntime version) the
   prediction says its graph is approximate.
2. Each kernel goes to its kind's predictor (`fit.KindModel`): a roofline over the device's measured peaks, a fixed
   overhead, a learned correction where it helped. Kinds the calibration never saw enough of use the pooled
   predictor of their group, and are flagged.
3. The graph: ``run_overhead + per_kernel x kernels + sum(context x kernel)`` (`calibration.GraphModel`; the
   memory-bound kinds' context factors grow with the network's size, its kernels' predicted time alone), with an
   interval from the calibration's whole-network errors and the spread of the kernels' predictors.
4. The gap between the FLOPs-theoretical latency (multiply-adds at the measured peak rate) and the prediction, by
   cause: memory access (G1, G2), fragmentation and per-kernel overhead (G3), element-wise work (G4), and compute
   below peak (kernels slower than the peak rate, padding of the blocked layout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

from ..breakdown import exported_nodes, map_kernels, optimized_nodes
from ..prepared import SEED, PreparedModel
from .calibration import Calibration
from .fit import Components, KindModel
from .kernels import Kernel, base_kind, is_compute, kernels_of
from .summary import PredictionSummary

PREDICTION_SCHEMA = "shufflebench.prediction/1"
Z95 = 1.96
#: Kinds whose roofline time is element-wise work (G4); other kinds without multiply-adds move data.
ELEMENTWISE_KINDS = frozenset({"elementwise", "elementwise.binary"})
GROUPED_KINDS = frozenset({"conv.depthwise", "conv.grouped"})
REORDER_KINDS = frozenset({"reorder"})
CAUSES = {
    "memory": ("G1, G2", "memory access: memory-bound convolutions, data movement, layout reorders"),
    "fragmentation": ("G3", "fragmentation: each kernel's fixed cost and the run's own overhead"),
    "elementwise": ("G4", "element-wise work beyond its fixed cost"),
    "compute_below_peak": ("", "compute below peak: kernels slower than the peak rate, padded channels"),
}


@dataclass(frozen=True)
class KernelPrediction:
    """One executed kernel's prediction: what it is, what it covers of the exported graph, its predicted time by
    part (microseconds, the context factor of its group applied), and whether its predictor is a fallback."""

    kernel: Kernel
    category: str
    covers: tuple[str, ...]
    parts: Components
    fallback: bool

    @property
    def predicted_us(self) -> float:
        return self.parts.total_us

    @property
    def bound(self) -> str:
        return self.parts.bound

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.kernel.name, "op": self.kernel.op, "kind": self.kernel.kind, "category": self.category,
                "covers": list(self.covers), "inputs": [list(s) for s in self.kernel.inputs],
                "outputs": [list(s) for s in self.kernel.outputs], "flops_madd": self.kernel.madd,
                "bytes": self.kernel.bytes, "arithmetic_intensity": self.kernel.arithmetic_intensity,
                "predicted_us": self.predicted_us, "overhead_us": self.parts.overhead_us,
                "compute_us": self.parts.compute_us, "memory_us": self.parts.memory_us, "bound": self.bound,
                "fallback": self.fallback}


@dataclass(frozen=True)
class Prediction:
    """A model's predicted latency on a calibrated device, its kernels, and the gap to its multiply-adds explained.

    theoretical_ms: multiply-adds (layer table) at the measured peak rate. causes: milliseconds per cause and part,
    adding up to ``predicted_ms - theoretical_ms``. graph: ``exact`` when the kernels were reproduced as the device
    runs them, else why not. warnings: the calibration's (`Calibration.warnings`).
    """

    model: str
    flops_madd: int
    calibration: str
    device: str
    emulated: bool
    predicted_ms: float
    interval_ms: tuple[float, float]
    theoretical_ms: float
    run_overhead_ms: float
    kernels: tuple[KernelPrediction, ...]
    causes: dict[str, dict[str, float]]
    graph: str
    peaks: dict[str, float]
    warnings: tuple[str, ...] = ()

    @property
    def gap_ms(self) -> float:
        return self.predicted_ms - self.theoretical_ms

    def cause_ms(self, cause: str) -> float:
        return sum(self.causes[cause].values())

    def bounds(self) -> dict[str, float]:
        """Share of the kernels' predicted time by bound (compute, memory, overhead)."""
        total = sum(k.predicted_us for k in self.kernels) or 1.0
        shares: dict[str, float] = {}
        for kernel in self.kernels:
            shares[kernel.bound] = shares.get(kernel.bound, 0.0) + kernel.predicted_us / total
        return shares

    def summary(self) -> PredictionSummary:
        """What `profile` and `compare` carry next to a measurement (the kernels left out)."""
        return PredictionSummary(self.predicted_ms, self.interval_ms, self.theoretical_ms,
                                 {cause: self.cause_ms(cause) for cause in self.causes}, self.calibration,
                                 self.graph, self.peaks["madd_per_s"], self.peaks["memory_bandwidth_bytes_per_s"])

    def to_dict(self) -> dict[str, Any]:
        return {"schema": PREDICTION_SCHEMA, "model": self.model, "flops_madd": self.flops_madd,
                "device": self.device, "emulated": self.emulated, "calibration": self.calibration,
                "predicted_ms": self.predicted_ms, "interval_ms": list(self.interval_ms),
                "theoretical_ms": self.theoretical_ms, "gap_ms": self.gap_ms, "run_overhead_ms": self.run_overhead_ms,
                "causes": {cause: {"ms": self.cause_ms(cause), "guidelines": CAUSES[cause][0], "parts": parts}
                           for cause, parts in self.causes.items()},
                "bounds": self.bounds(), "graph": self.graph, "peaks": dict(self.peaks),
                "warnings": list(self.warnings), "kernels": [k.to_dict() for k in self.kernels]}


@lru_cache(maxsize=None)
def local_nchwc_block() -> int:
    """The NCHWc channel block of this machine's onnxruntime (0: it does not use the blocked layout)."""
    import tempfile
    from pathlib import Path

    from ..measure import board_runner
    from .design import LAYOUT_PROBE, build_graph, nchwc_block

    with tempfile.TemporaryDirectory(prefix="shufflebench-probe-") as folder:
        path = build_graph(LAYOUT_PROBE, Path(folder))
        opened = board_runner.open_model({"model": str(path)})
        profile = board_runner.profile_nodes(opened, 1)
    nodes = optimized_nodes(profile["optimized_graph_b64"])
    for kernel in kernels_of(profile, nodes):
        if kernel.domain and base_kind(kernel.kind) == "conv.pointwise":
            return nchwc_block(kernel.outputs[0][1])
    return 0


def graph_settings(calibration: Calibration) -> tuple[str, str]:
    """The optimization level that reproduces the device's graph here, and ``exact`` or why it is approximate."""
    import onnxruntime

    layout = calibration.layout
    level = str(layout.get("optimization_level") or calibration.device.optimization_level)
    notes = []
    block = int(layout.get("nchwc_block") or 0)
    if level == "all":
        local = local_nchwc_block()
        if block == 0 and local:
            level = "extended"  # the device's onnxruntime does not use the blocked layout: neither do we
        elif block != local:
            notes.append(f"NCHWc block {local} here, {block} on the device")
    if calibration.device.provider != "CPUExecutionProvider":
        notes.append(f"kernels reproduced with the CPU execution provider, the device runs {calibration.device.provider}")
    if layout.get("onnxruntime") and layout["onnxruntime"] != onnxruntime.__version__:
        notes.append(f"onnxruntime {onnxruntime.__version__} here, {layout['onnxruntime']} on the device")
    return level, "exact" if not notes else "approximate: " + "; ".join(notes)


def executed_kernels(model: PreparedModel, level: str) -> tuple[list[Kernel], list[str], list[tuple[str, ...]]]:
    """The kernels onnxruntime runs for ``model`` at optimization ``level`` (one profiled run on this machine), with
    each kernel's breakdown category and the exported nodes it covers."""
    from ..measure import board_runner

    request = {"model": str(model.onnx_path), "seed": SEED, "graph_optimization_level": level,
               "inputs": {model.input_name: {"shape": list(model.input_shape), "dtype": "float32"}}}
    opened = board_runner.open_model(request)
    profile = board_runner.profile_nodes(opened, 1)
    nodes = optimized_nodes(profile["optimized_graph_b64"])
    kernels = kernels_of(profile, nodes)
    mapped = map_kernels(dict(profile, optimized_nodes=nodes), exported_nodes(model.onnx_path))
    return kernels, [m.category for m in mapped], [m.covers for m in mapped]


def _split(kind: str, kernel: KernelPrediction, peak_us: float, causes: dict[str, dict[str, float]]) -> None:
    """Add one kernel's predicted parts (microseconds) to the causes (milliseconds)."""
    def add(cause: str, part: str, us: float) -> None:
        causes[cause][part] = causes[cause].get(part, 0.0) + us / 1000.0

    parts = kernel.parts
    add("fragmentation", "per_kernel_overhead", parts.overhead_us)
    roof = max(parts.compute_us, parts.memory_us)
    base = base_kind(kind)
    if is_compute(kind):
        add("compute_below_peak", "kernel_efficiency", parts.compute_us - peak_us)
        if parts.memory_us > parts.compute_us:
            grouped = "grouped_conv_memory_bound" if base in GROUPED_KINDS else "dense_conv_memory_bound"
            add("memory", grouped, parts.memory_us - parts.compute_us)
    elif base in ELEMENTWISE_KINDS:
        add("elementwise", "elementwise_kernels", roof)
    elif base in REORDER_KINDS:
        add("memory", "layout_reorders", roof)
    else:
        add("memory", "data_movement", roof)


@dataclass(frozen=True)
class KernelTerms:
    """One kernel as the graph model sees it: its kind's predictor, whether that is a fallback, its time alone
    (components) and its context factor in the network it runs in."""

    model: KindModel
    fallback: bool
    alone: Components
    context: float


def kernel_terms(kernels: Sequence[Kernel], calibration: Calibration) -> list[KernelTerms]:
    """Each kernel of one network with its predictor, its time alone and its context factor, which for memory-bound
    kinds depends on the network's size: the sum of its kernels' times alone (`calibration.GraphModel`)."""
    fitted = calibration.fitted
    models = [fitted.model_for(kernel.kind) for kernel in kernels]
    alone = [model.components(kernel, calibration.peaks) for kernel, (model, _) in zip(kernels, models)]
    network_us = sum(parts.total_us for parts in alone)
    return [KernelTerms(model, fallback, parts, fitted.graph.context_for(kernel.kind, network_us))
            for kernel, (model, fallback), parts in zip(kernels, models, alone)]


def predict_model(model: PreparedModel, calibration: Calibration) -> Prediction:
    """Predict ``model`` on ``calibration``'s device (module docstring)."""
    level, graph = graph_settings(calibration)
    kernels, categories, covers = executed_kernels(model, level)
    fitted, peaks = calibration.fitted, calibration.peaks
    causes: dict[str, dict[str, float]] = {cause: {} for cause in CAUSES}
    predictions = []
    variance = 0.0
    padded_madd = 0
    graph_model = fitted.graph
    modelled_us = 0.0  # the graph model: context x kernels + per-kernel term (the run's own overhead added below)
    for kernel, category, covered, terms in zip(kernels, categories, covers, kernel_terms(kernels, calibration)):
        kind, parts, context = kernel.kind, terms.alone, terms.context
        # A kernel's fixed cost outside the profiler: its kind's overhead (profiled) plus the graph's per-kernel
        # term, which takes the profiler's own share back out; never below nothing.
        overhead = max(0.0, context * parts.overhead_us + graph_model.per_kernel_us)
        scaled = Components(overhead, context * parts.compute_us, context * parts.memory_us)
        prediction = KernelPrediction(kernel, category, covered, scaled, terms.fallback)
        predictions.append(prediction)
        peak_us = kernel.madd / peaks.madd_per_s * 1e6
        padded_madd += kernel.madd
        _split(kind, prediction, peak_us, causes)
        variance += (prediction.predicted_us * terms.model.spread) ** 2
        modelled_us += context * parts.total_us + graph_model.per_kernel_us
    kernels_us = sum(p.predicted_us for p in predictions)
    total_us = max(modelled_us + graph_model.run_overhead_us, 0.5 * kernels_us)
    causes["fragmentation"]["per_run_overhead"] = (total_us - kernels_us) / 1000.0
    flops = model.cost.flops_madd
    causes["compute_below_peak"]["padding"] = (padded_madd - flops) / peaks.madd_per_s * 1000.0
    sigma = math.sqrt(fitted.graph.sigma ** 2 + variance / max(kernels_us, 1e-9) ** 2)
    predicted_ms = total_us / 1000.0
    return Prediction(
        model=model.label, flops_madd=flops, calibration=calibration.label, device=calibration.device.name,
        emulated=calibration.emulated, predicted_ms=predicted_ms,
        interval_ms=(predicted_ms * math.exp(-Z95 * sigma), predicted_ms * math.exp(Z95 * sigma)),
        theoretical_ms=flops / peaks.madd_per_s * 1000.0, run_overhead_ms=(total_us - kernels_us) / 1000.0,
        kernels=tuple(predictions), causes=causes, graph=graph,
        peaks={"madd_per_s": peaks.madd_per_s, "memory_bandwidth_bytes_per_s": peaks.memory_bandwidth_bytes_per_s,
               "cache_bandwidth_bytes_per_s": peaks.cache_bandwidth_bytes_per_s},
        warnings=calibration.warnings)
