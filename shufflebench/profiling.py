"""Theoretical cost and measured latency of one model on one device: the `profile` pipeline.

count (layer table -> cost summary) -> measure (a runner for the device) -> check the outputs -> one result.
A measurement whose outputs disagree with torch (or, for an ONNX file on a board, with this machine's onnxruntime)
is refused, never reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .cost import CostSummary, summarize
from .devices import DeviceProfile
from .measure.sampling import SamplingPolicy
from .models import ModelRef, layer_table
from .runners.base import Progress, RunResult, check_outputs, runner_for, torch_reference

PROFILE_SCHEMA = "shufflebench.profile/1"


@dataclass(frozen=True)
class ProfileResult:
    """A model's counts and its measurement on a device."""

    ref: ModelRef
    device: DeviceProfile
    cost: CostSummary
    run: RunResult


def reference_outputs(ref: ModelRef, device: DeviceProfile):
    """What the device's output must match: torch's, or for an ONNX file on a board, local onnxruntime's."""
    if ref.source != "onnx":
        return torch_reference(ref)
    if device.location == "local":
        return None  # this machine's onnxruntime is itself the reference
    from .runners.onnxruntime_local import OnnxRuntimeRunner

    local = DeviceProfile("reference", "", "cpu", "onnxruntime", "local")
    quick = SamplingPolicy(warmup_runs=0, min_runs=1, max_runs=1, budget_s=1.0)
    outputs = OnnxRuntimeRunner(local).measure(ref, quick, return_outputs=True).outputs
    return next(iter(outputs.values()))


def profile_model(ref: ModelRef, device: DeviceProfile, policy: SamplingPolicy, *,
                  on_progress: Progress = None, verify: bool = True, profile_runs: int = 0) -> ProfileResult:
    """Count ``ref``, measure it on ``device`` under ``policy``, and check its outputs (unless ``verify`` is off).
    ``profile_runs`` > 0 adds onnxruntime's per-kernel times (for the operator breakdown)."""
    return measure_interleaved([ref], device, policy, on_progress=on_progress, verify=verify,
                               profile_runs=profile_runs)[0]


def measure_interleaved(refs: list[ModelRef], device: DeviceProfile, policy: SamplingPolicy, *,
                        on_progress: Progress = None, verify: bool = True,
                        profile_runs: int = 0) -> list[ProfileResult]:
    """Count every model, then measure them interleaved round-robin on ``device``, so drift on a noisy machine
    hits all of them alike; sample ``i`` of every model comes from round ``i``. Outputs are checked as in
    `profile_model`. ``policy.budget_s`` is the budget of the whole interleaved run."""
    costs = [summarize(layer_table(ref)) for ref in refs]
    runner = runner_for(device)
    verify = verify and device.backend != "torch"  # torch eager is the reference itself

    def check(index: int, outputs: dict) -> None:
        expected = reference_outputs(refs[index], device)
        if expected is not None:
            check_outputs(f"{refs[index].label} on {device.name}", expected, next(iter(outputs.values())))

    kwargs = dict(on_progress=on_progress, return_outputs=verify, profile_runs=profile_runs,
                  check=check if verify else None)
    if len(refs) == 1:
        runs = [runner.measure(refs[0], policy, **kwargs)]
    else:
        runs = runner.measure_many(refs, policy, **kwargs)
    return [ProfileResult(ref, device, cost, run) for ref, cost, run in zip(refs, costs, runs)]


def profile_data(result: ProfileResult) -> dict[str, Any]:
    """The machine-readable result (what ``--format json`` prints and ``--output`` writes)."""
    latency = result.run.measurement.to_dict()
    median_s = result.run.measurement.median
    batch = result.ref.input_shape[0]
    achieved = result.cost.flops_madd / median_s if median_s > 0 else None
    hardware = result.device.hardware
    fraction = {}
    if hardware and achieved:
        if hardware.peak_madd_per_s:
            fraction["madd"] = achieved / hardware.peak_madd_per_s
        if hardware.memory_bandwidth_bytes_per_s:
            fraction["bandwidth"] = result.cost.mac_bytes["deployed"] / median_s / hardware.memory_bandwidth_bytes_per_s
    warnings = list(latency.get("warnings", [])) + list(result.run.environment.get("warnings", []))
    if result.run.emulated and not any(w.lower().startswith("emulated") for w in warnings):
        warnings.insert(0, "emulated: latency under qemu-user is not hardware latency")
    data = {
        "schema": PROFILE_SCHEMA,
        "model": result.ref.name,
        "label": result.ref.label,
        "short_label": result.ref.short_label,
        "variant": result.ref.variant,
        "input_shape": list(result.ref.input_shape),
        "device": result.device.name,
        "device_profile": result.device.to_dict(),
        "emulated": result.run.emulated,
        **result.cost.to_dict(),
        "latency": latency,
        "throughput_per_s": batch / median_s if median_s > 0 else None,
        "achieved_madd_per_s": achieved,
        "fraction_of_peak": fraction or None,
        "environment": result.run.environment,
        "session": result.run.session,
        "warnings": warnings,
    }
    return data
