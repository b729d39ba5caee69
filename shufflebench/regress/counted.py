"""The verdict of `regress` on a counted device: per-inference counts compared with a tolerance, no statistics.

Counts of the same model repeat to within `counters.figures.REPRODUCIBILITY` (0.1%) from process to process, so
there is no interval to estimate and no noise to budget for: the candidate's count over the baseline's is the
change. The figure judged is the baseline's primary one (estimated cycles where the tool simulates caches, else
instructions); the ratios of the other figures are reported beside it.

Verdicts, with ``r`` = candidate / baseline of the judged figure:

* ``slower``                 -- ``r > 1 + REPRODUCIBILITY``;
* ``faster``                 -- ``r < 1 / (1 + REPRODUCIBILITY)``;
* ``no significant change``  -- anything else.

A REGRESSION (exit 1) is ``r > 1 + threshold`` (default `DEFAULT_THRESHOLD`, 0.5%): deterministic, the same counts
always give the same verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..counters.figures import REPRODUCIBILITY, Counters
from .decide import SLOWER, percent, verdict_of

DEFAULT_THRESHOLD = 0.005
#: Context keys that must be equal for two counts to be compared (`Counters.context`); the Python version only
#: moves the few instructions between the kernels, and is reported rather than refused.
CONTEXT_KEYS = ("tool", "device", "machine", "onnxruntime", "optimization_level", "isa", "caches", "qemu_cpu")


@dataclass(frozen=True)
class CountDecision:
    """The verdict on one candidate/baseline pair of counts.

    figure: the counted figure judged. candidate, baseline: its counts per inference. ratios: candidate / baseline
    of every figure both have. threshold: fraction. verdict: slower, faster or no significant change.
    """

    figure: str
    candidate: int
    baseline: int
    ratios: dict[str, float]
    threshold: float
    verdict: str

    @property
    def ratio(self) -> float:
        return self.candidate / self.baseline

    @property
    def change(self) -> float:
        """ratio - 1: +0.01 means 1% more of the figure per inference."""
        return self.ratio - 1.0

    @property
    def regression(self) -> bool:
        """The gate fails: the judged figure grew by more than the threshold."""
        return self.ratio > 1 + self.threshold

    def describe(self) -> str:
        """One line: verdict, change of the judged figure, and where it stands against the threshold."""
        name = self.figure.replace("_", " ")
        head = f"{self.verdict}: {percent(self.change)} {name}"
        head += f" per inference ({self.baseline:,} -> {self.candidate:,}, counted)"
        if self.verdict == SLOWER:
            beyond = "beyond" if self.regression else "within"
            return f"{head}, {beyond} the {percent(self.threshold, False)} threshold"
        return head

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (ratios unrounded)."""
        return {"figure": self.figure, "candidate": self.candidate, "baseline": self.baseline, "ratio": self.ratio,
                "change": self.change, "ratios": dict(self.ratios), "threshold": self.threshold,
                "verdict": self.verdict, "regression": self.regression, "summary": self.describe()}


def judge_counts(candidate: Counters, baseline: Counters, threshold: float = DEFAULT_THRESHOLD) -> CountDecision:
    """The verdict on a candidate's counts against a baseline's (see the module docstring)."""
    if threshold < 0:
        raise ValueError("threshold is a fraction >= 0")
    figure = baseline.primary
    base, cand = baseline.figure(figure), candidate.figure(figure)
    if base is None or cand is None or base == 0:
        raise ValueError(f"both counts need a non-zero {figure}")
    ratios = {name: value / baseline.figures[name] for name, value in candidate.figures.items()
              if baseline.figures.get(name)}
    ratio = cand / base
    return CountDecision(figure, cand, base, ratios, threshold, verdict_of(ratio, ratio, REPRODUCIBILITY))


def context_difference(stored: Mapping[str, Any], here: Mapping[str, Any]) -> str | None:
    """Why counts made in ``stored`` context cannot be compared with counts made ``here`` (None when they can)."""
    differing = [f"{key} {stored.get(key)} vs {here.get(key)}" for key in CONTEXT_KEYS
                 if stored.get(key) != here.get(key)]
    return "; ".join(differing) or None


@dataclass(frozen=True)
class CountJudgement:
    """A candidate's counts against its baseline's, and the verdict. source: "counted" (both counted in this run)
    or "stored" (the baseline's counts from a baseline file)."""

    source: str
    decision: CountDecision
    candidate: Counters
    baseline: Counters

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "decision": self.decision.to_dict(), "candidate": self.candidate.to_dict(),
                "baseline": self.baseline.to_dict()}
