"""One `regress` run: exact proxies compared, latency measured interleaved and judged, one exit code.

Two kinds of evidence, kept apart because they fail differently:

* exact proxies (`proxies`) are noise-free, so they are compared with ``==``. Against a baseline FILE (a committed
  contract) every change fails the gate by default (``proxies="strict"``); against a live model (``--against``) they
  differ by design and are reported only (``"report"``). Either default can be overridden.
* latency is noisy, so it is only judged on this machine in this run: candidate and baseline are measured
  interleaved (`profile.measure_models`: sample ``i`` of both from the same round) and `decide` turns the paired
  timings into a verdict. A latency stored in a baseline file is used only when the file's environment fingerprint
  equals this run's, and then with a warning (unpaired, so drift between the two runs counts as change).
* on a counted device nothing is timed: per-inference counts are compared with a tolerance (`counted`), both
  counted in this run or the candidate's against counts stored in a baseline file (compared where the counting
  context, i.e. tool, onnxruntime, CPU model or instruction set and simulated caches, is the same), so a pull
  request is judged without running the base revision.

Exit code (`outcome`): 1 when a latency verdict is a regression (the whole confidence interval of the ratio above
``1 + threshold``), a counted verdict is one (the count grew by more than the threshold), or when proxies are
strict and any exact proxy changed; 0 otherwise. Usage and setup errors
never get here: they leave as `UsageError`/`SetupError` (exit code 2).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Iterator, Optional, Sequence

from ..check import Thresholds
from ..counters.figures import Counters
from ..devices import DeviceProfile
from ..errors import UsageError
from ..measure.environment import capture
from ..measure.sampling import SamplingPolicy
from ..measure.stats import Measurement
from ..prepared import PreparedModel
from .. import profile as profile_stage  # by module, so a test can stand in a fake measurement
from ..runners.base import Progress
from . import decide as decide_mod
from .counted import CountJudgement, context_difference, judge_counts
from .proxies import (
    Change,
    compare_records,
    environment_fingerprint,
    kernel_context,
    match_records,
    model_proxies,
    thresholds_of,
)

REGRESS_SCHEMA = "shufflebench.regress/2"
NOT_ASKED = "latency not asked for (--no-latency)"
PROXY_MODES = ("strict", "report")

#: status(message): a one-line status for the user ("measuring ...", "counting ...").
Status = Optional[Callable[[str], None]]


@dataclass(frozen=True)
class GateSettings:
    """How a regress run judges. threshold, min_effect: fractions (0.05 = 5%), min_effect by default 2% or the
    threshold where that is lower; confidence of the ratio's interval; proxies: "strict" (any exact change fails) or
    "report"; latency: measure and judge latency at all."""

    threshold: float = decide_mod.DEFAULT_THRESHOLD
    min_effect: Optional[float] = None
    confidence: float = decide_mod.DEFAULT_CONFIDENCE
    proxies: str = "report"
    latency: bool = True
    resamples: int = decide_mod.RESAMPLES
    seed: int = decide_mod.SEED

    def __post_init__(self) -> None:
        if self.proxies not in PROXY_MODES:
            raise UsageError(f"--proxies {self.proxies!r} is not allowed; allowed: {', '.join(PROXY_MODES)}")
        if self.min_effect is None:
            object.__setattr__(self, "min_effect", min(decide_mod.DEFAULT_MIN_EFFECT, self.threshold))
        if self.effect > self.threshold:
            # A regression must be a change at all: above a minimum effect larger than the threshold, the threshold
            # would silently be the minimum effect.
            raise UsageError(f"--min-effect {decide_mod.percent(self.effect, False)} is above --threshold "
                             f"{decide_mod.percent(self.threshold, False)}; allowed: a minimum effect up to the "
                             "threshold")

    @property
    def effect(self) -> float:
        """The minimum effect in force: the one given, else the default resolved against the threshold."""
        assert self.min_effect is not None  # set by __post_init__
        return self.min_effect


@dataclass(frozen=True)
class LatencyJudgement:
    """A candidate's latency against its baseline's: both measurements and the verdict on their ratio.
    source: "interleaved" (measured together in this run) or "stored" (the baseline from a baseline file)."""

    source: str
    decision: decide_mod.Decision
    candidate: Measurement
    baseline: Measurement

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "decision": self.decision.to_dict(), "candidate": self.candidate.to_dict(),
                "baseline": self.baseline.to_dict()}


@dataclass(frozen=True)
class GateEntry:
    """One candidate in a regress run: what it was compared with, the exact-proxy records and their changes, and
    the latency verdict (or why latency was not judged)."""

    candidate: str
    candidate_short: str
    baseline: str
    baseline_short: str
    proxies: dict[str, Any] | None = None  # {"candidate": record, "baseline": record}: baseline-file records
    changes: tuple[Change, ...] = ()
    latency: LatencyJudgement | None = None
    latency_skipped: str | None = None
    counts: CountJudgement | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "candidate_short": self.candidate_short, "baseline": self.baseline,
                "baseline_short": self.baseline_short, "proxies": self.proxies,
                "changes": [c.to_dict() for c in self.changes],
                "latency": self.latency.to_dict() if self.latency else None, "latency_skipped": self.latency_skipped,
                "counts": self.counts.to_dict() if self.counts else None}


@dataclass(frozen=True)
class Outcome:
    """The gate's decision: exit code 1 on a latency regression or a strict proxy change, else 0, and why."""

    exit_code: int
    reasons: tuple[str, ...]

    @property
    def regression(self) -> bool:
        return self.exit_code == 1


