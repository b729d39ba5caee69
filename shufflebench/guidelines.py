"""The four ShuffleNet V2 section-2 experiments on a device (`guidelines`), printed like the paper's Tables 1-4.

Each experiment is one micro-network (``g1``..``g4``) in all its variants, at the x1/x2/x4 channel widths. The
variants of one width are measured interleaved (so drift hits them alike) and reported as throughput (images per
second). The paper's channel column is chosen by the device: its GPU column for CUDA devices, its ARM column (the
paper's CPU-bound, single-thread setting) otherwise.

A verdict per guideline compares the variant the guideline prefers with the one it warns against, at every width:
it *holds* when the preferred variant is faster with its latency-ratio confidence interval above 1 at every width;
it *does not hold* when it is slower with the interval below 1 at some width; otherwise it is *inconclusive*.

On a counted device each variant gets its counted figures instead of a throughput (``figure`` names the one the
verdict rests on: estimated cycles, else instructions), and the ratio's interval is the counters' reproducibility.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .devices import DeviceProfile
from .errors import UsageError, allowed
from .measure.ratio import Ratio
from .measure.sampling import SamplingPolicy
from .models import resolve_model
from .prepared import PreparedModel
from .profile import ProfileResult, measure_models, speedup
from .published import guideline_tables
from .runners.base import Progress

GUIDELINES_SCHEMA = "shufflebench.guidelines/2"


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


def _listed(text: str, option: str) -> list[str]:
    """The comma-separated items of an option, refusing an empty list and an item given twice."""
    items = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not items:
        raise UsageError(f"{option} {text!r} names nothing; give a comma-separated list, or leave {option} out")
    twice = sorted({item for item in items if items.count(item) > 1})
    if twice:
        raise UsageError(f"{option} {text!r} names {twice[0]} twice; each is measured once")
    return items


def parse_only(text: str | None) -> list[str]:
    """``g1,g3`` -> ["g1", "g3"]; every experiment when None."""
    if text is None:
        return list(EXPERIMENTS)
    names = _listed(text, "--only")
    for name in names:
        if name not in EXPERIMENTS:
            raise UsageError(f"--only {name!r} is not an experiment; allowed: {allowed(EXPERIMENTS)}")
    return names


def parse_widths(text: str | None) -> list[int]:
    """``1,2`` -> [1, 2]; the paper's x1, x2, x4 when None."""
    if text is None:
        return list(SCALES)
    widths = []
    for part in _listed(text, "--widths"):
        try:
            value = int(part)
        except ValueError:
            value = 0
        if value not in SCALES:
            raise UsageError(f"--widths {part!r} is not a width of the paper; allowed: 1, 2, 4")
        widths.append(value)
    return widths


def _variant_arg(experiment: str, option: str, value: Any, scale: int, base: str) -> str:
    if experiment == "g4":
        relu, shortcut = str(value).split(",")
        options = f"relu={relu},shortcut={shortcut}"
    else:
        options = f"{option}={value}"
    return f"{experiment}:{options},scale={scale},base={base}"


@dataclass(frozen=True)
class MeasuredVariant:
    """One variant at one width, measured: throughput (images/s) with its 95% interval, median latency (ms); or,
    counted, no timing (None) and ``counted``: the counted figures per inference."""

    throughput_per_s: float | None
    throughput_ci: tuple[float, float] | None
    median_ms: float | None
    flops_madd: int
    runs: int
    counted: dict[str, int] | None = None

    @classmethod
    def of(cls, result: ProfileResult, batch: int) -> "MeasuredVariant":
        """The variant's figures from its profile result."""
        if result.counters is not None:
            return cls(None, None, None, result.cost.flops_madd, len(result.counters.runs), result.counters.figures)
        m = result.timed
        ci = m.ci95
        return cls(batch / m.median, (batch / ci[1], batch / ci[0]) if ci else None, m.median * 1e3,
                   result.cost.flops_madd, m.runs)


@dataclass(frozen=True)
class VariantRow:
    """One row of a guideline table: the variant, the paper's throughput (x1, x2, x4; GPU and ARM columns) and
    what was measured here, by width."""

    value: Any
    paper_gpu: tuple[float, ...]
    paper_arm: tuple[float, ...]
    measured: dict[int, MeasuredVariant]


@dataclass(frozen=True)
class Verdict:
    """Whether the guideline holds here: ``result`` (holds, does not hold, inconclusive), a one-line ``detail``, and
    the preferred variant's speedup over the warned one at each width."""

    result: str
    detail: str
    speedups: dict[int, Ratio]


@dataclass(frozen=True)
class ExperimentResult:
    """One guideline experiment measured at every width asked for, beside the paper's table."""

    spec: Experiment
    option: str
    source: str
    paper_unit_gpu: str
    paper_unit_arm: str
    rows: tuple[VariantRow, ...]
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.spec.name,
            "guideline": self.spec.guideline,
            "claim": self.spec.claim,
            "option": self.option,
            "source": self.source,
            "paper_unit": {"gpu": self.paper_unit_gpu, "arm": self.paper_unit_arm},
            "rows": [{"value": row.value, "paper": {"gpu": list(row.paper_gpu), "arm": list(row.paper_arm)},
                      "measured": {str(w): {**m.__dict__, "throughput_ci": list(m.throughput_ci)
                                            if m.throughput_ci else None} for w, m in row.measured.items()}}
                     for row in self.rows],
            "verdict": {"result": self.verdict.result, "detail": self.verdict.detail,
                        "speedups": {str(w): r.to_dict() for w, r in self.verdict.speedups.items()}},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExperimentResult":
        rows = tuple(VariantRow(row["value"], tuple(row["paper"]["gpu"]), tuple(row["paper"]["arm"]),
                                {int(w): MeasuredVariant(**{**m, "throughput_ci": tuple(m["throughput_ci"])
                                                            if m["throughput_ci"] else None})
                                 for w, m in row["measured"].items()}) for row in data["rows"])
        verdict = data["verdict"]
        return cls(EXPERIMENTS[data["experiment"]], data["option"], data["source"], data["paper_unit"]["gpu"],
                   data["paper_unit"]["arm"], rows,
                   Verdict(verdict["result"], verdict["detail"],
                           {int(w): Ratio.from_dict(r) for w, r in verdict["speedups"].items()}))


