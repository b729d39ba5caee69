"""Reproduce the papers' experiments on one device, end to end, resumably (what ``bench.py`` runs).

Experiments, each written as its own schema-versioned JSON file under ``results/<device>/`` the moment it finishes:

* ``zoo-<model>.json``      -- `profile` of each zoo network (counts next to latency);
* ``v1-speedup.json``       -- ShuffleNet V1 Table 8: g=3 at 0.5x, 1x, 2x against AlexNet (`compare`);
* ``guidelines-g1..g4.json`` -- ShuffleNet V2 Tables 1-4 (`guidelines`);
* ``breakdown-<model>.json`` -- the operator breakdown (Figure 2) of ShuffleNet V1 1x g=3 and MobileNet V2 1x;
* ``fidelity.json``         -- the measurement itself checked: profile's median against a bare
  ``InferenceSession.run`` loop, and five repeated profiles against each other (``cpu``-like devices only).

A run that is interrupted (Ctrl-C, a crash) keeps every finished file; the next run measures only what is missing,
and a run with nothing left to measure only rebuilds ``REPORT.md`` and the plots.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from .breakdown import Breakdown
from .compare import Comparison, compare_models
from .devices import DeviceProfile
from .errors import UsageError
from .files import read_json, write_json_atomic
from .guidelines import EXPERIMENTS, GuidelineResults, run_experiments
from .measure.sampling import SamplingPolicy
from .models import resolve_model
from .prepared import PreparedModel
from .profile import ProfileResult, profile_model

BENCH_SCHEMA = "shufflebench.bench"
# Raised whenever an experiment's data changes shape; files of another version are measured again.
BENCH_VERSION = 5


@dataclass(frozen=True)
class Plan:
    """How much to measure: the zoo, resolution, budgets (seconds per model), guideline widths."""

    zoo: tuple[str, ...]
    resolution: int
    profile_budget_s: float
    compare_budget_s: float
    guideline_budget_s: float
    guideline_widths: tuple[int, ...]
    breakdown_models: tuple[str, ...]
    fidelity_repeats: int
    warmup: int


FULL = Plan(
    zoo=("shufflenet_v1", "shufflenet_v2", "mobilenet_v1", "mobilenet_v2", "alexnet", "resnet50",
         "shufflenet_v1:width=0.5", "shufflenet_v1:width=2.0", "shufflenet_v2:width=0.5", "shufflenet_v2:width=2.0"),
    resolution=224, profile_budget_s=10.0, compare_budget_s=10.0, guideline_budget_s=4.0, guideline_widths=(1, 2, 4),
    breakdown_models=("shufflenet_v1", "mobilenet_v2"), fidelity_repeats=5, warmup=10,
)
QUICK = Plan(
    zoo=("shufflenet_v2", "mobilenet_v2"), resolution=224, profile_budget_s=1.0, compare_budget_s=0.7,
    guideline_budget_s=0.4, guideline_widths=(1,), breakdown_models=("shufflenet_v1", "mobilenet_v2"),
    fidelity_repeats=2, warmup=2,
)
TABLE8 = ("shufflenet_v1:groups=3,width=0.5", "shufflenet_v1:groups=3,width=1.0", "shufflenet_v1:groups=3,width=2.0",
          "alexnet")


@dataclass(frozen=True)
class Fidelity:
    """How far profile's numbers are from a bare ``InferenceSession.run`` loop (see `measure_fidelity`); times in
    milliseconds, relative differences as fractions."""

    model: str
    paired_runs: int
    paired_profile_vs_bare: float
    profile_medians_ms: list[float]
    bare_loop_medians_ms: list[float]
    sequential_profile_vs_bare: float
    profile_spread: float
    profile_ci95_ms: list[list[float] | None]
    profile_cis_share_a_value: bool
    profile_effective_runs: list[list[int]]
    loop_overhead_us: float
    machine_drift: float


@dataclass(frozen=True)
class BenchResults:
    """Every experiment of one device, finished now or read back from an earlier run; ``seconds`` is what measuring
    them took in all (resumed runs add up the original times)."""

    device: DeviceProfile
    zoo: tuple[ProfileResult, ...]
    v1_speedup: Comparison
    guidelines: tuple[GuidelineResults, ...]
    breakdowns: tuple[tuple[str, Breakdown], ...]
    fidelity: Fidelity | None
    seconds: float


def _policy(budget: float, plan: Plan) -> SamplingPolicy:
    return SamplingPolicy(warmup_runs=plan.warmup, min_runs=10, budget_s=budget)


def _slug(label: str) -> str:
    return label.replace(":", "-").replace(",", "-").replace("=", "")


def _prepared(model: str, plan: Plan, device: DeviceProfile) -> PreparedModel:
    return PreparedModel(resolve_model(model, overrides={"resolution": plan.resolution}, batch=device.batch))


class Suite:
    """The experiments of one device, each a function writing one JSON file, skipped when the file exists."""

    def __init__(self, device: DeviceProfile, out: Path, plan: Plan, log: Callable[[str], None] = print) -> None:
        if device.counted:
            raise UsageError(f"bench.py times models; {device.name} counts instructions instead (its experiments: "
                             "python benchmarks/counters.py)")
        self.device, self.out, self.plan, self.log = device, out, plan, log
        self.measured: list[str] = []
        self.seconds = 0.0
        # What a stored experiment must have been measured with to be reused (as JSON gives it back).
        self.key = json.loads(json.dumps({"plan": asdict(plan), "device_profile": device.to_dict()}))

    def _once(self, name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The data of experiment ``name``: read back when a file of this version holds it, measured under this
        plan on this device profile (a quick run's files never stand in for a full run's); else measured and written
        at once."""
        path = self.out / f"{name}.json"
        if path.is_file():
            why = "is unreadable or from another version"
            try:
                stored = read_json(path, schema_prefix=BENCH_SCHEMA)
                if stored["schema"] == f"{BENCH_SCHEMA}/{BENCH_VERSION}":
                    if all(stored.get(key) == value for key, value in self.key.items()):
                        self.seconds += stored["seconds"]
                        return stored["data"]
                    why = "was measured under another plan or device profile"
            except UsageError:
                pass
            self.log(f"{path} {why}; measuring it again")
        self.log(f"measuring {name} on {self.device.name}")
        started = time.perf_counter()
        data = measure()
        seconds = time.perf_counter() - started
        write_json_atomic(path, {"schema": f"{BENCH_SCHEMA}/{BENCH_VERSION}", "experiment": name,
                                 "device": self.device.name, "emulated": self.device.emulated, "seconds": seconds,
                                 **self.key, "data": data})
        self.measured.append(name)
        self.seconds += seconds
        return data

    def zoo(self) -> tuple[ProfileResult, ...]:
        results = []
        for label in self.plan.zoo:
            model = _prepared(label, self.plan, self.device)

            def measure(model: PreparedModel = model) -> dict[str, Any]:
                return profile_model(model, self.device, _policy(self.plan.profile_budget_s, self.plan)).to_dict()

            results.append(ProfileResult.from_dict(self._once(f"zoo-{_slug(model.short_label)}", measure)))
        return tuple(results)

    def v1_speedup(self) -> Comparison:
        models = [_prepared(label, self.plan, self.device) for label in TABLE8]
        policy = _policy(self.plan.compare_budget_s, self.plan)
        return Comparison.from_dict(self._once("v1-speedup", lambda: compare_models(
            models, self.device, policy, baseline=len(models) - 1).to_dict()))

    def guidelines(self) -> tuple[GuidelineResults, ...]:
        policy = _policy(self.plan.guideline_budget_s, self.plan)

        def measure(name: str) -> dict[str, Any]:
            return run_experiments(self.device, policy, only=[name], widths=list(self.plan.guideline_widths)).to_dict()

        return tuple(GuidelineResults.from_dict(self._once(f"guidelines-{name}", lambda: measure(name)))
                     for name in EXPERIMENTS)

    def breakdowns(self) -> tuple[tuple[str, Breakdown], ...]:
        if self.device.backend != "onnxruntime":
            return ()
        results = []
        for label in self.plan.breakdown_models:
            model = _prepared(label, self.plan, self.device)

            def measure(model: PreparedModel = model) -> dict[str, Any]:
                result = profile_model(model, self.device, _policy(self.plan.profile_budget_s, self.plan),
                                       breakdown=True)
                assert result.breakdown is not None
                return {"label": model.short_label, **result.breakdown.to_dict()}

            data = self._once(f"breakdown-{_slug(model.short_label)}", measure)
            results.append((data["label"], Breakdown.from_dict(data)))
        return tuple(results)

    def fidelity(self) -> Fidelity | None:
        if self.device.location != "local" or self.device.backend != "onnxruntime":
            return None
        return Fidelity(**self._once("fidelity", lambda: asdict(measure_fidelity(self.device, self.plan))))

    def run_all(self) -> BenchResults:
        """Every experiment (finished ones are read back); the folder is made with the first file written."""
        return BenchResults(self.device, self.zoo(), self.v1_speedup(), self.guidelines(), self.breakdowns(),
                            self.fidelity(), self.seconds)


