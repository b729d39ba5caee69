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

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .devices import DeviceProfile
from .errors import UsageError
from .measure.sampling import SamplingPolicy
from .models import resolve_model
from .report.files import read_json, write_json_atomic

BENCH_SCHEMA = "shufflebench.bench"
# Raised whenever an experiment's data changes shape; files of another version are measured again.
BENCH_VERSION = 4


@dataclass(frozen=True)
class Plan:
    """How much to measure: the zoo, resolution, budgets (seconds), guideline widths."""

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


def _policy(budget: float, plan: Plan) -> SamplingPolicy:
    return SamplingPolicy(warmup_runs=plan.warmup, min_runs=10, budget_s=budget)


def _slug(label: str) -> str:
    return label.replace(":", "-").replace(",", "-").replace("=", "")


class Suite:
    """The experiments of one device, each a function writing one JSON file, skipped when the file exists."""

    def __init__(self, device: DeviceProfile, out: Path, plan: Plan, log: Callable[[str], None] = print) -> None:
        self.device, self.out, self.plan, self.log = device, out, plan, log
        self.measured: list[str] = []

    def _once(self, name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.out / f"{name}.json"
        if path.is_file():
            try:
                stored = read_json(path, schema_prefix=BENCH_SCHEMA)
                if stored["schema"] == f"{BENCH_SCHEMA}/{BENCH_VERSION}":
                    return stored
            except UsageError:
                pass
            self.log(f"{path} is unreadable or from another version; measuring it again")
        self.log(f"measuring {name} on {self.device.name}")
        started = time.perf_counter()
        data = measure()
        result = {"schema": f"{BENCH_SCHEMA}/{BENCH_VERSION}", "experiment": name, "device": self.device.name,
                  "emulated": self.device.emulated, "seconds": time.perf_counter() - started,
                  "plan": self.plan.__dict__, "data": data}
        write_json_atomic(path, result)
        self.measured.append(name)
        return result

    def zoo(self) -> list[dict[str, Any]]:
        from .profiling import profile_data, profile_model

        results = []
        for model in self.plan.zoo:
            ref = resolve_model(model, overrides={"resolution": self.plan.resolution}, batch=self.device.batch)
            results.append(self._once(f"zoo-{_slug(ref.short_label)}", lambda ref=ref: profile_data(
                profile_model(ref, self.device, _policy(self.plan.profile_budget_s, self.plan)))))
        return results

    def v1_speedup(self) -> dict[str, Any]:
        from .compare import compare_models

        labels = ("shufflenet_v1:groups=3,width=0.5", "shufflenet_v1:groups=3,width=1.0",
                  "shufflenet_v1:groups=3,width=2.0", "alexnet")
        refs = [resolve_model(m, overrides={"resolution": self.plan.resolution}, batch=self.device.batch)
                for m in labels]
        policy = _policy(self.plan.compare_budget_s * len(refs), self.plan)
        return self._once("v1-speedup", lambda: compare_models(refs, self.device, policy, baseline=len(refs) - 1))

    def guidelines(self) -> list[dict[str, Any]]:
        from .guideline_experiments import EXPERIMENTS, run_experiments

        policy = _policy(self.plan.guideline_budget_s, self.plan)
        return [self._once(f"guidelines-{name}", lambda name=name: run_experiments(
            self.device, policy, only=[name], widths=list(self.plan.guideline_widths))) for name in EXPERIMENTS]

    def breakdowns(self) -> list[dict[str, Any]]:
        from .breakdown import breakdown_for
        from .profiling import profile_model

        if self.device.backend != "onnxruntime":
            return []
        results = []
        for model in self.plan.breakdown_models:
            ref = resolve_model(model, overrides={"resolution": self.plan.resolution}, batch=self.device.batch)

            def measure(ref=ref):
                result = profile_model(ref, self.device, _policy(self.plan.profile_budget_s, self.plan),
                                       profile_runs=50)
                return {"label": ref.short_label, **breakdown_for(result)}

            results.append(self._once(f"breakdown-{_slug(ref.short_label)}", measure))
        return results

    def fidelity(self) -> dict[str, Any] | None:
        if self.device.location != "local" or self.device.backend != "onnxruntime":
            return None
        return self._once("fidelity", lambda: measure_fidelity(self.device, self.plan))

    def run_all(self) -> dict[str, Any]:
        """Every experiment (finished ones are read back), then the report."""
        self.out.mkdir(parents=True, exist_ok=True)
        return {
            "zoo": self.zoo(),
            "v1_speedup": self.v1_speedup(),
            "guidelines": self.guidelines(),
            "breakdowns": self.breakdowns(),
            "fidelity": self.fidelity(),
        }


def measure_fidelity(device: DeviceProfile, plan: Plan) -> dict[str, Any]:
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

    from .export import export_onnx
    from .measure import board_runner
    from .measure.sampling import collect
    from .profiling import profile_model
    from .runners.onnxruntime_local import board_request

    ref = resolve_model("shufflenet_v2", overrides={"resolution": plan.resolution}, batch=device.batch)
    policy = _policy(plan.profile_budget_s, plan)
    request = board_request(ref, device, policy, str(export_onnx(ref)), return_outputs=False)

    def bare_session():
        return ort.InferenceSession(request["model"], board_runner._session_options(ort, board_runner.validate_request(
            request)), providers=[device.provider])

    # paired
    profiled = board_runner.open_model(request)
    bare = bare_session()
    feeds = profiled.feeds
    for _ in range(plan.warmup):
        profiled.run_once()
        bare.run(None, feeds)
    a, b = [], []
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
        measurement = profile_model(ref, device, policy, verify=False).run.measurement
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
    drift = machine_drift(blocks=plan.fidelity_repeats * 2)
    return {
        "model": ref.label,
        "paired_runs": len(a),
        "paired_profile_vs_bare": paired,
        "profile_medians_ms": [m * 1e3 for m in medians],
        "bare_loop_medians_ms": [m * 1e3 for m in bare_medians],
        "sequential_profile_vs_bare": profile_median / statistics.median(bare_medians) - 1,
        "profile_spread": (max(medians) - min(medians)) / profile_median,
        "profile_ci95_ms": [None if ci is None else [ci[0] * 1e3, ci[1] * 1e3] for ci in intervals],
        # Does one value lie in every run's interval? If not, the runs disagree beyond what each one's
        # (dependence-widened) interval allows: the machine changed between runs, not only within them.
        "profile_cis_share_a_value": None not in intervals
        and max(ci[0] for ci in intervals) <= min(ci[1] for ci in intervals),
        "profile_effective_runs": worth,
        "loop_overhead_us": statistics.median(overhead.samples_s) * 1e6,
        "machine_drift": drift,
    }


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


def run_suite(device: DeviceProfile, out_root: Path, *, quick: bool, log: Callable[[str], None] = print) -> Path:
    """Run (or resume) every experiment for ``device`` under ``out_root/<device>/`` and write the report.
    Returns the folder."""
    from .report.bench import write_report

    folder = out_root / device.name
    suite = Suite(device, folder, QUICK if quick else FULL, log)
    results = suite.run_all()
    write_report(folder, device, results)
    log(f"measured {len(suite.measured)} experiment(s) this run; report: {folder / 'REPORT.md'}")
    return folder