@dataclass(frozen=True)
class GuidelineResults:
    """The guideline experiments run on one device: ``column`` names the paper's channel column used (gpu, arm);
    ``figure`` the counted figure compared on a counted device (None when timed)."""

    device: str
    emulated: bool
    column: str
    widths: tuple[int, ...]
    experiments: tuple[ExperimentResult, ...]
    complete: bool = True
    figure: str | None = None

    @property
    def interrupted(self) -> bool:
        """Ctrl-C ended the run: ``experiments`` holds what finished before it."""
        return not self.complete

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable result (what ``--format json`` prints)."""
        return {"schema": GUIDELINES_SCHEMA, "device": self.device, "emulated": self.emulated, "column": self.column,
                "widths": list(self.widths), "complete": self.complete, "figure": self.figure,
                "experiments": [e.to_dict() for e in self.experiments]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GuidelineResults":
        return cls(data["device"], bool(data["emulated"]), data["column"], tuple(data["widths"]),
                   tuple(ExperimentResult.from_dict(e) for e in data["experiments"]), bool(data["complete"]),
                   data.get("figure"))


def run_experiments(device: DeviceProfile, policy: SamplingPolicy, *, only: list[str], widths: list[int],
                    on_group: Callable[[str, int], None] | None = None,
                    on_progress: Progress = None) -> GuidelineResults:
    """Measure the chosen experiments on ``device`` (``policy.budget_s`` per variant, the variants of one width
    interleaved). Ctrl-C keeps every width already measured (the one it cut short too, with the rounds it finished),
    starts nothing more and returns a result marked incomplete; before anything finished it goes on up."""
    column = "gpu" if device.kind == "cuda" else "arm"
    tables = guideline_tables()
    experiments: list[ExperimentResult] = []
    stopped = False
    figure = None
    for name in only:
        if stopped:
            break
        published = tables[name]
        spec = EXPERIMENTS[name]
        measured: list[dict[int, MeasuredVariant]] = [{} for _ in published.rows]
        ratios: dict[int, Ratio] = {}
        for scale in widths:
            if on_group is not None:
                on_group(name, scale)
            models = [PreparedModel(resolve_model(_variant_arg(name, published.option, row.value, scale, column),
                                                  batch=device.batch)) for row in published.rows]
            try:
                results = measure_models(models, device, policy, on_progress=on_progress)
            except KeyboardInterrupt:
                if not experiments and not ratios:
                    raise
                stopped = True
                break
            stopped = any(result.interrupted for result in results)
            for into, result in zip(measured, results):
                into[scale] = MeasuredVariant.of(result, device.batch)
            by_value = {str(row.value): result for row, result in zip(published.rows, results)}
            good, bad = by_value[spec.preferred], by_value[spec.warned]
            # speedup of the preferred variant: warned latency / preferred latency, paired by round (or counted)
            ratios[scale] = speedup(good, bad)
            figure = good.counters.primary if good.counters is not None else None
            if stopped:
                break
        if not ratios:
            break
        rows = tuple(VariantRow(row.value, tuple(row.gpu), tuple(row.arm), into)
                     for row, into in zip(published.rows, measured))
        experiments.append(ExperimentResult(spec, published.option, published.source, published.gpu_unit,
                                            published.arm_unit, rows, verdict(spec, ratios, widths)))
    return GuidelineResults(device.name, device.emulated, column, tuple(widths), tuple(experiments),
                            complete=not stopped, figure=figure)


def verdict(spec: Experiment, ratios: dict[int, Ratio], widths: Sequence[int] | None = None) -> Verdict:
    """holds / does not hold / inconclusive from the preferred variant's speedup CIs at every width (``widths``:
    those asked for; a guideline measured at fewer of them cannot hold, only fail)."""
    above = [s for s, r in ratios.items() if r.low > 1]
    below = [s for s, r in ratios.items() if r.high < 1]
    missing = [w for w in (widths or ratios) if w not in ratios]
    if below:
        result = "does not hold"
    elif ratios and len(above) == len(ratios) and not missing:
        result = "holds"
    else:
        result = "inconclusive"
    detail = "; ".join(
        f"x{s}: {spec.preferred} is {r.estimate:.2f}x the speed of {spec.warned} "
        + (f"(counted, ±{r.high / r.estimate - 1:.1%})" if r.counted else f"(95% CI {r.low:.2f}-{r.high:.2f})")
        for s, r in ratios.items()
    )
    if missing:
        detail += "; not measured (interrupted): " + ", ".join(f"x{w}" for w in missing)
    return Verdict(result, detail, dict(ratios))