@dataclass(frozen=True)
class RegressResult:
    """Everything one regress run found, and its outcome."""

    device: DeviceProfile
    settings: GateSettings
    baseline_file: str | None
    models: tuple[GateEntry, ...]
    changes: tuple[Change, ...]
    notes: tuple[str, ...]
    environment: dict[str, Any]
    kernel_context: dict[str, Any]
    warnings: tuple[str, ...] = ()
    emulated: bool = False

    @property
    def interrupted(self) -> bool:
        """Ctrl-C ended a latency measurement: its verdict rests on the rounds finished before it."""
        return any(entry.latency.candidate.interrupted for entry in self.models if entry.latency)

    @property
    def fingerprint(self) -> str:
        return environment_fingerprint(self.environment, self.device)

    @property
    def outcome(self) -> Outcome:
        reasons = [f"latency of {entry.candidate}: {entry.latency.decision.describe()}" for entry in self.models
                   if entry.latency and entry.latency.decision.regression]
        reasons += [f"counts of {entry.candidate}: {entry.counts.decision.describe()}" for entry in self.models
                    if entry.counts and entry.counts.decision.regression]
        if self.settings.proxies == "strict" and self.changes:
            count = len(self.changes)
            reasons.append(f"exact proxies: {count} change{'s' if count != 1 else ''} (--proxies strict)")
        return Outcome(1 if reasons else 0, tuple(reasons))

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable result (what ``--format json`` prints and ``--output`` writes)."""
        outcome = self.outcome
        return {
            "schema": REGRESS_SCHEMA,
            "device": self.device.name,
            "device_profile": self.device.to_dict(),
            "emulated": self.emulated,
            "settings": asdict(self.settings),
            "baseline_file": self.baseline_file,
            "models": [entry.to_dict() for entry in self.models],
            "changes": [c.to_dict() for c in self.changes],
            "notes": list(self.notes),
            "environment": self.environment,
            "fingerprint": self.fingerprint,
            "kernel_context": self.kernel_context,
            "warnings": list(self.warnings),
            "outcome": {"exit_code": outcome.exit_code, "regression": outcome.regression,
                        "reasons": list(outcome.reasons)},
        }


def _judge(settings: GateSettings, candidate_s: Sequence[float], baseline_s: Sequence[float], *,
           paired: bool) -> decide_mod.Decision:
    return decide_mod.decide(candidate_s, baseline_s, threshold=settings.threshold, min_effect=settings.effect,
                             confidence=settings.confidence, paired=paired, resamples=settings.resamples,
                             seed=settings.seed)


def measure_pair(candidate: PreparedModel, baseline: PreparedModel, device: DeviceProfile, policy: SamplingPolicy,
                 settings: GateSettings, *,
                 on_progress: Progress = None) -> tuple[LatencyJudgement | CountJudgement, dict[str, Any]]:
    """Measure both models interleaved on ``device`` (or count both, on a counted device) and judge them:
    ``(judgement, environment)``."""
    cand, base = profile_stage.measure_models([candidate, baseline], device, policy, on_progress=on_progress)
    if cand.counters is not None and base.counters is not None:
        decision = judge_counts(cand.counters, base.counters, settings.threshold)
        return CountJudgement("counted", decision, cand.counters, base.counters), cand.environment
    latency = _judge(settings, cand.timed.samples_s, base.timed.samples_s, paired=True)
    return LatencyJudgement("interleaved", latency, cand.timed, base.timed), cand.environment


def _judged(entry: GateEntry, judgement: LatencyJudgement | CountJudgement) -> GateEntry:
    if isinstance(judgement, CountJudgement):
        return replace(entry, counts=judgement)
    return replace(entry, latency=judgement)


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


def regress(candidates: Sequence[PreparedModel], *, device: DeviceProfile, policy: SamplingPolicy,
            settings: GateSettings = GateSettings(), against: PreparedModel | None = None,
            baseline: dict[str, Any] | None = None, baseline_path: str | None = None, complete: bool = False,
            thresholds: Thresholds = Thresholds(), status: Status = None,
            on_progress: Progress = None) -> RegressResult:
    """Compare ``candidates`` with ``against`` (a live model, measured interleaved) and/or a loaded ``baseline``
    file (``policy.budget_s`` per model measured).

    ``complete``: the candidates are meant to be every model of the baseline file, so a model only the file has is
    reported as removed. ``thresholds`` decide the guideline findings of live comparisons (a file brings its own).
    """
    if not candidates:
        raise UsageError("no candidate model to compare")
    if against is None and baseline is None:
        raise UsageError("nothing to compare against: give --against MODEL, --against-rev REV or --baseline FILE")
    if against is not None and len(candidates) != 1:
        raise UsageError(f"--against compares one candidate; {len(candidates)} were given")
    with _torch_single_threaded():
        return _regress(candidates, device, policy, settings, against, baseline, baseline_path, complete,
                        thresholds, status or _noop, on_progress)


def _noop(_: str) -> None:
    return None


def _regress(candidates: Sequence[PreparedModel], device: DeviceProfile, policy: SamplingPolicy,
             settings: GateSettings, against: PreparedModel | None, baseline: dict[str, Any] | None,
             baseline_path: str | None, complete: bool, thresholds: Thresholds, status: Callable[[str], None],
             on_progress: Progress) -> RegressResult:
    here = kernel_context()
    warnings: list[str] = []
    environment: dict[str, Any] | None = None
    emulated = False
    if baseline is not None:
        models, changes, notes = _against_file(candidates, baseline, baseline_path, complete, here, status)
    else:
        assert against is not None
        models, changes, notes = _against_live(candidates[0], against, thresholds, here, status)

    if settings.latency and against is not None:
        how = "counting both" if device.counted else "interleaved"
        status(f"measuring {candidates[0].label} against {against.label} on {device.name}, {how}")
        judgement, environment = measure_pair(candidates[0], against, device, policy, settings,
                                              on_progress=on_progress)
        emulated = bool(environment.get("emulated"))
        entry = _judged(models[0], judgement)
        if baseline is not None:
            entry = replace(entry, baseline=f"{against.label} (latency); {entry.baseline} (proxies)",
                            baseline_short=f"{against.short_label} (latency); {entry.baseline_short} (proxies)")
        models[0] = entry
    elif settings.latency and baseline is not None and device.counted:
        models, environment = _stored_counts(models, candidates, baseline, device, policy, settings, status,
                                             on_progress)
        emulated = bool(environment and environment.get("emulated"))
    elif settings.latency and baseline is not None:
        models, environment = _stored_latency(models, candidates, baseline, device, policy, settings, warnings,
                                              status, on_progress)
        emulated = bool(environment and environment.get("emulated"))
    elif not settings.latency:
        models = [replace(entry, latency_skipped=NOT_ASKED) for entry in models]

    if environment is None:
        environment = capture(threads=device.threads, provider=device.provider,
                              optimization_level=device.optimization_level)
    return RegressResult(device, settings, str(baseline_path) if baseline_path is not None else None, tuple(models),
                         tuple(changes), tuple(notes), environment, here, tuple(warnings), emulated)


def _against_file(candidates: Sequence[PreparedModel], baseline: dict[str, Any], baseline_path: str | None,
                  complete: bool, here: dict[str, Any],
                  status: Callable[[str], None]) -> tuple[list[GateEntry], list[Change], list[str]]:
    """Exact proxies of every candidate compared with the file's records: ``(model entries, changes, notes)``."""
    file_thresholds = thresholds_of(baseline)  # findings are compared under the thresholds they were made with
    records = []
    for model in candidates:
        status(f"counting {model.label}")
        records.append(model_proxies(model, file_thresholds))
    pairs, changes = match_records(baseline, records, complete=complete)
    stored_by_label = {cand["label"]: stored for stored, cand in pairs}
    models, notes = [], []
    for model, record in zip(candidates, records):
        entry = GateEntry(model.label, model.short_label, f"{model.label} in {baseline_path}",
                          f"{model.short_label} in {baseline_path}")
        stored = stored_by_label.get(model.label)
        if stored is not None:
            found, found_notes = compare_records(stored, record, baseline_context=baseline["kernel_context"],
                                                 candidate_context=here)
            entry = replace(entry, proxies={"candidate": record, "baseline": stored}, changes=tuple(found))
            changes += found
            notes += found_notes
        models.append(entry)
    return models, changes, notes


