"""`baseline save`: the exact proxies of models (and optionally their latency, or on a counted device their counts)
stored with the environment, for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..check import Thresholds
from ..devices import DeviceProfile
from ..errors import UsageError
from ..measure.environment import capture
from ..measure.sampling import SamplingPolicy
from ..prepared import PreparedModel
from .. import profile as profile_stage  # by module, so a test can stand in a fake measurement
from ..runners.base import Progress
from .proxies import baseline_data, model_proxies, save_baseline


def save_models_baseline(models: Sequence[PreparedModel], output: Path, *, thresholds: Thresholds,
                         device: DeviceProfile, policy: Optional[SamplingPolicy] = None,
                         status: Optional[Callable[[str], None]] = None,
                         on_progress: Progress = None) -> dict[str, Any]:
    """Count every model's exact proxies and write the baseline file; with ``policy``, also measure each model on
    ``device`` alone (a stored latency is later compared with a measurement of the candidate alone). On a counted
    ``device`` the models are counted instead (all in one process) and their per-inference counts stored, so
    `regress --baseline` judges a candidate without counting the baseline again. Returns what was written. Ctrl-C
    writes nothing (a baseline is a contract: half of one would fail every later gate)."""
    records = [model_proxies(model, thresholds) for model in models]
    measured, counted = {}, {}
    environment = None
    if device.counted:
        if policy is not None:
            raise UsageError(f"--latency times models; {device.name} counts them, and baseline save on it stores "
                             "the counts without --latency")
        if status is not None:
            status(f"counting {len(models)} model{'s' if len(models) != 1 else ''} on {device.name}")
        results = profile_stage.measure_models(models, device, SamplingPolicy(), on_progress=on_progress)
        counted = {model.label: result.counters.to_dict() for model, result in zip(models, results)
                   if result.counters is not None}
        environment = results[0].environment if results else None
    elif policy is not None:
        for model in models:
            if status is not None:
                status(f"measuring {model.label}")
            result = profile_stage.profile_model(model, device, policy, on_progress=on_progress)
            if result.interrupted:
                # A stored latency is compared with later runs as if complete: an interrupted one is not stored.
                raise KeyboardInterrupt
            measured[model.label] = result.timed.to_dict()
            environment = result.environment
    if environment is None:
        environment = capture(threads=device.threads, provider=device.provider,
                              optimization_level=device.optimization_level)
    data = baseline_data(records, thresholds=thresholds, environment=environment,
                         device=device if policy is not None or device.counted else None,
                         latency=measured or None, counters=counted or None)
    save_baseline(output, data)
    return data
