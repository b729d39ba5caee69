"""How fast does `shufflebench sweep` go, what does Ray cost, and does it survive faults? On this machine, end to end.

    python benchmarks/sweep.py [--quick] [--output sweep-benchmark.json] [--workdir DIR]

Four experiments, each on one local Ray cluster started once (as ``sweep --ray local`` starts it):

1. **Throughput.** 200 zoo architectures counted (parallel Ray tasks), then 40 of them (a seeded sample) measured
   on ``cpu`` and on ``arm-emulated`` (one actor each; they share this machine's cores, so one after the other):
   architectures per minute per stage, from its first start to its last result.
2. **Ray's overhead against a plain loop** on ``cpu``: the same architectures measured through the sweep engine
   (an actor, the store) and by a plain in-process loop over the same library calls (`measure_architecture`, then
   the same store write), alternating A/B, B/A so that the machine's drift touches both. Every measurement takes a
   fixed number of runs (``min_runs = max_runs``), so the wall times differ by the overhead only. Reported: the
   overhead once the device's actor runs (the target: at most 5%), the actor's start apart (seconds, paid once per
   device and sweep), the whole ratio for this workload, and the latencies measured both ways.
3. **Faults.** A measuring process killed with SIGKILL halfway through a measurement; a board over SSH that cannot
   be reached; a sweep interrupted after two results and run again. Reported: attempts, what was recorded, whether
   any architecture was measured twice or stored twice.
4. **Fixed costs.** Starting and stopping the embedded Ray, and an actor's first result.

Timing figures need a quiet machine (docs/measurement.md); ``--quick`` is a smoke run of a few minutes whose
figures are not meant to be quoted.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shufflebench.devices import resolve_device  # noqa: E402
from shufflebench.files import write_json_atomic  # noqa: E402
from shufflebench.measure.sampling import SamplingPolicy  # noqa: E402
from shufflebench.options import SAMPLING_PRESETS  # noqa: E402
from shufflebench.profile import profile_model  # noqa: E402
from shufflebench.runners.targets import EmulatedArm  # noqa: E402
from shufflebench.sweep.engine import import_ray, run_sweep  # noqa: E402
from shufflebench.sweep.plan import COUNT_STAGE, Mode, plan_sweep  # noqa: E402
from shufflebench.sweep.resources import node_resources  # noqa: E402
from shufflebench.sweep.space import parse_space, sample  # noqa: E402
from shufflebench.sweep.store import Store  # noqa: E402
from shufflebench.sweep.work import measure_architecture  # noqa: E402

BENCH_SCHEMA = "shufflebench.sweep-benchmark/1"
SETTLE_S = 3.0  # pause before each overhead trial
# 200 architectures: 100 + 40 + 36 + 24.
FULL_SPACE = ("shufflenet_v1:groups=1|2|3|4|8,width=0.25|0.5|1.0|1.5|2.0,resolution=128|160|192|224",
              "shufflenet_v2:width=0.5|1.0|1.5|2.0,resolution=96|112|128|144|160|176|192|208|224|240",
              "mobilenet_v2:width=0.35|0.5|0.75|1.0|1.3|1.4,resolution=96|128|160|192|224|256",
              "mobilenet_v1:width=0.25|0.5|0.75|1.0,resolution=96|128|160|192|224|256")
QUICK_SPACE = ("shufflenet_v1:groups=1|3|8,width=0.5|1.0,resolution=96|128",
               "shufflenet_v2:width=0.5|1.0,resolution=96|128", "mobilenet_v2:width=0.35|0.5,resolution=96|128")


@dataclass(frozen=True)
class Workload:
    """How much each experiment does."""

    space: tuple[str, ...]  # the SPACE arguments of the throughput sweep (all counted)
    measured: int  # architectures of it measured on each device (a seeded sample)
    policy: SamplingPolicy  # their sampling
    overhead_archs: int  # architectures measured in each trial of Ray against the plain loop
    overhead_pairs: int  # trials of each (Ray/plain, then plain/Ray, ...)
    overhead_runs: int  # timed runs of each measurement there (fixed: min_runs = max_runs)
    fault_archs: int  # architectures of each fault experiment


FULL = Workload(FULL_SPACE, 40, replace(SAMPLING_PRESETS["sweep"], warmup_runs=2, min_runs=5), 8, 6, 300, 4)
QUICK = Workload(QUICK_SPACE, 4, SamplingPolicy(warmup_runs=1, min_runs=5, budget_s=1.0, min_time_s=0.2), 2, 2, 30, 3)


@dataclass(frozen=True)
class KillMidway:
    """profile_model, except that the first measurement of ``victim`` is ended by SIGKILL after ``after_s`` seconds
    (the marker file remembers that it happened, across processes)."""

    victim: str
    marker: str
    after_s: float

    def __call__(self, model: Any, device: Any, policy: SamplingPolicy) -> Any:
        if model.label == self.victim and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            threading.Timer(self.after_s, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return profile_model(model, device, policy)


def stage_figures(summary: Any) -> dict[str, Any]:
    return {stage.name: {"done": stage.done, "failed": stage.failed, "retried": stage.retried,
                         "seconds": (stage.finished_at - stage.started_at) if stage.started_at and stage.finished_at
                         else None, "per_minute": stage.rate_per_min()} for stage in summary.stages}


def throughput(plan: Workload, workdir: Path, devices: list[Any]) -> dict[str, Any]:
    space = parse_space(list(plan.space))
    chosen = sample(space, plan.measured, seed=0)
    with Store(workdir / "throughput.sqlite") as store:
        counted = run_sweep(plan_sweep(store, space, [], Mode.COUNT), store, plan.policy)
        print(f"  counted {len(space)} architectures: {stage_figures(counted)[COUNT_STAGE]}", flush=True)
        started = time.perf_counter()
        measured = run_sweep(plan_sweep(store, chosen, devices, Mode.MEASURE), store, plan.policy)
        wall = time.perf_counter() - started
    figures = {"architectures": len(space), "measured": len(chosen), "policy": plan.policy.to_dict(),
               "count": stage_figures(counted)[COUNT_STAGE], "count_wall_s": counted.elapsed_s,
               "measure": {k: v for k, v in stage_figures(measured).items() if k != COUNT_STAGE},
               "measure_wall_s": wall}
    for name, stage in figures["measure"].items():
        print(f"  measured {stage['done']} on {name} ({stage['failed']} failed): "
              f"{(stage['per_minute'] or 0):.2f} architectures per minute", flush=True)
    return figures


def overhead(plan: Workload, workdir: Path, cpu: Any) -> dict[str, Any]:
    policy = SamplingPolicy(warmup_runs=5, min_runs=plan.overhead_runs, max_runs=plan.overhead_runs,
                            budget_s=1e6, min_time_s=0.0)
    archs = sample(parse_space(list(plan.space)), plan.overhead_archs, seed=1)
    counted = workdir / "overhead-counted.sqlite"
    with Store(counted) as store:
        run_sweep(plan_sweep(store, archs, [], Mode.COUNT), store, policy)
        costs = store.counts()
    for arch in archs:  # the ONNX export cache, warm for both sides
        measure_architecture(arch, costs[arch.key], cpu, replace(policy, min_runs=1, max_runs=1, warmup_runs=0))

    def with_ray(path: Path) -> tuple[float, float, dict[str, float]]:
        with Store(path) as store:
            started = time.perf_counter()
            wall_started = time.time()
            run_sweep(plan_sweep(store, archs, [cpu], Mode.MEASURE), store, policy)
            wall = time.perf_counter() - started
            first = sqlite3.connect(path).execute("SELECT min(started_at) FROM measurements").fetchone()[0]
            return wall, wall - (first - wall_started), {r.key: r.median_ms for r in store.rows(["cpu"])}

    def plain(path: Path) -> tuple[float, float, dict[str, float]]:
        with Store(path) as store:
            started = time.perf_counter()
            for arch in archs:
                store.put_measurement(arch.key, measure_architecture(arch, costs[arch.key], cpu, policy))
            wall = time.perf_counter() - started
            return wall, wall, {r.key: r.median_ms for r in store.rows(["cpu"])}

    pairs = []
    for pair in range(plan.overhead_pairs):
        results = {}
        for side in (("ray", "plain") if pair % 2 == 0 else ("plain", "ray")):
            time.sleep(SETTLE_S)  # a finished sweep's actor and Ray's idle workers come and go: not in the next trial
            path = workdir / f"overhead-{pair}-{side}.sqlite"
            shutil.copy(counted, path)
            results[side] = (with_ray if side == "ray" else plain)(path)
        (ray_wall, ray_steady, ray_ms), (plain_wall, _, plain_ms) = results["ray"], results["plain"]
        pairs.append({"ray_s": ray_wall, "ray_without_actor_start_s": ray_steady, "actor_start_s": ray_wall - ray_steady,
                      "plain_s": plain_wall,
                      "overhead": ray_wall / plain_wall - 1, "steady_overhead": ray_steady / plain_wall - 1,
                      "latency_ratio": statistics.median(ray_ms[k] / plain_ms[k] for k in plain_ms),
                      "load_1min": os.getloadavg()[0]})
        print(f"  pair {pair + 1}: ray {ray_wall:.1f} s ({ray_steady:.1f} s after the actor started), plain "
              f"{plain_wall:.1f} s: overhead {pairs[-1]['overhead']:+.1%}, steady {pairs[-1]['steady_overhead']:+.1%}, "
              f"latency ray/plain {pairs[-1]['latency_ratio']:.3f}", flush=True)
    return {"architectures": [a.key for a in archs], "runs_per_measurement": plan.overhead_runs, "pairs": pairs,
            "overhead_median": statistics.median(p["overhead"] for p in pairs),
            "steady_overhead_median": statistics.median(p["steady_overhead"] for p in pairs),
            "actor_start_s_median": statistics.median(p["actor_start_s"] for p in pairs),
            "latency_ratio_median": statistics.median(p["latency_ratio"] for p in pairs)}


def faults(plan: Workload, workdir: Path, cpu: Any, gone: Any) -> dict[str, Any]:
    policy = replace(plan.policy, budget_s=2.0, min_time_s=1.0)
    archs = sample(parse_space(list(plan.space)), plan.fault_archs, seed=2)
    figures: dict[str, Any] = {}
    # 1. SIGKILL halfway through the second architecture's first measurement
    killer = KillMidway(archs[1].target, str(workdir / "killed.marker"), after_s=policy.budget_s / 2)
    with Store(workdir / "faults-kill.sqlite") as store:
        summary = run_sweep(plan_sweep(store, archs, [cpu], Mode.MEASURE), store, policy, measure=killer)
        rows = store.rows(["cpu"])
    figures["killed"] = {"killed_pid": int(Path(killer.marker).read_text()),
                         "rows": len(rows), "architectures": len(archs),
                         "outcome": {r.label: {"status": r.status, "attempts": r.attempts} for r in rows},
                         "stage": stage_figures(summary)["cpu"]}
    print(f"  SIGKILL mid-measurement: {figures['killed']['outcome']}", flush=True)
    # 2. a board that cannot be reached: retried once, then recorded
    with Store(workdir / "faults-board.sqlite") as store:
        summary = run_sweep(plan_sweep(store, archs, [gone], Mode.MEASURE), store, policy, retries=1)
        rows = store.rows([gone.name])
    figures["unreachable_board"] = {"rows": [{"label": r.label, "status": r.status, "attempts": r.attempts,
                                              "error": r.error} for r in rows],
                                    "stage": stage_figures(summary)[gone.name], "stopped": summary.stages[1].stopped}
    print(f"  unreachable board: {[(r.label, r.status, r.attempts) for r in rows]}; {summary.stages[1].stopped}",
          flush=True)

    # 3. interrupted after two results, then run again
    def interrupt(stages: list[Any], now: float) -> None:
        if sum(s.done for s in stages if s.name != COUNT_STAGE) >= 2:
            raise KeyboardInterrupt

    with Store(workdir / "faults-resume.sqlite") as store:
        first = run_sweep(plan_sweep(store, archs, [cpu], Mode.MEASURE), store, policy, on_update=interrupt)
        kept = len(store.measured("cpu"))
        second = run_sweep(plan_sweep(store, archs, [cpu], Mode.MEASURE), store, policy)
    attempts = sqlite3.connect(workdir / "faults-resume.sqlite").execute(
        "SELECT count(*), sum(attempts) FROM measurements").fetchone()
    figures["interrupted"] = {"interrupted": first.interrupted, "kept": kept, "measured_by_rerun":
                              stage_figures(second)["cpu"]["done"], "rows": attempts[0], "measurements": attempts[1]}
    print(f"  interrupted: {figures['interrupted']}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 counted, 4 measured, short policies")
    parser.add_argument("--workdir", type=Path, help="where the stores go (default: a new temporary folder)")
    parser.add_argument("--output", type=Path, help="write the figures as JSON to this file")
    parser.add_argument("--no-arm", action="store_true", help="measure on cpu only")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cpu = resolve_device("cpu")
    devices = [cpu]
    arm_note = "not measured (--no-arm)"
    if not args.no_arm:
        try:
            EmulatedArm().check()
            devices.append(resolve_device("arm-emulated"))
            arm_note = "measured"
        except Exception as exc:  # no rootfs or no qemu: the benchmark says so and goes on with cpu
            arm_note = f"not measured: {exc}"
    gone_profile = workdir / "board-gone.toml"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone_profile.write_text('name = "board-gone"\ndescription = "a board that dropped"\nkind = "arm"\n'
                            f'backend = "onnxruntime"\nlocation = "ssh"\nhost = "127.0.0.1"\nport = {port}\n'
                            'ssh_options = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no"]\n')
    gone = resolve_device(str(gone_profile))

    ray = import_ray()
    print(f"sweep benchmark ({'quick' if args.quick else 'full'}) in {workdir}; arm-emulated {arm_note}", flush=True)
    started = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), resources=node_resources([*devices, gone]),
             include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             _node_ip_address="127.0.0.1", object_store_memory=200 * 2**20)
    ray_start_s = time.perf_counter() - started
    figures: dict[str, Any] = {"cores": os.cpu_count(), "ray": ray.__version__, "arm_emulated": arm_note,
                               "ray_start_s": ray_start_s}
    try:
        print("1. throughput", flush=True)
        figures["throughput"] = throughput(plan, workdir, devices)
        print("2. Ray against a plain loop on cpu", flush=True)
        figures["overhead"] = overhead(plan, workdir, cpu)
        print("3. faults", flush=True)
        figures["faults"] = faults(plan, workdir, cpu, gone)
    finally:
        started = time.perf_counter()
        ray.shutdown()
        figures["ray_stop_s"] = time.perf_counter() - started
    figures["load_1min_end"] = os.getloadavg()[0]
    o = figures["overhead"]
    print(f"\nRay start {ray_start_s:.1f} s, stop {figures['ray_stop_s']:.1f} s")
    print(f"overhead against a plain loop: {o['steady_overhead_median']:+.1%} once the device's actor runs (median "
          f"of {len(o['pairs'])} pairs); {o['overhead_median']:+.1%} with the actor's start "
          f"({o['actor_start_s_median']:.1f} s, once per device and sweep) for this workload; latency ray/plain "
          f"{o['latency_ratio_median']:.3f}")
    output = args.output or workdir / "sweep-benchmark.json"
    write_json_atomic(output, {"schema": BENCH_SCHEMA, "quick": args.quick, "figures": figures})
    print(f"figures in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