def _against_live(candidate: PreparedModel, against: PreparedModel, thresholds: Thresholds, here: dict[str, Any],
                  status: Callable[[str], None]) -> tuple[list[GateEntry], list[Change], list[str]]:
    """Exact proxies of the candidate compared with the live baseline model's: ``(model entries, changes, notes)``."""
    status(f"counting {candidate.label} and {against.label}")
    cand_record = model_proxies(candidate, thresholds)
    base_record = model_proxies(against, thresholds)
    changes, notes = compare_records(base_record, cand_record, baseline_context=here, candidate_context=here)
    entry = GateEntry(candidate.label, candidate.short_label, against.label, against.short_label,
                      {"candidate": cand_record, "baseline": base_record}, tuple(changes))
    return [entry], changes, notes


def _stored_latency(models: list[GateEntry], candidates: Sequence[PreparedModel], baseline: dict[str, Any],
                    device: DeviceProfile, policy: SamplingPolicy, settings: GateSettings, warnings: list[str],
                    status: Callable[[str], None],
                    on_progress: Progress) -> tuple[list[GateEntry], dict[str, Any] | None]:
    """Judge candidates against latencies stored in the baseline file, where the file's fingerprint allows."""
    stored = baseline.get("latency") or {}
    stored_device = (baseline.get("device") or {}).get("name")
    environment = None
    judged = []
    for model, entry in zip(candidates, models):
        if model.label not in stored:
            judged.append(replace(entry, latency_skipped="the baseline file stores no latency for this model "
                                                           "(proxies only)"))
            continue
        if stored_device != device.name:
            judged.append(replace(entry, latency_skipped=f"the stored latency was measured on device "
                                                          f"{stored_device}, this run uses {device.name}"))
            continue
        status(f"measuring {model.label} on {device.name}")
        result = profile_stage.profile_model(model, device, policy, on_progress=on_progress)
        environment = result.environment
        fingerprint = environment_fingerprint(environment, device)
        if fingerprint != baseline.get("fingerprint"):
            judged.append(replace(entry, latency_skipped=(
                f"stored latency not used: environment fingerprint {baseline.get('fingerprint')} differs from this "
                f"run's {fingerprint} (another machine or other software); use --against to measure both here")))
            continue
        base = Measurement.from_dict(stored[model.label])
        decision = _judge(settings, result.timed.samples_s, base.samples_s, paired=False)
        judged.append(replace(entry, latency=LatencyJudgement("stored", decision, result.timed, base)))
        note = ("latency compared with a measurement stored in the baseline file (same environment fingerprint, "
                "not interleaved): drift between the two runs counts as change")
        if note not in warnings:
            warnings.append(note)
    return judged, environment


