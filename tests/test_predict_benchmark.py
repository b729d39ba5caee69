"""The accuracy benchmark's measuring protocol (benchmarks/predict.py): groups measured in a slow spell of the
machine are measured again, and each model keeps the pass whose reference was closest to the run's typical one.
No timing here: the groups' measurements are scripted."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from benchmarks import predict as bench


def _model(label: str) -> SimpleNamespace:
    return SimpleNamespace(label=label)


def test_groups_measured_in_a_slow_spell_are_measured_again(tmp_path, monkeypatch):
    models = [_model(f"m{i}") for i in range(10)]  # two groups: 8 and 2
    # the reference's median: 4.0 ms in the first passes; the second group ran in a slow spell (5.0 ms, +25%), then
    # 4.8 ms (still slow), then 4.1 ms
    references = iter([4.0, 5.0, 4.8, 4.1])
    calls = []

    def group(members, reference, policy):
        ref = next(references)
        calls.append(([m.label for m in members], ref))
        return {m.label: {"ratio": 1.0 + ref, "undisturbed_ratio": 1.0, "median_ms": 1.0, "reference_ms": ref,
                          "rounds": 20} for m in members}

    monkeypatch.setattr(bench, "_measure_group", group)
    done = bench.measure(models, _model("ref"), 0.1, tmp_path, lambda line: None)
    assert [c[0] for c in calls] == [[f"m{i}" for i in range(8)], ["m8", "m9"], ["m8", "m9"], ["m8", "m9"]]
    assert done["m9"]["reference_ms"] == 4.1 and done["m9"]["passes"] == 3 and done["m9"]["ratio"] == 5.1
    assert done["m9"]["first"]["reference_ms"] == 5.0  # the first pass is kept for the report
    assert done["m0"]["passes"] == 1 and done["m0"]["reference_ms"] == 4.0
    stored = json.loads((tmp_path / "measured.json").read_text())
    assert stored["schema"] == bench.SCHEMA and stored["models"]["m9"]["passes"] == 3


@pytest.mark.parametrize("reference_ms, slow", [(4.48, False), (4.49, True)])
def test_a_slow_spell_is_a_reference_over_twelve_percent_above_typical(reference_ms, slow):
    assert bench.slow_spell({"reference_ms": reference_ms}, 4.0) is slow


def test_a_run_slow_throughout_is_flagged_as_busy():
    # the reference model's medians per group: 6.8, 6.9, 7.0 ms (median 6.9) against 4.0 ms predicted: 1.73x
    warning = bench.busy_run_warning([7.0, 6.8, 6.9], 4.0)
    assert warning is not None and "took 6.90 ms (median) against 4.00 ms predicted" in warning
    assert "(1.73x, over 1.25x)" in warning and warning.endswith("measure again on a quiet one")
    assert bench.busy_run_warning([4.4, 5.0, 5.0], 4.0) == bench.busy_run_warning([5.0], 4.0) is None  # 1.25x: calm
    assert bench.busy_run_warning([5.01], 4.0) is not None
    scores = {"within_10": 0.5, "within_20": 0.9, "mape": 0.1, "spearman": 0.99}
    result = {"summary": "S", "warnings": [warning], "models": [],
              "scores": {"ratios": {}, "absolute_ms": scores, "interval_coverage": 0.5, "undisturbed_ratios": scores,
                         "first_pass_ratios": scores, "measured_again": 0}}
    assert bench.report(result).splitlines()[2:5] == ["S", "", f"**Warning:** {warning}."]
