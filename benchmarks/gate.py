"""Does the `regress` gate keep its promises on this machine? False alarms, detections, MDE, seconds per gate.

    python benchmarks/gate.py --trials 20 [--budget 2] [--device cpu] [--threshold 5%] [--output gate.json]

Two experiments, run alternately (A/A, A/B, A/A, ...) so that whatever the machine does over the minutes of the
benchmark touches both alike:

* A/A: ShuffleNet V2 1.0x against itself. Every failing gate is a FALSE ALARM (the promise: at most 1 in 20).
* A/B: `benchmarks.gate_models:slow_shufflenet_v2` (the same network plus element-wise work tuned to cost about
  10%) against ShuffleNet V2 1.0x. Every failing gate is a DETECTION (the promise: at least 19 in 20). The
  slowdown is not assumed: the median measured ratio over the A/B trials is printed next to the count.

Each trial is one full gate as ``shufflebench regress`` runs it (exact proxies of both models, then latency measured
interleaved and judged), timed on the wall clock. The minimum detectable effect (MDE) reported is the median over
the A/A trials: the smallest change a gate on this machine separates from "no change" with 80% power. Finally one
``shufflebench regress`` subprocess is timed end to end (interpreter start and imports included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `benchmarks.gate_models` is imported by name, as a user's package would be

from shufflebench.devices import resolve_device  # noqa: E402
from shufflebench.models import resolve_model  # noqa: E402
from shufflebench.options import SAMPLING_PRESETS  # noqa: E402
from shufflebench.prepared import PreparedModel  # noqa: E402
from shufflebench.regress.decide import parse_fraction, percent  # noqa: E402
from shufflebench.regress.gate import GateSettings, regress  # noqa: E402
from shufflebench.files import write_json_atomic  # noqa: E402

SLOW = "benchmarks.gate_models:slow_shufflenet_v2"
BENCH_SCHEMA = "shufflebench.gate-benchmark/1"


def one_gate(candidate, baseline, device, policy, settings) -> dict:
    """One gate, as the CLI runs it; returns its decision and wall time in seconds."""
    load = os.getloadavg()[0]  # other processes on the machine: the context a figure was taken in
    started = time.perf_counter()
    result = regress([candidate], against=baseline, device=device, policy=policy, settings=settings)
    wall_s = time.perf_counter() - started
    latency = result.models[0].latency
    assert latency is not None
    decision = latency.decision
    return {"wall_s": wall_s, "exit_code": result.outcome.exit_code, "ratio": decision.ratio,
            "ci": list(decision.ci), "mde": decision.mde, "verdict": decision.verdict,
            "regression": decision.regression, "rounds": decision.rounds[0], "load_1min": load}


def cli_seconds(budget: float, device: str) -> float:
    """Wall time of one ``shufflebench regress v2 --against v2`` subprocess, interpreter start included."""
    exe = Path(sys.executable).with_name("shufflebench")
    command = [str(exe) if exe.exists() else "shufflebench", "regress", "shufflenet_v2", "--against",
               "shufflenet_v2", "--budget", str(budget), "--device", device, "--format", "json"]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"shufflebench regress failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed


def spread(values: list[float], fmt) -> str:
    return f"{fmt(statistics.median(values))} (min {fmt(min(values))}, max {fmt(max(values))})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="gates per experiment (default 20)")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds of timing per model, as regress --budget (default 2: 4 s per gate)")
    parser.add_argument("--device", default="cpu", help="device profile (default cpu)")
    parser.add_argument("--threshold", default="5%", help="the gate's threshold (default 5%%)")
    parser.add_argument("--output", type=Path, help="write every trial as JSON to this file")
    parser.add_argument("--no-cli", action="store_true", help="skip timing one CLI subprocess")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    # The CLI's defaults for regress, with the benchmark's budget.
    policy = replace(SAMPLING_PRESETS["regress"], budget_s=args.budget)
    settings = GateSettings(threshold=parse_fraction(args.threshold), proxies="report")
    base = PreparedModel(resolve_model("shufflenet_v2"))
    same = PreparedModel(resolve_model("shufflenet_v2"))
    slow = PreparedModel(resolve_model(SLOW, input_shape=base.input_shape))

    print(f"gate benchmark on {device.name}: {args.trials} A/A + {args.trials} A/B trials, {args.budget:g} s per model, "
          f"threshold {args.threshold}", flush=True)
    aa, ab = [], []
    for trial in range(args.trials):
        aa.append(one_gate(same, base, device, policy, settings))
        ab.append(one_gate(slow, base, device, policy, settings))
        print(f"  trial {trial + 1:2d}: A/A ratio {aa[-1]['ratio']:.4f} MDE {percent(aa[-1]['mde'], False)} "
              f"{aa[-1]['verdict']:<22s} | A/B ratio {ab[-1]['ratio']:.4f} CI {ab[-1]['ci'][0]:.3f}-"
              f"{ab[-1]['ci'][1]:.3f} {'caught' if ab[-1]['regression'] else 'MISSED'} "
              f"({aa[-1]['wall_s']:.1f} s, {ab[-1]['wall_s']:.1f} s, load {aa[-1]['load_1min']:.1f})", flush=True)

    false_alarms = sum(t["regression"] for t in aa)
    detections = sum(t["regression"] for t in ab)
    walls = [t["wall_s"] for t in aa + ab]
    figures = {
        "false_alarms": false_alarms,
        "detections": detections,
        "trials": args.trials,
        "slowdown_ratio_median": statistics.median(t["ratio"] for t in ab),
        "slowdown_ratio_range": [min(t["ratio"] for t in ab), max(t["ratio"] for t in ab)],
        "aa_ratio_range": [min(t["ratio"] for t in aa), max(t["ratio"] for t in aa)],
        # Identical models: the ratio's median should be 1 and a 95% interval should exclude 1 in about 1 of 20
        # trials; more, and something other than chance (the order, the sessions' placement) sets the two apart.
        "aa_ratio_median": statistics.median(t["ratio"] for t in aa),
        "aa_ratios_above_1": sum(t["ratio"] > 1 for t in aa),
        "aa_cis_excluding_1": sum(t["ci"][0] > 1 or t["ci"][1] < 1 for t in aa),
        "mde_median": statistics.median(t["mde"] for t in aa),
        "mde_range": [min(t["mde"] for t in aa), max(t["mde"] for t in aa)],
        "rounds_median": statistics.median(t["rounds"] for t in aa + ab),
        "gate_seconds_median": statistics.median(walls),
        "gate_seconds_range": [min(walls), max(walls)],
        "load_1min_median": statistics.median(t["load_1min"] for t in aa + ab),
        "cores": os.cpu_count(),
    }
    print()
    print(f"false alarms (A/A, identical models): {false_alarms}/{args.trials}")
    print(f"detections (A/B, slow variant):       {detections}/{args.trials}")
    print(f"measured slowdown of the slow variant: ratio {spread([t['ratio'] for t in ab], '{:.3f}'.format)}")
    print(f"A/A ratios:                           {min(t['ratio'] for t in aa):.4f} to {max(t['ratio'] for t in aa):.4f}, "
          f"median {figures['aa_ratio_median']:.4f}, above 1 in {figures['aa_ratios_above_1']} of {args.trials}")
    print(f"A/A 95% CIs excluding 1:              {figures['aa_cis_excluding_1']} of {args.trials} (chance: about "
          f"{0.05 * args.trials:.0f})")
    print(f"MDE, ShuffleNet V2 1.0x on {device.name}:       "
          f"{spread([t['mde'] for t in aa], lambda v: percent(v, False))}")
    print(f"rounds per gate:                      {figures['rounds_median']:.0f} (median)")
    print(f"seconds per gate (in process):        {spread(walls, '{:.1f}'.format)}")
    print(f"machine load during the gates:        {figures['load_1min_median']:.1f} (median 1-minute load average, "
          f"{figures['cores']} cores)")
    if not args.no_cli:
        figures["cli_seconds"] = cli_seconds(args.budget, args.device)
        print(f"seconds per gate (CLI, end to end):   {figures['cli_seconds']:.1f}")
    if args.output:
        write_json_atomic(args.output, {"schema": BENCH_SCHEMA, "device": device.name, "budget_s": args.budget,
                                        "threshold": args.threshold, "figures": figures, "aa": aa, "ab": ab})
    return 0


if __name__ == "__main__":
    sys.exit(main())