def _stored_counts(models: list[GateEntry], candidates: Sequence[PreparedModel], baseline: dict[str, Any],
                   device: DeviceProfile, policy: SamplingPolicy, settings: GateSettings,
                   status: Callable[[str], None],
                   on_progress: Progress) -> tuple[list[GateEntry], dict[str, Any] | None]:
    """Judge candidates against counts stored in the baseline file (all candidates counted in one process), where
    the file's counting context is this run's."""
    stored = baseline.get("counters") or {}
    stored_device = (baseline.get("device") or {}).get("name")
    skipped: dict[str, str] = {}
    for model in candidates:
        if model.label not in stored:
            skipped[model.label] = "the baseline file stores no counts for this model"
        elif stored_device != device.name:
            skipped[model.label] = f"the stored counts were made on device {stored_device}, this run uses {device.name}"
    wanted = [model for model in candidates if model.label not in skipped]
    results = {}
    if wanted:
        status(f"counting {len(wanted)} model{'s' if len(wanted) != 1 else ''} on {device.name}")
        results = {model.label: result for model, result in
                   zip(wanted, profile_stage.measure_models(wanted, device, policy, on_progress=on_progress))}
    judged = []
    for model, entry in zip(candidates, models):
        result = results.get(model.label)
        if result is None or result.counters is None:
            judged.append(replace(entry, latency_skipped=skipped.get(model.label, "not counted")))
            continue
        base = Counters.from_dict(stored[model.label])
        why = context_difference(base.context, result.counters.context)
        if why is not None:
            judged.append(replace(entry, latency_skipped=f"stored counts not used: made with {why} (baseline vs "
                                                         "here); use --against or --against-rev to count both here"))
            continue
        decision = judge_counts(result.counters, base, settings.threshold)
        judged.append(replace(entry, counts=CountJudgement("stored", decision, result.counters, base)))
    environment = next(iter(results.values())).environment if results else None
    return judged, environment
