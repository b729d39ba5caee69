"""How far counted cost can be trusted: repeatability, the counted gate, and counts against measured speed.

    python benchmarks/counters.py spread [--devices cpu-counted,arm-counted,arm-counted-n1] [--runs 5]
    python benchmarks/counters.py gates  [--device arm-counted] [--trials 10]
    python benchmarks/counters.py zoo    [--device cpu-counted] [--latency-budget 10] [--counts-from FILE] [--models ...]
    python benchmarks/counters.py arm    [--device arm-counted]
    (every section: [--resolution 224] [--out results/counters])

Sections, each writing ``<out>/<section>-<device>.json`` and printing its figures:

* ``spread``: ShuffleNet V2 1.0x counted ``--runs`` times, each in a process of its own, per counted device: the
  spread (max - min over median) of instructions and estimated cycles, and seconds per counted profile.
* ``gates``: full `regress` gates on a counted device (counts of candidate and baseline made together, the counted
  verdict at the default 0.5% threshold), alternately: identical models (A/A: every failure a false alarm), the
  10% slower `benchmarks.gate_models:slow_shufflenet_v2` and the slightly slower
  `benchmarks.gate_models:slightly_slow_shufflenet_v2` (every failure a detection); seconds per gate.
* ``zoo``: every network of bench.py's zoo counted on the device (one process), then the same networks timed on
  ``cpu`` interleaved (`compare`, ``--latency-budget`` seconds each: a timing, so run this section on a quiet
  machine); Spearman rank correlation of instructions and of estimated cycles with the measured latency, and each
  network's counted share against its latency share (where counts mislead). ``--latency-budget 0`` skips timing;
  ``--counts-from`` reuses the counts of an earlier run.
* ``arm``: on an aarch64 counted device, ShuffleNet V1 Table 8 (g=3 at 0.5x, 1x, 2x and MobileNet V1 against
  AlexNet) and the four ShuffleNet V2 guideline experiments, counted ratios beside the papers' ARM figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `benchmarks.gate_models` is imported by name, as a user's package would be

from shufflebench.compare import compare_models, compare_results  # noqa: E402
from shufflebench.devices import DeviceProfile, resolve_device  # noqa: E402
from shufflebench.files import read_json, write_json_atomic  # noqa: E402
from shufflebench.guidelines import EXPERIMENTS, run_experiments  # noqa: E402
from shufflebench.measure.sampling import SamplingPolicy  # noqa: E402
from shufflebench.models import resolve_model  # noqa: E402
from shufflebench.options import SAMPLING_PRESETS  # noqa: E402
from shufflebench.prepared import PreparedModel  # noqa: E402
from shufflebench.profile import ProfileResult, measure_models, profile_model  # noqa: E402
from shufflebench.published import guideline_tables  # noqa: E402
from shufflebench.regress.gate import GateSettings, regress  # noqa: E402
from benchmarks.ranking import spearman  # noqa: E402

SCHEMA = "shufflebench.counters-benchmark/1"
SLOW = "benchmarks.gate_models:slow_shufflenet_v2"
SLIGHT = "benchmarks.gate_models:slightly_slow_shufflenet_v2"
# bench.py's zoo (FULL plan) and ShuffleNet V1 Table 8 with MobileNet V1, whose ARM latency the table also prints.
ZOO = ("shufflenet_v1", "shufflenet_v2", "mobilenet_v1", "mobilenet_v2", "alexnet", "resnet50",
       "shufflenet_v1:width=0.5", "shufflenet_v1:width=2.0", "shufflenet_v2:width=0.5", "shufflenet_v2:width=2.0")
TABLE8 = ("shufflenet_v1:groups=3,width=0.5", "shufflenet_v1:groups=3,width=1.0", "shufflenet_v1:groups=3,width=2.0",
          "mobilenet_v1", "alexnet")
POLICY = SamplingPolicy()  # a counted device ignores the timing settings


def prepared(name: str, resolution: int) -> PreparedModel:
    if ":" in name and "=" not in name.split(":", 1)[1]:  # a package.module:callable
        return PreparedModel(resolve_model(name, input_shape=(1, 3, resolution, resolution)))
    return PreparedModel(resolve_model(name, overrides={"resolution": resolution}))


def spread(values: Sequence[float]) -> float:
    """(max - min) / median."""
    return (max(values) - min(values)) / statistics.median(values)


def save(out: Path, section: str, device: DeviceProfile, args: argparse.Namespace, data: dict[str, Any]) -> Path:
    path = out / f"{section}-{device.name}.json"
    write_json_atomic(path, {"schema": SCHEMA, "section": section, "device": device.name,
                             "resolution": args.resolution, "load_1min": os.getloadavg()[0], **data})
    print(f"wrote {path}")
    return path


# --- spread ---------------------------------------------------------------------------------------------------------


def run_spread(args: argparse.Namespace) -> None:
    for name in args.devices.split(","):
        device = resolve_device(name.strip())
        model = prepared("shufflenet_v2", args.resolution)
        model.cost, model.onnx_path, model.torch_output  # prepared once, outside the timed profiles
        runs = []
        for index in range(args.runs):
            started = time.perf_counter()
            result = profile_model(model, device, POLICY)
            seconds = time.perf_counter() - started
            assert result.counters is not None
            runs.append({"seconds": seconds, **result.counters.figures, "per_inference": result.counters.runs})
            print(f"  {device.name} run {index + 1}: {result.counters.instructions:,} instructions"
                  + (f", {result.counters.estimated_cycles:,} est. cycles" if result.counters.estimated_cycles
                     else "") + f" ({seconds:.1f} s)", flush=True)
        figures = {key: spread([r[key] for r in runs]) for key in ("instructions", "estimated_cycles")
                   if key in runs[0]}
        print(f"{device.name}: spread over {args.runs} processes "
              + ", ".join(f"{k} {v:.4%}" for k, v in figures.items())
              + f"; {statistics.median(r['seconds'] for r in runs):.1f} s per counted profile (median)")
        save(Path(args.out), "spread", device, args, {"model": model.label, "runs": runs, "spread": figures})


# --- gates ----------------------------------------------------------------------------------------------------------


def one_gate(candidate: PreparedModel, baseline: PreparedModel, device: DeviceProfile,
             settings: GateSettings) -> dict[str, Any]:
    started = time.perf_counter()
    result = regress([candidate], against=baseline, device=device, policy=SAMPLING_PRESETS["regress"],
                     settings=settings)
    seconds = time.perf_counter() - started
    counts = result.models[0].counts
    assert counts is not None
    d = counts.decision
    return {"seconds": seconds, "exit_code": result.outcome.exit_code, "ratio": d.ratio, "figure": d.figure,
            "ratios": d.ratios, "verdict": d.verdict, "regression": d.regression}


def run_gates(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    settings = GateSettings(threshold=0.005, proxies="report")
    base = prepared("shufflenet_v2", args.resolution)
    same = prepared("shufflenet_v2", args.resolution)
    slow, slight = prepared(SLOW, args.resolution), prepared(SLIGHT, args.resolution)
    trials: dict[str, list[dict[str, Any]]] = {"identical": [], "slow": [], "slight": []}
    for trial in range(args.trials):
        for kind, candidate in (("identical", same), ("slow", slow), ("slight", slight)):
            trials[kind].append(one_gate(candidate, base, device, settings))
        print(f"  trial {trial + 1:2d}: " + "; ".join(
            f"{kind} ratio {t[-1]['ratio']:.5f} {'FAIL' if t[-1]['regression'] else 'pass'} ({t[-1]['seconds']:.0f} s)"
            for kind, t in trials.items()), flush=True)
    walls = [t["seconds"] for runs in trials.values() for t in runs]
    figures = {
        "false_alarms": sum(t["regression"] for t in trials["identical"]),
        "detections_slow": sum(t["regression"] for t in trials["slow"]),
        "detections_slight": sum(t["regression"] for t in trials["slight"]),
        "trials": args.trials,
        "ratios": {kind: [min(t["ratio"] for t in runs), max(t["ratio"] for t in runs)]
                   for kind, runs in trials.items()},
        "instruction_ratios": {kind: [min(t["ratios"]["instructions"] for t in runs),
                                      max(t["ratios"]["instructions"] for t in runs)] for kind, runs in trials.items()},
        "figure": trials["identical"][0]["figure"],
        "gate_seconds_median": statistics.median(walls),
        "gate_seconds_range": [min(walls), max(walls)],
    }
    print(f"{device.name}, threshold 0.5% on {figures['figure']}: false alarms {figures['false_alarms']}/{args.trials}, "
          f"10% slower caught {figures['detections_slow']}/{args.trials}, slightly slower caught "
          f"{figures['detections_slight']}/{args.trials}; ratios {figures['ratios']}; "
          f"{figures['gate_seconds_median']:.0f} s per gate (median)")
    save(Path(args.out), "gates", device, args, {"figures": figures, "trials": trials})


# --- zoo ------------------------------------------------------------------------------------------------------------


def run_zoo(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    models = [prepared(name, args.resolution) for name in args.models]
    counts: dict[str, dict[str, int]] = {}
    if args.counts_from:
        stored = read_json(args.counts_from, schema_prefix=SCHEMA.rsplit("/", 1)[0])
        counts = {m["label"]: m["counts"] for m in stored["models"]}
        print(f"counts of {len(counts)} models from {args.counts_from}")
    missing = [m for m in models if m.label not in counts]
    counting_s = 0.0
    if missing:
        print(f"counting {len(missing)} models on {device.name}, one process each...", flush=True)
        started = time.perf_counter()
        for model, result in zip(missing, measure_models(missing, device, POLICY)):
            assert result.counters is not None
            counts[model.label] = result.counters.figures
        counting_s = time.perf_counter() - started
    latency: dict[str, float] = {}
    if args.latency_budget > 0:
        timed = resolve_device("cpu")
        print(f"timing {len(models)} models on cpu, interleaved, {args.latency_budget:g} s each...", flush=True)
        policy = replace(SAMPLING_PRESETS["compare"], budget_s=args.latency_budget)
        comparison = compare_models(models, timed, policy)
        latency = {m.result.model.label: m.result.timed.median for m in comparison.models}
    rows = []
    for model in models:
        row: dict[str, Any] = {"label": model.label, "flops_madd": model.cost.flops_madd,
                               "mac_bytes_deployed": model.cost.mac_bytes["deployed"], "counts": counts[model.label]}
        if model.label in latency:
            row["median_s"] = latency[model.label]
        rows.append(row)
    figures: dict[str, Any] = {"counting_seconds": counting_s}
    if latency:
        medians = [r["median_s"] for r in rows]
        for key in ("instructions", "estimated_cycles", "flops_madd"):
            values = [r["counts"].get(key) if key != "flops_madd" else r["flops_madd"] for r in rows]
            if all(v is not None for v in values):
                figures[f"spearman_{key}"] = spearman(values, medians)
        anchor = next((r for r in rows if r["label"].startswith("shufflenet_v2:width=1.0")), rows[0])
        key = "estimated_cycles" if "estimated_cycles" in anchor["counts"] else "instructions"
        for r in rows:  # how many times slower than ShuffleNet V2 1.0x: by latency, and by the counts
            r["latency_vs_v2"] = r["median_s"] / anchor["median_s"]
            r["counted_vs_v2"] = r["counts"][key] / anchor["counts"][key]
            r["counts_mislead_by"] = r["counted_vs_v2"] / r["latency_vs_v2"]
    print(f"{'model':48s} {'MAdd':>8s} {'instr.':>9s} {'est.cyc':>9s} {'ms':>8s} {'lat/v2':>7s} {'cnt/v2':>7s}")
    for r in rows:
        c = r["counts"]
        print(f"{r['label']:48s} {r['flops_madd'] / 1e6:7.0f}M {c['instructions'] / 1e6:8.1f}M "
              f"{(c.get('estimated_cycles') or 0) / 1e6:8.1f}M {r.get('median_s', 0) * 1e3:8.3f} "
              f"{r.get('latency_vs_v2', 0):7.2f} {r.get('counted_vs_v2', 0):7.2f}")
    for key, value in figures.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    save(Path(args.out), "zoo", device, args, {"models": rows, "figures": figures,
                                               "latency_budget_s": args.latency_budget})


# --- arm ------------------------------------------------------------------------------------------------------------


def run_arm(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    models = [prepared(name, args.resolution) for name in TABLE8]
    results: list[ProfileResult] = measure_models(models, device, POLICY)
    comparison = compare_results(results, baseline=len(results) - 1)
    table8 = []
    print(f"Table 8 on {device.name} (speedups against AlexNet):")
    for m in comparison.models:
        paper = m.paper.speedup_vs_baseline if m.paper else None
        table8.append({"label": m.result.model.label, "theoretical": m.theoretical_speedup,
                       "counted": m.counted_speedups, "paper_arm": paper})
        counted = ", ".join(f"{k} {v:.2f}x" for k, v in (m.counted_speedups or {}).items()
                            if k in ("instructions", "estimated_cycles"))
        print(f"  {m.result.model.short_label:40s} theory {m.theoretical_speedup or 0:5.2f}x  counted {counted}  "
              f"paper ARM {paper or 0:5.2f}x")
    guidelines = []
    tables = guideline_tables()
    for name in EXPERIMENTS:
        result = run_experiments(device, POLICY, only=[name], widths=[1, 2, 4]).experiments[0]
        spec, table = result.spec, tables[name]
        preferred, warned = table.row(spec.preferred), table.row(spec.warned)
        for width, ratio in result.verdict.speedups.items():
            index = (1, 2, 4).index(width)
            paper = preferred.arm[index] / warned.arm[index] if preferred and warned else None
            guidelines.append({"experiment": name, "width": width, "counted": ratio.estimate, "paper_arm": paper,
                               "preferred": spec.preferred, "warned": spec.warned})
            print(f"  {spec.guideline} x{width}: {spec.preferred} against {spec.warned}: counted {ratio.estimate:.3f}x, "
                  f"paper ARM {paper or 0:.3f}x", flush=True)
    save(Path(args.out), "arm", device, args, {"table8": table8, "guidelines": guidelines})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sections = parser.add_subparsers(dest="section", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--resolution", type=int, default=224, help="input resolution (default 224)")
    common.add_argument("--out", default=str(ROOT / "results" / "counters"), help="folder of the JSON files")
    one = sections.add_parser("spread", parents=[common])
    one.add_argument("--devices", default="cpu-counted,arm-counted,arm-counted-n1")
    one.add_argument("--runs", type=int, default=5)
    gates = sections.add_parser("gates", parents=[common])
    gates.add_argument("--device", default="arm-counted")
    gates.add_argument("--trials", type=int, default=10)
    zoo = sections.add_parser("zoo", parents=[common])
    zoo.add_argument("--device", default="cpu-counted")
    zoo.add_argument("--latency-budget", type=float, default=10.0, help="seconds of timing per model on cpu (0: none)")
    zoo.add_argument("--counts-from", type=Path, help="reuse the counts of an earlier zoo JSON file")
    zoo.add_argument("--models", nargs="+", default=list(ZOO), help="the networks (default: bench.py's zoo)")
    arm = sections.add_parser("arm", parents=[common])
    arm.add_argument("--device", default="arm-counted")
    args = parser.parse_args(argv)
    {"spread": run_spread, "gates": run_gates, "zoo": run_zoo, "arm": run_arm}[args.section](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
