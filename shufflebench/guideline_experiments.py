"""The four ShuffleNet V2 section-2 experiments on a device (`guidelines`), printed like the paper's Tables 1-4.

Each experiment is one micro-network (``g1``..``g4``) in all its variants, at the x1/x2/x4 channel widths. The
variants of one width are measured interleaved (so drift hits them alike) and reported as throughput (images per
second). The paper's channel column is chosen by the device: its GPU column for CUDA devices, its ARM column (the
paper's CPU-bound, single-thread setting) otherwise.

A verdict per guideline compares the variant the guideline prefers with the one it warns against, at every width:
it *holds* when the preferred variant is faster with its latency-ratio confidence interval above 1 at every width;
it *does not hold* when it is slower with the interval below 1 at some width; otherwise it is *inconclusive*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .devices import DeviceProfile
from .errors import UsageError, allowed
from .measure.ratio import median_ratio
from .measure.sampling import SamplingPolicy
from .models import resolve_model
from .profiling import measure_interleaved
from .published import guideline_tables


@dataclass(frozen=True)
class Experiment:
    """One guideline experiment: the micro-network, its variants as published, and the pair the verdict compares."""

    name: str
    guideline: str
    claim: str
    preferred: str
    warned: str


EXPERIMENTS = {
    "g1": Experiment("g1", "G1", "equal channel width minimizes MAC", "1", "12"),
    "g2": Experiment("g2", "G2", "excessive group convolution increases MAC", "1", "8"),
    "g3": Experiment("g3", "G3", "network fragmentation reduces parallelism", "1", "4p"),
    "g4": Experiment("g4", "G4", "element-wise operations are not negligible", "false,false", "true,true"),
}
SCALES = (1, 2, 4)


def parse_only(text: str | None) -> list[str]:
    """``g1,g3`` -> ["g1", "g3"]; every experiment when None."""
    if not text:
        return list(EXPERIMENTS)
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in EXPERIMENTS:
            raise UsageError(f"--only {name!r} is not an experiment; allowed: {allowed(EXPERIMENTS)}")
    return names


def parse_widths(text: str | None) -> list[int]:
    """``1,2`` -> [1, 2]; the paper's x1, x2, x4 when None."""
    if not text:
        return list(SCALES)
    widths = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            value = 0
        if value not in SCALES:
            raise UsageError(f"--widths {part.strip()!r} is not a width of the paper; allowed: 1, 2, 4")
        widths.append(value)
    return widths


def _variant_arg(experiment: str, option: str, value: Any, scale: int, base: str) -> str:
    if experiment == "g4":
        relu, shortcut = str(value).split(",")
        options = f"relu={relu},shortcut={shortcut}"
    else:
        options = f"{option}={value}"
    return f"{experiment}:{options},scale={scale},base={base}"


def run_experiments(device: DeviceProfile, policy: SamplingPolicy, *, only: list[str], widths: list[int],
                    on_group: Callable[[str, int], None] | None = None, on_progress=None) -> dict[str, Any]:
    """Measure the chosen experiments on ``device``; ``policy.budget_s`` is per variant. Returns plain data."""
    column = "gpu" if device.kind == "cuda" else "arm"
    tables = guideline_tables()
    experiments = []
    for name in only:
        published = tables[name]
        spec = EXPERIMENTS[name]
        rows = [{"value": row.value, "paper": {"gpu": list(row.gpu), "arm": list(row.arm)}, "measured": {}}
                for row in published.rows]
        ratios = {}
        for scale in widths:
            if on_group is not None:
                on_group(name, scale)
            refs = [resolve_model(_variant_arg(name, published.option, row["value"], scale, column),
                                  batch=device.batch) for row in rows]
            group_policy = SamplingPolicy(**{**policy.to_dict(), "budget_s": policy.budget_s * len(refs)})
            results = measure_interleaved(refs, device, group_policy, on_progress=on_progress)
            for row, result in zip(rows, results):
                m = result.run.measurement
                ci = m.ci95
                row["measured"][str(scale)] = {
                    "throughput_per_s": device.batch / m.median,
                    "throughput_ci": [device.batch / ci[1], device.batch / ci[0]] if ci else None,
                    "median_ms": m.median * 1e3,
                    "flops_madd": result.cost.flops_madd,
                    "runs": m.runs,
                }
            by_value = {str(row["value"]): result for row, result in zip(rows, results)}
            good, bad = by_value[spec.preferred], by_value[spec.warned]
            # speedup of the preferred variant: warned latency / preferred latency, paired by round
            ratios[str(scale)] = median_ratio(bad.run.measurement.samples_s, good.run.measurement.samples_s)
        experiments.append({
            "experiment": name,
            "guideline": spec.guideline,
            "claim": spec.claim,
            "option": published.option,
            "source": published.source,
            "paper_unit": {"gpu": published.gpu_unit, "arm": published.arm_unit},
            "rows": rows,
            "verdict": verdict(spec, ratios),
        })
    return {
        "schema": "shufflebench.guidelines/1",
        "device": device.name,
        "emulated": device.emulated,
        "column": column,
        "widths": widths,
        "experiments": experiments,
    }


def verdict(spec: Experiment, ratios: dict[str, Any]) -> dict[str, Any]:
    """holds / does not hold / inconclusive from the preferred variant's speedup CIs at every width."""
    above = [s for s, r in ratios.items() if r.low > 1]
    below = [s for s, r in ratios.items() if r.high < 1]
    if below:
        result = "does not hold"
    elif len(above) == len(ratios):
        result = "holds"
    else:
        result = "inconclusive"
    detail = "; ".join(
        f"x{s}: {spec.preferred} is {r.estimate:.2f}x the speed of {spec.warned} (95% CI {r.low:.2f}-{r.high:.2f})"
        for s, r in ratios.items()
    )
    return {"result": result, "detail": detail,
            "speedups": {s: r.to_dict() for s, r in ratios.items()}}
