"""One `regress` run: exact proxies compared, latency measured interleaved and judged, one exit code.

Two kinds of evidence, kept apart because they fail differently:

* exact proxies (`proxies`) are noise-free, so they are compared with ``==``. Against a baseline FILE (a committed
  contract) every change fails the gate by default (``proxies="strict"``); against a live model (``--against``) they
  differ by design and are reported only (``"report"``). Either default can be overridden.
* latency is noisy, so it is only judged on this machine in this run: candidate and baseline are measured
  interleaved (`profiling.measure_interleaved`: sample ``i`` of both from round ``i``) and `decide` turns the paired
  timings into a verdict. A latency stored in a baseline file is used only when the file's environment fingerprint
  equals this run's, and then with a warning (unpaired, so drift between the two runs counts as change).

Exit code (`outcome`): 1 when a latency verdict is a regression (the whole confidence interval of the ratio above
``1 + threshold``), or when proxies are strict and any exact proxy changed; 0 otherwise. Usage and setup errors
never get here: they leave as `UsageError`/`SetupError` (exit code 2).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Optional

from ..devices import DeviceProfile
from ..errors import UsageError
from ..guidelines import Thresholds
from ..measure.sampling import SamplingPolicy
from ..models import ModelRef, resolve_model
from . import decide as decide_mod
from .proxies import (
    compare_records,
    environment_fingerprint,
    kernel_context,
    match_records,
    model_proxies,
)

REGRESS_SCHEMA = "shufflebench.regress/1"
NOT_ASKED = "latency not asked for (--no-latency)"
PROXY_MODES = ("strict", "report")

#: on_progress(message): a one-line status for the user ("measuring ...", "counting ...").
Status = Optional[Callable[[str], None]]


@dataclass(frozen=True)
class GateSettings:
    """How a regress run judges. threshold, min_effect: fractions (0.05 = 5%); confidence of the ratio's interval;
    proxies: "strict" (any exact change fails) or "report"; latency: measure and judge latency at all."""

    threshold: float = decide_mod.DEFAULT_THRESHOLD
    min_effect: float = decide_mod.DEFAULT_MIN_EFFECT
    confidence: float = decide_mod.DEFAULT_CONFIDENCE
    proxies: str = "report"
    latency: bool = True
    resamples: int = decide_mod.RESAMPLES
    seed: int = decide_mod.SEED

    def __post_init__(self) -> None:
        if self.proxies not in PROXY_MODES:
            raise UsageError(f"--proxies {self.proxies!r} is not allowed; allowed: {', '.join(PROXY_MODES)}")


def ref_from_record(record: dict[str, Any]) -> ModelRef:
    """The model a baseline record describes, at the input shape it was counted at."""
    shape = tuple(record.get("input_shape") or ())
    if record.get("source") == "zoo":
        return resolve_model(record["label"], batch=shape[0] if shape else 1)
    return resolve_model(record["label"], input_shape=shape or None)


def _short(ref: ModelRef) -> str:
    """The label with default zoo options left out, for tables (the full label stays in the data)."""
    return getattr(ref, "short_label", ref.label)


def _noop(_: str) -> None:
    return None


def _latency_entry(decision, candidate_measurement, baseline_measurement, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "decision": decision.to_dict(),
        "candidate": candidate_measurement.to_dict(),
        "baseline": baseline_measurement.to_dict(),
    }


def _judge(settings: GateSettings, candidate_s, baseline_s, *, paired: bool):
    return decide_mod.decide(candidate_s, baseline_s, threshold=settings.threshold, min_effect=settings.min_effect,
                             confidence=settings.confidence, paired=paired, resamples=settings.resamples,
                             seed=settings.seed)


def measure_pair(candidate: ModelRef, baseline: ModelRef, device: DeviceProfile, policy: SamplingPolicy,
                 settings: GateSettings, *, on_progress=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure both models interleaved on ``device`` and judge them: ``(latency entry, environment)``."""
    from .. import profiling

    results = profiling.measure_interleaved([candidate, baseline], device, policy, on_progress=on_progress)
    cand, base = results[0].run.measurement, results[1].run.measurement
    decision = _judge(settings, cand.samples_s, base.samples_s, paired=True)
    entry = _latency_entry(decision, cand, base, "interleaved")
    if results[0].run.emulated:
        entry["decision"]["warnings"].insert(0, "emulated: qemu-user timings say nothing about the hardware")
    return entry, results[0].run.environment


