"""`Counters`: what one inference of a model executed on a counted device, and ratios of such counts.

A counted device runs a few counted inferences after warm-up (each between two markers, so start-up never enters
them) and gets one set of events per inference, in canonical names (`EVENTS`): ``instructions``, ``loads`` and
``stores`` (memory accesses; valgrind counts data reads and writes, the qemu plugin every load and store the
emulated CPU makes), and where the tool simulates caches ``l1_misses`` (instruction fetches, loads and stores that
miss the first level) and ``ll_misses`` (those that also miss the last level).

The figure reported is the counted inference with the FEWEST instructions, with all its events. Inferences of one
session are not all equal: the first allocates its buffers, and the next few still differ a little while the
allocator settles (measured on ShuffleNet V2 1.0x: 55.51M, 54.95M, then 54.709M instructions under callgrind;
76.60M, 76.059M, then 76.078M under the qemu plugin, the same sequence in every process). The fewest is what the
model costs once settled, and it repeats from process to process; every inference's events are kept (``runs``) and
a spread above `SPREAD_WARNING` is reported.

Estimated cycles, where caches are simulated: ``L1 hits + 5 x last-level hits + 35 x last-level misses``, over
instruction fetches, loads and stores (the usual estimate, as in iai-callgrind). It is an ESTIMATE: no pipeline,
no overlap of misses, no prefetching; it only weighs memory traffic by where it is served from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from ..measure.ratio import Ratio

EVENTS = ("instructions", "loads", "stores", "l1_misses", "ll_misses")
LL_HIT_CYCLES = 5
MEMORY_CYCLES = 35
CYCLES_FORMULA = (f"L1 hits + {LL_HIT_CYCLES} x last-level hits + {MEMORY_CYCLES} x last-level misses "
                  "(instruction fetches, loads and stores); an estimate")
#: Figures a counted device can report, in the order they are shown.
FIGURES = ("instructions", "estimated_cycles", "loads", "stores", "l1_misses", "ll_misses")
#: How closely the counted figure of one model repeats between processes (measured: within 0.03%, see
#: docs/counters.md). Counted ratios carry this band, and smaller differences are "no change".
REPRODUCIBILITY = 0.001
#: Counted inferences of one process differing by more than this fraction of instructions are reported.
SPREAD_WARNING = 0.02
TOOLS = ("valgrind", "qemu-plugin")


@dataclass(frozen=True)
class Counters:
    """Per-inference counts of one model on one counted device.

    tool: ``valgrind`` or ``qemu-plugin``. runs: the events of every counted inference, in order (dicts of `EVENTS`
    names to non-negative integers, the same names in each). warmup: inferences run before them (instrumented, not
    counted). context: what the counts depend on besides the model (tool and its version, onnxruntime, the CPU
    model emulated or the instruction set presented, the simulated caches); counts are only compared where it is
    equal.
    """

    tool: str
    runs: tuple[Mapping[str, int], ...]
    warmup: int = 1
    context: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tool not in TOOLS:
            raise ValueError(f"Counters.tool={self.tool!r}; allowed: {', '.join(TOOLS)}")
        if not self.runs:
            raise ValueError("Counters needs the events of at least one counted inference")
        names = set(self.runs[0])
        if "instructions" not in names or not names <= set(EVENTS):
            raise ValueError(f"counted events {sorted(names)}: need instructions, allowed: {', '.join(EVENTS)}")
        for events in self.runs:
            if set(events) != names:
                raise ValueError("every counted inference must carry the same events")
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in events.values()):
                raise ValueError(f"counted events must be integers >= 0: {dict(events)}")
        object.__setattr__(self, "runs", tuple(dict(events) for events in self.runs))
        object.__setattr__(self, "context", dict(self.context))

    @cached_property
    def chosen(self) -> int:
        """Index of the counted inference reported: the one with the fewest instructions (the first of equals)."""
        return min(range(len(self.runs)), key=lambda i: (self.runs[i]["instructions"], i))

    @property
    def events(self) -> Mapping[str, int]:
        """The events of the inference reported."""
        return self.runs[self.chosen]

    @property
    def instructions(self) -> int:
        return self.events["instructions"]

    loads = property(lambda self: self.events.get("loads"), doc="Loads (data reads) per inference, or None.")
    stores = property(lambda self: self.events.get("stores"), doc="Stores (data writes) per inference, or None.")
    l1_misses = property(lambda self: self.events.get("l1_misses"), doc="First-level misses, or None.")
    ll_misses = property(lambda self: self.events.get("ll_misses"), doc="Last-level misses, or None.")

    @property
    def estimated_cycles(self) -> int | None:
        """``L1 hits + 5 x LL hits + 35 x LL misses`` (see the module docstring); None without a cache simulation."""
        e = self.events
        if not all(k in e for k in EVENTS):
            return None
        accesses = e["instructions"] + e["loads"] + e["stores"]
        l1_hits = accesses - e["l1_misses"]
        ll_hits = e["l1_misses"] - e["ll_misses"]
        return l1_hits + LL_HIT_CYCLES * ll_hits + MEMORY_CYCLES * e["ll_misses"]

    def figure(self, name: str) -> int | None:
        """One of `FIGURES` (None where this tool does not measure it)."""
        if name not in FIGURES:
            raise ValueError(f"counted figure {name!r}; allowed: {', '.join(FIGURES)}")
        return self.estimated_cycles if name == "estimated_cycles" else self.events.get(name)

    @property
    def figures(self) -> dict[str, int]:
        """Every figure this tool measured, in `FIGURES` order."""
        found = {name: self.figure(name) for name in FIGURES}
        return {name: value for name, value in found.items() if value is not None}

    @property
    def primary(self) -> str:
        """The figure that stands for speed: estimated cycles where caches are simulated, else instructions."""
        return "estimated_cycles" if self.estimated_cycles is not None else "instructions"

    @property
    def spread(self) -> float:
        """(most - fewest) / fewest instructions over the counted inferences."""
        counts = [events["instructions"] for events in self.runs]
        return (max(counts) - min(counts)) / min(counts) if min(counts) else 0.0

    @property
    def warnings(self) -> tuple[str, ...]:
        """What limits trust in the counts (empty when nothing)."""
        if self.spread > SPREAD_WARNING:
            return (f"uneven: the {len(self.runs)} counted inferences differ by {self.spread:.1%} in instructions; "
                    "the fewest is reported (count more runs: counter_runs in the device profile)",)
        return ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: the reported figures on top, every counted inference under ``runs``."""
        return {
            **{name: self.figure(name) for name in FIGURES},
            "estimated_cycles_formula": CYCLES_FORMULA if self.estimated_cycles is not None else None,
            "primary": self.primary,
            "tool": self.tool,
            "statistic": "the counted inference with the fewest instructions",
            "chosen": self.chosen,
            "spread": self.spread,
            "runs": [dict(events) for events in self.runs],
            "warmup": self.warmup,
            "context": dict(self.context),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Counters":
        """Inverse of `to_dict`: rebuilt from the per-inference events; derived figures are recomputed."""
        return cls(data["tool"], tuple(data["runs"]), int(data["warmup"]), dict(data["context"]))


def count_ratio(numerator: Counters, denominator: Counters, figure: str | None = None) -> Ratio:
    """``numerator / denominator`` of a counted figure (default: the denominator's primary one), as a `Ratio` whose
    interval is the counters' reproducibility band (`REPRODUCIBILITY` on each side), marked ``counted``."""
    name = figure or denominator.primary
    top, bottom = numerator.figure(name), denominator.figure(name)
    if top is None or bottom is None or bottom == 0:
        raise ValueError(f"counted figure {name!r} is missing or zero; cannot take a ratio")
    estimate = top / bottom
    band = (1 + REPRODUCIBILITY) ** 2  # each side may be off by the band
    return Ratio(estimate, estimate / band, estimate * band, 1.0, True, counted=True)


def per_inference(events: list[dict[str, int]], overhead: dict[str, int]) -> list[dict[str, int]]:
    """Each counted inference's events minus the markers' own cost (an empty marked region), never below zero."""
    return [{name: max(0, value - overhead.get(name, 0)) for name, value in run.items()} for run in events]


def split_models(events: list[dict[str, int]], models: int, runs: int) -> list[list[dict[str, int]]]:
    """The tool's marked regions in order, as written by the board runner's counted loop: first one empty region
    (the markers' own cost), then ``runs`` regions per model, model after model. Returns each model's counted
    inferences, the overhead already subtracted. Raises ValueError when the number of regions does not fit."""
    expected = 1 + models * runs
    if len(events) != expected:
        raise ValueError(f"the counter recorded {len(events)} marked regions; expected {expected} (1 empty, then "
                         f"{runs} per model for {models} model{'s' if models != 1 else ''})")
    overhead, counted = events[0], per_inference(events[1:], events[0])
    return [counted[i * runs:(i + 1) * runs] for i in range(models)]
