"""Does interleaving time a model cold? Latency ratios of small models under three ways of taking turns.

    python benchmarks/turns.py [--repeats 3] [--budget 2] [--output turns.json] [MODEL ...]

Models measured interleaved share the caches: a model that runs right after another finds its weights and buffers
evicted and runs slower for a few runs. This benchmark measures the same models, in one process, with three
`SamplingPolicy` settings, the three alternating ``--repeats`` times so the machine's drift hits all alike:

* ``one run per turn`` (``turn_runs=1, settle_runs=0``): plain round-robin, every timed run follows another model;
* ``default turns`` (the policy's defaults: a few untimed settling runs, then a few timed ones per turn);
* ``long turns`` (``turn_runs=40, settle_runs=5``): each model warm, as a user running it over and over sees it:
  the reference every other setting is scored against.

First, the warming curve: turns of 12 timed runs and no settling, 40 rounds; the median time of the k-th run of a
turn, for k = 1..12, shows how many runs a model needs after the others before it runs warm.

For each model and setting: the median latency and the ratio to the first model (each repeat's ratio of medians,
which `compare` reports, then the median over repeats), and how far that ratio is from the long turns' one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shufflebench.devices import resolve_device  # noqa: E402
from shufflebench.files import write_json_atomic  # noqa: E402
from shufflebench.measure.sampling import SamplingPolicy  # noqa: E402
from shufflebench.models import resolve_model  # noqa: E402
from shufflebench.prepared import PreparedModel  # noqa: E402
from shufflebench.profile import measure_models  # noqa: E402

MODELS = ("shufflenet_v2", "shufflenet_v2:width=0.5", "mobilenet_v2", "shufflenet_v1", "g1:ratio=1,scale=2")
SETTINGS = {"one run per turn": {"turn_runs": 1, "settle_runs": 0}, "default turns": {},
            "long turns": {"turn_runs": 40, "settle_runs": 5}}
REFERENCE_SETTING = "long turns"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per model and setting")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    models = [PreparedModel(resolve_model(label)) for label in args.models]
    device = resolve_device("cpu")
    curve_turn, curve_rounds = 12, 40
    policy = SamplingPolicy(warmup_runs=5, min_runs=curve_turn * curve_rounds, max_runs=curve_turn * curve_rounds,
                            budget_s=1e9, turn_runs=curve_turn, settle_runs=0)
    curves = []
    for model, result in zip(models, measure_models(models, device, policy, verify=False)):
        samples = result.measurement.samples_s
        curve = [statistics.median(samples[k::curve_turn]) * 1e3 for k in range(curve_turn)]
        curves.append({"model": model.label, "run_ms": curve})
        print(f"warming {model.label[:40]:40s} " + " ".join(f"{ms:.2f}" for ms in curve), flush=True)
    medians: dict[str, list[list[float]]] = {name: [[] for _ in models] for name in SETTINGS}
    ratios: dict[str, list[list[float]]] = {name: [[] for _ in models] for name in SETTINGS}
    for repeat in range(args.repeats):
        for name, fields in SETTINGS.items():
            policy = SamplingPolicy(warmup_runs=5, min_runs=20, budget_s=args.budget, min_time_s=0.0, **fields)
            results = measure_models(models, device, policy, verify=False)
            for i, result in enumerate(results):
                medians[name][i].append(result.measurement.median * 1e3)
                ratios[name][i].append(result.measurement.median / results[0].measurement.median)
            print(f"repeat {repeat + 1} {name:17s} " + "  ".join(f"{m[-1]:.2f}" for m in medians[name]), flush=True)
    rows = []
    for i, model in enumerate(models):
        row: dict = {"model": model.label}
        for name in SETTINGS:
            ms = statistics.median(medians[name][i])
            ratio = statistics.median(ratios[name][i])
            row[name] = {"median_ms": ms, "ratio": ratio}
        reference = row[REFERENCE_SETTING]["ratio"]
        for name in SETTINGS:
            row[name]["ratio_error"] = row[name]["ratio"] / reference - 1
        rows.append(row)
    print(f"\nmedian ms (ratio to {models[0].label}; its error against {REFERENCE_SETTING})")
    print(f"{'model':42s}" + "".join(f"{name:>30s}" for name in SETTINGS))
    for row in rows:
        print(f"{row['model'][:42]:42s}" + "".join(
            f"{row[n]['median_ms']:9.2f} ({row[n]['ratio']:.3f}; {row[n]['ratio_error']:+6.1%})" for n in SETTINGS))
    if args.output:
        write_json_atomic(args.output, {"schema": "shufflebench.turns-benchmark/1", "repeats": args.repeats,
                                        "budget_s": args.budget, "settings": SETTINGS,
                                        "default_policy": {"turn_runs": SamplingPolicy().turn_runs,
                                                           "settle_runs": SamplingPolicy().settle_runs},
                                        "warming": curves, "models": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