@contextmanager
def _torch_single_threaded() -> Iterator[None]:
    """One torch intra-op thread while counting, exporting and checking outputs (restored afterwards).

    Those run thousands of tiny ops, where OpenMP threads only add barrier waits; on a busy 2-core CI runner
    (measured: one core taken by another process) two threads made tracing ShuffleNet V2 3x slower and its
    reference forward pass 20x slower, turning a 4 s gate into 15 s. Latency is unaffected: onnxruntime has its
    own thread pool, and the torch runner sets the profile's thread count itself.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def regress(candidates: list[ModelRef], *, device: DeviceProfile, policy: SamplingPolicy,
            settings: GateSettings = GateSettings(), against: ModelRef | None = None,
            baseline: dict[str, Any] | None = None, baseline_path: str | None = None, complete: bool = False,
            thresholds: Thresholds = Thresholds(), status: Status = None, on_progress=None) -> dict[str, Any]:
    """Compare ``candidates`` with ``against`` (a live model, measured interleaved) and/or a loaded ``baseline``
    file; return the machine-readable result, ``outcome.exit_code`` included.

    ``complete``: the candidates are meant to be every model of the baseline file, so a model only the file has is
    reported as removed. ``thresholds`` decide the guideline findings of live comparisons (a file brings its own).
    """
    with _torch_single_threaded():
        return _regress(candidates, device=device, policy=policy, settings=settings, against=against,
                        baseline=baseline, baseline_path=baseline_path, complete=complete, thresholds=thresholds,
                        status=status, on_progress=on_progress)


def _against_file(candidates, baseline, baseline_path, complete, here, status):
    """Exact proxies of every candidate compared with the file's records: ``(model entries, changes, notes)``."""
    from .proxies import thresholds_of

    file_thresholds = thresholds_of(baseline)  # findings are compared under the thresholds they were made with
    records = []
    for ref in candidates:
        status(f"counting {ref.label}")
        records.append(model_proxies(ref, file_thresholds))
    pairs, changes = match_records(baseline, records, complete=complete)
    stored_by_label = {cand["label"]: stored for stored, cand in pairs}
    models, notes = [], []
    for ref, record in zip(candidates, records):
        entry = _entry(ref.label, _short(ref), f"{ref.label} in {baseline_path}", f"{_short(ref)} in {baseline_path}")
        stored = stored_by_label.get(ref.label)
        if stored is not None:
            found, found_notes = compare_records(stored, record, baseline_context=baseline["kernel_context"],
                                                 candidate_context=here)
            entry["proxies"] = {"candidate": record, "baseline": stored}
            entry["changes"] = [c.to_dict() for c in found]
            changes += found
            notes += found_notes
        models.append(entry)
    return models, changes, notes


def _against_live(candidate, against, thresholds, here, status):
    """Exact proxies of the candidate compared with the live baseline model's: ``(model entries, changes, notes)``."""
    status(f"counting {candidate.label} and {against.label}")
    cand_record = model_proxies(candidate, thresholds)
    base_record = model_proxies(against, thresholds)
    changes, notes = compare_records(base_record, cand_record, baseline_context=here, candidate_context=here)
    entry = _entry(candidate.label, _short(candidate), against.label, _short(against))
    entry["proxies"] = {"candidate": cand_record, "baseline": base_record}
    entry["changes"] = [c.to_dict() for c in changes]
    return [entry], changes, notes


def _entry(candidate: str, candidate_short: str, baseline: str, baseline_short: str) -> dict[str, Any]:
    return {"candidate": candidate, "candidate_short": candidate_short, "baseline": baseline,
            "baseline_short": baseline_short, "proxies": None, "changes": [], "latency": None,
            "latency_skipped": None}