def measure_fidelity(device: DeviceProfile, plan: Plan) -> Fidelity:
    """How far profile's numbers are from a bare ``InferenceSession.run`` loop, for ShuffleNet V2 1.0x.

    Three views, because this kind of machine drifts (medians of consecutive one-second blocks of one session were
    seen to move by 25%), which no timing code can remove:

    * paired: the session profile builds (board_runner, the same options) and a bare session, run alternately in
      one hand-written ``time.perf_counter`` loop, so drift hits both alike -- this isolates the tool;
    * sequential: ``fidelity_repeats`` whole profile runs, each followed by a bare loop of as many runs on a fresh
      session -- this is what a user comparing two invocations sees, drift included;
    * loop overhead: the timing loop around a run that does nothing (seconds per run inside the timed bracket).
    """
    import numpy as np
    import onnxruntime as ort

    from .measure import board_runner
    from .measure.sampling import collect
    from .runners.board_protocol import board_request

    model = _prepared("shufflenet_v2", plan, device)
    policy = _policy(plan.profile_budget_s, plan)
    request = dict(board_request(model, device, policy, return_outputs=False), model=str(model.onnx_path))

    def bare_session() -> Any:
        return ort.InferenceSession(request["model"], board_runner._session_options(ort, board_runner.validate_request(
            request)), providers=[device.provider])

    # paired
    profiled = board_runner.open_model(request)
    bare = bare_session()
    feeds = profiled.feeds
    for _ in range(plan.warmup):
        profiled.run_once()
        bare.run(None, feeds)
    a: list[float] = []
    b: list[float] = []
    deadline = time.perf_counter() + plan.profile_budget_s
    while time.perf_counter() < deadline or len(a) < 50:
        t0 = time.perf_counter()
        profiled.run_once()
        t1 = time.perf_counter()
        bare.run(None, feeds)
        t2 = time.perf_counter()
        a.append(t1 - t0)
        b.append(t2 - t1)
    paired = float(np.median(a) / np.median(b) - 1)

    # sequential
    medians, bare_medians, intervals, worth = [], [], [], []
    for _ in range(plan.fidelity_repeats):
        measurement = profile_model(model, device, policy, verify=False).timed
        medians.append(measurement.median)
        intervals.append(measurement.ci95)
        worth.append([measurement.effective_runs, measurement.runs])
        session = bare_session()
        for _ in range(plan.warmup):
            session.run(None, feeds)
        times = []
        for _ in range(measurement.runs):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - start)
        bare_medians.append(float(np.median(times)))
    profile_median = statistics.median(medians)

    overhead = collect(lambda: None, SamplingPolicy(warmup_runs=10, min_runs=1000, max_runs=1000, budget_s=5.0))
    # Does one value lie in every run's interval? If not, the runs disagree beyond what each one's
    # (dependence-widened) interval allows: the machine changed between runs, not only within them.
    share = all(ci is not None for ci in intervals) and (
        max(ci[0] for ci in intervals if ci) <= min(ci[1] for ci in intervals if ci))
    return Fidelity(
        model=model.label,
        paired_runs=len(a),
        paired_profile_vs_bare=paired,
        profile_medians_ms=[m * 1e3 for m in medians],
        bare_loop_medians_ms=[m * 1e3 for m in bare_medians],
        sequential_profile_vs_bare=profile_median / statistics.median(bare_medians) - 1,
        profile_spread=(max(medians) - min(medians)) / profile_median,
        profile_ci95_ms=[None if ci is None else [ci[0] * 1e3, ci[1] * 1e3] for ci in intervals],
        profile_cis_share_a_value=share,
        profile_effective_runs=worth,
        loop_overhead_us=statistics.median(overhead.samples_s) * 1e6,
        machine_drift=machine_drift(blocks=plan.fidelity_repeats * 2),
    )


def machine_drift(blocks: int = 10, runs: int = 200) -> float:
    """How much this machine drifts by itself: the spread (max - min over median) of the medians of ``blocks``
    consecutive blocks of a fixed pure-Python loop. Nothing of onnxruntime or shufflebench is in it, so a large
    value says repeated measurements cannot agree more closely than that here."""

    def work() -> int:
        total = 0
        for i in range(20000):
            total += i * i
        return total

    medians = []
    for _ in range(blocks):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    middle = statistics.median(medians)
    return (max(medians) - min(medians)) / middle
