"""One measured calibration graph, its kernels' times taken as ratios to the reference kernel of the same runs.

A runner measures a batch of calibration graphs and the reference graph interleaved (end-to-end times, paired by
round), then profiles each graph (per-kernel times, paired by run). Drift is taken out twice, as ratios:

* per kernel of a kernel graph: in every profiled run, the kernel's time over the reference branch's time in that
  run; a robust mean of those ratios (`trimmed_mean`) times the calibration-wide typical reference time gives the
  kernel's time;
* per kernel of a whole network: the reference branch is no help there, because each run of a large network evicts
  it from the caches before the next run starts it (measured: 109 us after the smallest graphs, up to 163 us after a
  50 ms stack, against a typical 114 us). Its robust mean raw time is scaled instead by the drift of its batch: the
  calibration-wide typical time of the reference graph over that graph's time in the same batch (`kernel_time_us`).
  When fitting, the network's kernels are then scaled together so that they add up to its end-to-end time
  (`anchored`): the profile only splits that time between them. The profiled runs come after the timed rounds, and a
  slow spell between the two went uncorrected: the summed kernels of the calibration's networks ran from 1.0 to 1.5
  times their end-to-end time (seven 1x1 grouped convolutions: 2.6 ms profiled, 1.7 ms end to end), and those with
  the most came with a reference branch 40-60% slower than usual in the same profiled runs;
* per graph: the graph's and the reference graph's end-to-end times from the same interleaved rounds, each at its
  lower quartile (`UNDISTURBED`): on a machine shared with other work a long run is interrupted more often than a
  short one, which no ratio takes out; the lower quartile is the time of a run that was left alone, which a quiet
  machine gives as its median.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from ..breakdown import optimized_nodes
from .design import REFERENCE_INPUT
from .kernels import Kernel, kernels_of, reachable_from

TRIM = 0.25  # share of the ratios cut from each end before averaging (the interquartile mean)
UNDISTURBED = 0.25  # the quantile of end-to-end times taken as a graph's undisturbed time


def trimmed_mean(values: Sequence[float], trim: float = TRIM) -> float:
    """The mean of ``values`` without the lowest and highest ``trim`` share: robust to outlying runs, and unlike
    the median it averages the profiler's whole-microsecond steps over runs."""
    ordered = sorted(values)
    cut = int(len(ordered) * trim)
    kept = ordered[cut: len(ordered) - cut] or ordered
    return statistics.fmean(kept)


@dataclass(frozen=True)
class KernelSample:
    """A kernel of a calibration graph: the kernel, its time as a ratio to the reference branch of the same runs, and
    its raw time (the interquartile mean over the profiled runs; microseconds)."""

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
    e2e_ratio: this graph's end-to-end time over the reference graph's, both at the `UNDISTURBED` quantile of the
    same timed rounds. reference_e2e_us: the reference graph's end-to-end time in the same batch, likewise.
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


def is_network(record: GraphRecord) -> bool:
    """Whether a calibration graph is a whole network (generated, or a stack of blocks) rather than one kernel."""
    return record.group.startswith("model/") or record.group == "stack"


def kernel_time_us(record: GraphRecord, sample: KernelSample, reference_us: float, reference_e2e_us: float) -> float:
    """A kernel's drift-normalized time in microseconds (module docstring): by the reference branch of its own runs in
    a kernel graph, by its batch's reference graph in a whole network. ``reference_us`` / ``reference_e2e_us``: the
    calibration-wide typical times of the reference branch and of the reference graph."""
    if is_network(record):
        return sample.raw_us * reference_e2e_us / record.reference_e2e_us
    return sample.ratio * reference_us


ANCHOR_LIMITS = (0.5, 2.0)  # a scale outside these says the end-to-end timing failed, not the profile: left at 1


def anchored(record: GraphRecord, reference_e2e_us: float, run_overhead_us: float, per_kernel_us: float) -> GraphRecord:
    """A whole network's record with its kernels scaled to add up to its end-to-end time (module docstring), in the
    calibration's units: ``reference_e2e_us`` the typical reference graph time, ``run_overhead_us + per_kernel_us x
    kernels`` a run's time outside its kernels. The reference branch counts as one more kernel of the graph at its
    own profiled time (in a network it runs evicted, as in the timed runs) and comes back anchored too
    (``reference_us``). Kernel graphs come back unchanged."""
    if not is_network(record):
        return record
    drift = reference_e2e_us / record.reference_e2e_us
    profiled = drift * (sum(s.raw_us for s in record.kernels) + record.reference_us)
    in_kernels = record.e2e_ratio * reference_e2e_us - run_overhead_us - per_kernel_us * record.executed
    scale = in_kernels / profiled if profiled > 0 else 1.0
    if not ANCHOR_LIMITS[0] <= scale <= ANCHOR_LIMITS[1]:
        scale = 1.0
    return replace(record, reference_e2e_us=reference_e2e_us, reference_us=record.reference_us * drift * scale,
                   kernels=tuple(replace(s, raw_us=s.raw_us * drift * scale) for s in record.kernels))


def undisturbed(samples: Sequence[float]) -> float:
    """The `UNDISTURBED` quantile of end-to-end times (linear interpolation; a single time is itself)."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * UNDISTURBED
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def record_of(case: str, group: str, node_profile: Mapping[str, Any], samples_s: Sequence[float],
              reference_samples_s: Sequence[float]) -> GraphRecord:
    """The record of one graph from its profile (`board_runner.profile_nodes`) and its end-to-end samples, taken in
    the same interleaved rounds as the reference graph's."""
    nodes = optimized_nodes(node_profile["optimized_graph_b64"])
    reference = reachable_from(nodes, REFERENCE_INPUT)
    kernels = kernels_of(node_profile, nodes)
    timings = {entry["name"]: entry["samples_us"] for entry in node_profile["kernels"]}
    runs = len(next(iter(timings.values())))
    per_run = [sum(timings[k.name][r] for k in kernels if k.name in reference) for r in range(runs)]
    if not reference or min(per_run) <= 0:
        raise ValueError(f"calibration graph {case}: the reference branch did not run in every profiled run")
    samples = tuple(KernelSample(k, trimmed_mean([t / q for t, q in zip(timings[k.name], per_run)]),
                                 trimmed_mean(timings[k.name]))
                    for k in kernels if k.name not in reference)
    return GraphRecord(case, group, samples, sum(1 for k in kernels if k.name in reference),
                       statistics.median(per_run), undisturbed(samples_s) / undisturbed(reference_samples_s),
                       undisturbed(reference_samples_s) * 1e6)