def _regress(candidates, *, device, policy, settings, against, baseline, baseline_path, complete, thresholds,
             status, on_progress) -> dict[str, Any]:
    from ..measure.environment import capture

    status = status or _noop
    if not candidates:
        raise UsageError("no candidate model to compare")
    if against is None and baseline is None:
        raise UsageError("nothing to compare against: give --against MODEL, --against-rev REV or --baseline FILE")
    if against is not None and len(candidates) != 1:
        raise UsageError(f"--against compares one candidate; {len(candidates)} were given")

    here = kernel_context()
    warnings: list[str] = []
    environment: dict[str, Any] | None = None
    if baseline is not None:
        models, changes, notes = _against_file(candidates, baseline, baseline_path, complete, here, status)
    else:
        models, changes, notes = _against_live(candidates[0], against, thresholds, here, status)

    if settings.latency and against is not None:
        status(f"measuring {candidates[0].label} against {against.label} on {device.name}, interleaved")
        entry, environment = measure_pair(candidates[0], against, device, policy, settings, on_progress=on_progress)
        models[0]["latency"] = entry
        if baseline is not None:
            models[0]["baseline"] = f"{against.label} (latency); {models[0]['baseline']} (proxies)"
            models[0]["baseline_short"] = f"{_short(against)} (latency); {models[0]['baseline_short']} (proxies)"
    elif settings.latency and baseline is not None:
        environment = _stored_latency(models, candidates, baseline, device, policy, settings, warnings, status,
                                      on_progress)
    elif not settings.latency:
        for entry in models:
            entry["latency_skipped"] = NOT_ASKED

    if environment is None:
        environment = capture(threads=device.threads, provider=device.provider,
                              optimization_level=device.optimization_level)
    data = {
        "schema": REGRESS_SCHEMA,
        "device": device.name,
        "device_profile": device.to_dict(),
        "settings": asdict(settings),
        "baseline_file": str(baseline_path) if baseline_path is not None else None,
        "models": models,
        "changes": [c.to_dict() for c in changes],
        "notes": notes,
        "environment": environment,
        "fingerprint": environment_fingerprint(environment, device),
        "kernel_context": here,
        "warnings": warnings,
    }
    data["outcome"] = outcome(data)
    return data


def _stored_latency(models, candidates, baseline, device, policy, settings, warnings, status, on_progress):
    """Judge candidates against latencies stored in the baseline file, where the file's fingerprint allows."""
    from ..measure.stats import Measurement
    from ..profiling import profile_model

    stored = baseline.get("latency") or {}
    stored_device = (baseline.get("device") or {}).get("name")
    environment = None
    for ref, entry in zip(candidates, models):
        if ref.label not in stored:
            entry["latency_skipped"] = "the baseline file stores no latency for this model (proxies only)"
            continue
        if stored_device != device.name:
            entry["latency_skipped"] = (f"the stored latency was measured on device {stored_device}, this run uses "
                                        f"{device.name}")
            continue
        status(f"measuring {ref.label} on {device.name}")
        result = profile_model(ref, device, policy, on_progress=on_progress)
        environment = result.run.environment
        fingerprint = environment_fingerprint(environment, device)
        if fingerprint != baseline.get("fingerprint"):
            entry["latency_skipped"] = (f"stored latency not used: environment fingerprint {baseline.get('fingerprint')} "
                                        f"differs from this run's {fingerprint} (another machine or other software); "
                                        "use --against to measure both here")
            continue
        base = Measurement.from_dict(stored[ref.label])
        decision = _judge(settings, result.run.measurement.samples_s, base.samples_s, paired=False)
        entry["latency"] = _latency_entry(decision, result.run.measurement, base, "stored")
        note = ("latency compared with a measurement stored in the baseline file (same environment fingerprint, "
                "not interleaved): drift between the two runs counts as change")
        if note not in warnings:
            warnings.append(note)
    return environment


def outcome(data: dict[str, Any]) -> dict[str, Any]:
    """The gate's decision on a result: exit code 1 on a latency regression or a strict proxy change, else 0."""
    reasons = []
    for entry in data["models"]:
        latency = entry.get("latency")
        if latency and latency["decision"]["regression"]:
            reasons.append(f"latency of {entry['candidate']}: {latency['decision']['summary']}")
    strict = data["settings"]["proxies"] == "strict"
    if strict and data["changes"]:
        count = len(data["changes"])
        reasons.append(f"exact proxies: {count} change{'s' if count != 1 else ''} (--proxies strict)")
    regression = bool(reasons)
    return {"exit_code": 1 if regression else 0, "regression": regression, "reasons": reasons}
