"""What a user asks `regress` for, resolved into models: against a model, a git revision, a baseline file, the zoo.

The command line only collects the request (`RegressRequest`); `run_regress` resolves it here, in the library:
which candidates (named, every zoo model, or every model of the baseline file), what they are compared with (a live
model, the candidate's callable at another revision, the file's records), and the gate's settings.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..check import Thresholds
from ..devices import DeviceProfile
from ..errors import UsageError
from ..measure.sampling import SamplingPolicy
from ..models import ModelRef, resolve_model, resolve_models
from ..options import VariantOptions
from ..prepared import PreparedModel, prepare
from ..runners.base import Progress
from . import counted, decide
from .gate import GateSettings, RegressResult, Status, regress
from .proxies import load_baseline


@dataclass(frozen=True)
class RegressRequest:
    """A regress run as the user asked for it.

    candidates: model arguments (empty: every model of the baseline file). against: a model measured with the
    candidate. against_rev: a git revision; the candidate's (or ``against``'s) ``package.module:callable`` as it was
    there. baseline: a baseline file. zoo: every registered model as candidates. threshold, min_effect: fractions
    (threshold None: 5% for latency, 0.5% on a counted device; min_effect None: 2%, or the threshold where that is
    lower).
    proxies: "strict" or "report" (None: strict with a baseline file, report otherwise). latency: judge latency.
    """

    candidates: tuple[str, ...] = ()
    against: str | None = None
    against_rev: str | None = None
    baseline: Path | None = None
    zoo: bool = False
    options: VariantOptions = field(default_factory=VariantOptions)
    threshold: float | None = None
    min_effect: float | None = None
    proxies: str | None = None
    latency: bool = True


def ref_from_record(record: dict[str, Any]) -> ModelRef:
    """The model a baseline record describes, at the input shape it was counted at."""
    shape = tuple(record.get("input_shape") or ())
    if record.get("source") == "zoo":
        return resolve_model(record["label"], batch=shape[0] if shape else 1)
    return resolve_model(record["label"], input_shape=shape or None)


def _against_rev_target(request: RegressRequest) -> str:
    """The ``package.module:callable`` to load from the other revision."""
    from ..models import is_zoo_model

    target = request.against or (request.candidates[0] if len(request.candidates) == 1 else None)
    if (target is None or ":" not in target or target.lower().endswith(".onnx")
            or is_zoo_model(target)):
        raise UsageError("--against-rev takes one package.module:callable of your repository (the candidate, or "
                         "--against) from that revision")
    return target


def _require_in_baseline(refs: Sequence[ModelRef], stored: dict[str, Any], path: Path | None) -> None:
    """A named candidate must be in the baseline file: a model it does not hold is a typo or other options, not a
    change (``--zoo`` reports added and removed models as changes)."""
    held = [record["label"] for record in stored["models"]]
    for ref in refs:
        if ref.label not in held:
            raise UsageError(f"{ref.label} is not in {path}, which holds: {', '.join(held) or 'no model'}")


def run_regress(request: RegressRequest, device: DeviceProfile, policy: SamplingPolicy, thresholds: Thresholds, *,
                status: Status = None, on_progress: Progress = None) -> RegressResult:
    """Resolve ``request`` and run the gate (``policy.budget_s`` per model measured)."""
    if request.against is None and request.against_rev is None and request.baseline is None:
        raise UsageError("nothing to compare against: give --against MODEL, --against-rev REV or --baseline FILE")
    stored = load_baseline(request.baseline) if request.baseline is not None else None
    if request.candidates or request.zoo:
        refs = resolve_models(request.candidates, request.options, zoo=request.zoo, default_batch=device.batch)
        if stored is not None and not request.zoo:
            _require_in_baseline(refs, stored, request.baseline)
    elif stored is not None:
        refs = [ref_from_record(record) for record in stored["models"]]
    else:
        raise UsageError("no candidate model given")
    threshold = request.threshold
    if threshold is None:
        threshold = counted.DEFAULT_THRESHOLD if device.counted else decide.DEFAULT_THRESHOLD
    settings = GateSettings(
        threshold=threshold, min_effect=request.min_effect,
        proxies=request.proxies or ("strict" if stored is not None else "report"),
        latency=request.latency and (request.against is not None or request.against_rev is not None
                                     or stored is not None))
    with ExitStack() as stack:
        against: PreparedModel | None = None
        if request.against_rev is not None:
            from .gitrev import revision_ref, revision_worktree

            target = _against_rev_target(request)
            shape = request.options.input_shape or refs[0].input_shape
            worktree = stack.enter_context(revision_worktree(request.against_rev))
            against = PreparedModel(revision_ref(target, shape, worktree))
        elif request.against is not None:
            # Resolved with the candidates, so an option is judged by every model it could apply to.
            against = PreparedModel(resolve_models([request.against, *request.candidates], request.options,
                                                   default_batch=device.batch)[0])
        return regress(prepare(refs), device=device, policy=policy, settings=settings, against=against,
                       baseline=stored, baseline_path=str(request.baseline) if request.baseline else None,
                       complete=request.zoo or not request.candidates, thresholds=thresholds, status=status,
                       on_progress=on_progress)
