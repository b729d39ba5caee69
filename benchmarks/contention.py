#!/usr/bin/env python3
"""How well does shufflebench see contention? A model measured quiet, then beside busy processes, alternately.

    python benchmarks/contention.py [--model shufflenet_v2] [--busy 2] [--repeats 3] [--budget 5] [--output c.json]

Each repeat measures the model once on a quiet machine and once while ``--busy`` processes spin on the CPU (by
default as many as there are cores, so every core is shared), alternately, so the machine's own drift hits both.
For each measurement it reports the share of runs flagged contended; the quiet phase gives the false-alarm rate,
the loaded phase the detection rate. It compares the loaded median and the loaded runs' uncontended median with the
quiet median: the whole point is that the uncontended median of a loaded run comes close to the quiet latency
while the plain median does not. Busy processes are plain Python loops; a real neighbour (a compiler, a test suite)
mixes CPU, memory and I/O.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shufflebench.devices import resolve_device  # noqa: E402
from shufflebench.files import write_json_atomic  # noqa: E402
from shufflebench.measure.sampling import SamplingPolicy  # noqa: E402
from shufflebench.models import resolve_model  # noqa: E402
from shufflebench.prepared import PreparedModel  # noqa: E402
from shufflebench.profile import profile_model  # noqa: E402


def spin(stop_at: float) -> None:
    """A busy neighbour: pure CPU until ``stop_at`` (wall clock)."""
    x = 0
    while time.time() < stop_at:
        for i in range(10000):
            x += i * i


def measure(model: PreparedModel, policy: SamplingPolicy, busy: int) -> dict:
    """One measurement, with ``busy`` spinning processes beside it (started first, stopped after)."""
    stop_at = time.time() + 3 * policy.budget_s + 60
    workers = [multiprocessing.Process(target=spin, args=(stop_at,), daemon=True) for _ in range(busy)]
    for worker in workers:
        worker.start()
    try:
        if workers:
            time.sleep(0.5)  # let the neighbours reach the scheduler's steady state
        m = profile_model(model, resolve_device("cpu"), policy, verify=False).measurement
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()
    flagged = m.contended_runs or 0
    return {"busy": busy, "runs": m.runs, "contended_runs": flagged, "contended_share": flagged / m.runs,
            "median_ms": m.median * 1e3,
            "uncontended_median_ms": None if m.uncontended_median is None else m.uncontended_median * 1e3,
            "load_1min": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="shufflenet_v2")
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="spinning processes when loaded")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=5.0, help="seconds of timing per measurement")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    model = PreparedModel(resolve_model(args.model))
    policy = SamplingPolicy(warmup_runs=10, min_runs=50, budget_s=args.budget, target_rel_ci=1e-6)  # full budget
    quiet, loaded = [], []
    for repeat in range(args.repeats):
        quiet.append(measure(model, policy, 0))
        loaded.append(measure(model, policy, args.busy))
        for label, row in (("quiet ", quiet[-1]), ("loaded", loaded[-1])):
            clean = row["uncontended_median_ms"]
            print(f"repeat {repeat + 1} {label}: {row['contended_runs']:4d} of {row['runs']:4d} runs contended "
                  f"({row['contended_share']:5.1%}), median {row['median_ms']:.3f} ms, uncontended median "
                  f"{'-' if clean is None else f'{clean:.3f}'} ms, load {row['load_1min']:.1f}", flush=True)
    quiet_median = statistics.median(r["median_ms"] for r in quiet)
    clean_loaded = [r["uncontended_median_ms"] for r in loaded if r["uncontended_median_ms"] is not None]
    figures = {
        "false_alarm_share_quiet": statistics.median(r["contended_share"] for r in quiet),
        "detected_share_loaded": statistics.median(r["contended_share"] for r in loaded),
        "quiet_median_ms": quiet_median,
        "loaded_median_vs_quiet": statistics.median(r["median_ms"] for r in loaded) / quiet_median - 1,
        "loaded_uncontended_median_vs_quiet": (statistics.median(clean_loaded) / quiet_median - 1
                                               if clean_loaded else None),
        "busy_processes": args.busy, "cores": os.cpu_count(),
    }
    print()
    print(f"runs flagged on a quiet machine (false alarms): {figures['false_alarm_share_quiet']:.1%} (median)")
    print(f"runs flagged beside {args.busy} busy processes:     {figures['detected_share_loaded']:.1%} (median)")
    print(f"loaded median against quiet median:            {figures['loaded_median_vs_quiet']:+.1%}")
    if figures["loaded_uncontended_median_vs_quiet"] is not None:
        print(f"loaded UNCONTENDED median against quiet:       {figures['loaded_uncontended_median_vs_quiet']:+.1%}")
    if args.output:
        write_json_atomic(args.output, {"schema": "shufflebench.contention-benchmark/1", "model": args.model,
                                        "budget_s": args.budget, "figures": figures, "quiet": quiet,
                                        "loaded": loaded})
    return 0


if __name__ == "__main__":
    sys.exit(main())
