"""One measured calibration graph, its kernels' times taken as ratios to the reference kernel of the same runs.

A runner measures a batch of calibration graphs and the reference graph interleaved (end-to-end times, paired by
round), then profiles each graph (per-kernel times, paired by run). Drift is taken out twice, as ratios:

* per kernel: in every profiled run, the kernel's time over the reference branch's time in that run; a robust mean
  of those ratios (`trimmed_mean`) times the calibration-wide typical reference time gives the kernel's time;
* per graph: in every timed round, the graph's end-to-end time over the reference graph's; the median of those
  ratios times the typical reference-graph time gives the graph's end-to-end time.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..breakdown import optimized_nodes
from .design import REFERENCE_INPUT
from .kernels import Kernel, kernels_of, reachable_from

TRIM = 0.2  # share of the ratios cut from each end before averaging


def trimmed_mean(values: Sequence[float], trim: float = TRIM) -> float:
    """The mean of ``values`` without the lowest and highest ``trim`` share: robust to outlying runs, and unlike
    the median it averages the profiler's whole-microsecond steps over runs."""
    ordered = sorted(values)
    cut = int(len(ordered) * trim)
    kept = ordered[cut: len(ordered) - cut] or ordered
    return statistics.fmean(kept)


@dataclass(frozen=True)
class KernelSample:
    """A kernel of a calibration graph: the kernel, its time as a ratio to the reference, and its mean raw time."""

    kernel: Kernel
    ratio: float
    raw_us: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.kernel.to_dict(), "ratio": self.ratio, "raw_us": self.raw_us}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "KernelSample":
        return cls(Kernel.from_dict(data), float(data["ratio"]), float(data["raw_us"]))


@dataclass(frozen=True)
class GraphRecord:
    """One calibration graph as measured.

    kernels: the subject's kernels (the reference branch left out). reference_kernels: how many kernels the
    reference branch ran as. reference_us: median time of the reference branch over the profiled runs.
    e2e_ratio: median over timed rounds of this graph's end-to-end time over the reference graph's.
    reference_e2e_us: the reference graph's median end-to-end time in the same batch.
    """

    case: str
    group: str
    kernels: tuple[KernelSample, ...]
    reference_kernels: int
    reference_us: float
    e2e_ratio: float
    reference_e2e_us: float

    @property
    def executed(self) -> int:
        """Kernels the whole graph ran (the reference branch's included)."""
        return len(self.kernels) + self.reference_kernels

    def to_dict(self) -> dict[str, Any]:
        return {"case": self.case, "group": self.group, "kernels": [k.to_dict() for k in self.kernels],
                "reference_kernels": self.reference_kernels, "reference_us": self.reference_us,
                "e2e_ratio": self.e2e_ratio, "reference_e2e_us": self.reference_e2e_us}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GraphRecord":
        return cls(str(data["case"]), str(data["group"]), tuple(KernelSample.from_dict(k) for k in data["kernels"]),
                   int(data["reference_kernels"]), float(data["reference_us"]), float(data["e2e_ratio"]),
                   float(data["reference_e2e_us"]))


def paired_ratio(samples: Sequence[float], reference: Sequence[float]) -> float:
    """Median over rounds of ``samples[i] / reference[i]`` (both from the same interleaved loop)."""
    return statistics.median(a / b for a, b in zip(samples, reference) if b > 0)


def record_of(case: str, group: str, node_profile: Mapping[str, Any], samples_s: Sequence[float],
              reference_samples_s: Sequence[float]) -> GraphRecord:
    """The record of one graph from its profile (`board_runner.profile_nodes`) and its end-to-end samples, paired
    by round with the reference graph's."""
    nodes = optimized_nodes(node_profile["optimized_graph_b64"])
    reference = reachable_from(nodes, REFERENCE_INPUT)
    kernels = kernels_of(node_profile, nodes)
    timings = {entry["name"]: entry["samples_us"] for entry in node_profile["kernels"]}
    runs = len(next(iter(timings.values())))
    per_run = [sum(timings[k.name][r] for k in kernels if k.name in reference) for r in range(runs)]
    if not reference or min(per_run) <= 0:
        raise ValueError(f"calibration graph {case}: the reference branch did not run in every profiled run")
    samples = tuple(KernelSample(k, trimmed_mean([t / q for t, q in zip(timings[k.name], per_run)]),
                                 statistics.fmean(timings[k.name]))
                    for k in kernels if k.name not in reference)
    return GraphRecord(case, group, samples, sum(1 for k in kernels if k.name in reference),
                       statistics.median(per_run), paired_ratio(samples_s, reference_samples_s),
                       statistics.median(reference_samples_s) * 1e6)
