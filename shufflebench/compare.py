"""Theoretical versus actual speedup of several models on one device (`compare`).

Every model is counted, then all are measured interleaved round-robin (`profiling.measure_interleaved`), so drift
hits them alike. Against the baseline model each gets:

* theoretical speedup = baseline multiply-adds / model multiply-adds,
* MAC ratio           = baseline deployed MAC / model deployed MAC,
* actual speedup      = baseline median latency / model median latency, with a bootstrap confidence interval over
  the paired rounds (`measure.ratio`),
* efficiency          = actual / theoretical speedup (1.0 means FLOPs told the whole truth).

The papers' published latencies (``data/published.toml``) are shown beside the measured ones where they exist.
"""

from __future__ import annotations

from typing import Any

from .devices import DeviceProfile
from .measure.ratio import median_ratio
from .measure.sampling import SamplingPolicy
from .models import ModelRef
from .profiling import ProfileResult, measure_interleaved, profile_data
from .published import latency_for

COMPARE_SCHEMA = "shufflebench.compare/1"


def compare_models(refs: list[ModelRef], device: DeviceProfile, policy: SamplingPolicy, *,
                   baseline: int = 0, on_progress=None, profile_runs: int = 0) -> dict[str, Any]:
    """Measure ``refs`` interleaved on ``device`` and compare each with ``refs[baseline]``; with ``profile_runs``
    each model also gets its operator breakdown (`breakdown`)."""
    results = measure_interleaved(refs, device, policy, on_progress=on_progress, profile_runs=profile_runs)
    data = compare_data(results, baseline)
    if profile_runs:
        from .breakdown import breakdown_for

        for entry, result in zip(data["models"], results):
            entry["breakdown"] = breakdown_for(result)
    return data


def compare_data(results: list[ProfileResult], baseline: int = 0) -> dict[str, Any]:
    """The machine-readable comparison (what ``--format json`` prints) from finished measurements."""
    base = results[baseline]
    base_paper = latency_for(base.ref.name, base.ref.variant)
    models = []
    for result in results:
        entry = profile_data(result)
        for key in ("environment", "device_profile", "session", "schema"):
            entry.pop(key, None)
        ratio = median_ratio(base.run.measurement.samples_s, result.run.measurement.samples_s)
        theoretical = base.cost.flops_madd / result.cost.flops_madd if result.cost.flops_madd else None
        entry["vs_baseline"] = {
            "theoretical_speedup": theoretical,
            "mac_ratio": base.cost.mac_bytes["deployed"] / result.cost.mac_bytes["deployed"],
            "actual_speedup": ratio.to_dict(),
            "efficiency": ratio.estimate / theoretical if theoretical else None,
        }
        paper = latency_for(result.ref.name, result.ref.variant)
        entry["paper"] = None if paper is None else {
            "latency_ms": paper.latency_ms,
            "device": paper.device,
            "source": paper.source,
            "speedup_vs_baseline": base_paper.latency_ms / paper.latency_ms if base_paper else None,
        }
        models.append(entry)
    first = results[0].run
    return {
        "schema": COMPARE_SCHEMA,
        "device": base.device.name,
        "emulated": any(r.run.emulated for r in results),
        "baseline": base.ref.label,
        "models": models,
        "environment": first.environment,
        "session": first.session,
    }
