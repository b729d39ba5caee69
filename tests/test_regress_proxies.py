"""Exact proxies of a model, the baseline file and its exact diff (no timing here)."""

from __future__ import annotations

import copy
import json

import pytest

from shufflebench.errors import UsageError
from shufflebench.check import Thresholds, check
from shufflebench.measure.environment import capture
from shufflebench.models import resolve_model
from shufflebench.prepared import PreparedModel
from shufflebench.regress.proxies import (
    BASELINE_SCHEMA,
    Change,
    baseline_data,
    compare_records,
    cpu_isa,
    environment_fingerprint,
    kernel_context,
    load_baseline,
    match_records,
    model_proxies,
    optimized_kernels,
    save_baseline,
)

TINY = "tests.fixtures.user_models:tiny_net"


@pytest.fixture(scope="module")
def tiny_record() -> dict:
    return model_proxies(PreparedModel(resolve_model(TINY, input_shape=(1, 3, 8, 8))))


@pytest.fixture(scope="module")
def grouped_record() -> dict:
    return model_proxies(PreparedModel(resolve_model("shufflenet_v1:groups=8,resolution=32")))


def test_tiny_net_proxies_by_hand(tiny_record):
    # conv: 64 positions * 8 out * 3 in * 9 taps = 13824; linear 8 * 2 = 16 (as in test_cli).
    assert tiny_record["flops_madd"] == 13824 + 16
    assert tiny_record["params"] == 8 * 27 + 8 * 2 + 2
    assert tiny_record["label"] == TINY and tiny_record["source"] == "callable"
    assert tiny_record["input_shape"] == [1, 3, 8, 8]
    # Deployed MAC leaves out the ReLU fused into the convolution: its read and write of 8x8x8 floats.
    assert tiny_record["mac_elements"]["eager"] - tiny_record["mac_elements"]["deployed"] == 2 * 8 * 8 * 8
    assert tiny_record["mac_bytes"]["eager"] == 4 * tiny_record["mac_elements"]["eager"]
    assert tiny_record["findings"] == []


def test_kernels_after_optimization(tiny_record):
    # ORT_ENABLE_EXTENDED fuses conv + ReLU into one FusedConv: 4 kernels where the exported graph has 5 nodes.
    extended = tiny_record["kernels"]["extended"]
    assert extended["by_op"] == {"ai.onnx:Flatten": 1, "ai.onnx:Gemm": 1, "ai.onnx:GlobalAveragePool": 1,
                                 "com.microsoft:FusedConv": 1}
    assert extended["total"] == 4
    every = tiny_record["kernels"]["all"]
    assert every["total"] == sum(every["by_op"].values())
    assert "ai.onnx:Relu" not in every["by_op"] and every["by_op"]["ai.onnx:Gemm"] == 1
    if cpu_isa() in ("avx2", "avx512"):
        # On these CPUs ORT_ENABLE_ALL rewrites the conv into the blocked NCHWc layout and converts back after it.
        assert every["by_op"]["com.microsoft.nchwc:Conv"] == 1
        assert every["by_op"]["com.microsoft.nchwc:ReorderOutput"] == 1


def test_optimized_kernels_of_an_onnx_file(tiny_onnx):
    # conftest's tiny net: conv 3->8, ReLU, conv 8->4: two FusedConv/Conv nodes, ReLU gone.
    counts = optimized_kernels(tiny_onnx, "extended")
    assert sum(counts.values()) == 2
    assert counts.get("com.microsoft:FusedConv") == 1 and counts.get("ai.onnx:Conv") == 1


def test_findings_are_those_above_threshold():
    model = PreparedModel(resolve_model("tests.fixtures.user_models:widening_then_grouped", input_shape=(1, 16, 8, 8)))
    # G1, layer 0 (1x1, 16 -> 64 on 8x8): MAC 64*16 + 64*64 + 16*64 = 6144; equal widths (32) 64*32*2 + 32*32 =
    # 5120: a saving of 1/6, above 10%. G2, layer 1 (1x1, 64 -> 64, g=8): B = 64*64*64/8 = 32768 multiply-adds;
    # Eq. 2 MAC 4096 + 32768*8/64 + 32768/64 = 8704 against 4096 + 512 + 512 = 5120 at g=1: 70% more, above 50%.
    # Layer 1 as a G1 case has equal widths (saving 0), each block has one fragment, nothing is element-wise.
    assert model_proxies(model)["findings"] == [
        {"guideline": "G1", "where": "0", "value": pytest.approx(1 / 6)},
        {"guideline": "G2", "where": "1", "value": pytest.approx(0.7)},
    ]
    lenient = Thresholds(g1_min_mac_saving=0.2, g2_max_overhead=0.75)
    assert model_proxies(model, lenient)["findings"] == []


def test_export_failure_marks_kernels_unavailable():
    record = model_proxies(PreparedModel(resolve_model("alexnet:resolution=64")))  # adaptive pooling 1x1 -> 6x6 does not export
    assert set(record["kernels"]) == {"unavailable"}
    assert "adaptive_avg_pool2d" in record["kernels"]["unavailable"]
    assert "\n" not in record["kernels"]["unavailable"] and len(record["kernels"]["unavailable"]) <= 160
    assert record["flops_madd"] > 0  # the counts do not depend on the export


# --- the diff -----------------------------------------------------------------------------------------------------


def compare(before: dict, after: dict, before_ctx: dict | None = None, after_ctx: dict | None = None):
    here = kernel_context()
    return compare_records(before, after, baseline_context=before_ctx or here, candidate_context=after_ctx or here)


def test_identical_records_have_no_change(grouped_record):
    assert compare(grouped_record, copy.deepcopy(grouped_record)) == ([], [])


def test_every_count_change_is_reported(tiny_record):
    after = copy.deepcopy(tiny_record)
    after["params"] += 96
    after["mac_bytes"]["deployed"] -= 4
    changes, notes = compare(tiny_record, after)
    assert [(c.proxy, c.baseline, c.candidate) for c in changes] == [
        ("params", 234, 330),
        ("mac_bytes.deployed", 5872, 5868),
    ]
    assert changes[0].describe() == "params 234 -> 330 (+96, +41%)"
    assert notes == []


def test_kernel_changes_name_the_operator(tiny_record):
    after = copy.deepcopy(tiny_record)
    after["kernels"]["extended"]["by_op"]["ai.onnx:Relu"] = 1
    after["kernels"]["extended"]["total"] += 1
    changes, _ = compare(tiny_record, after)
    assert [(c.proxy, c.baseline, c.candidate) for c in changes] == [
        ("kernels.extended", 4, 5),
        ("kernels.extended[ai.onnx:Relu]", 0, 1),
    ]


def test_kernels_from_another_cpu_or_runtime_are_not_compared(tiny_record):
    here = kernel_context()
    other_cpu = dict(here, isa="neon", machine="aarch64")
    after = copy.deepcopy(tiny_record)
    after["kernels"]["all"]["total"] += 3  # what an ARM build would legitimately count differently
    after["kernels"]["extended"]["total"] += 1
    changes, notes = compare(tiny_record, after, before_ctx=other_cpu)
    # ORT_ENABLE_ALL depends on the CPU: skipped with a note. ORT_ENABLE_EXTENDED does not: still compared.
    assert [c.proxy for c in changes] == ["kernels.extended"]
    assert len(notes) == 1 and "kernels.all not compared" in notes[0] and "isa neon vs" in notes[0]
    other_runtime = dict(here, onnxruntime="1.0.0")
    changes, notes = compare(tiny_record, after, before_ctx=other_runtime)
    assert changes == [] and len(notes) == 2


def test_findings_added_and_gone(grouped_record):
    after = copy.deepcopy(grouped_record)
    gone = after["findings"].pop(0)
    after["findings"].append({"guideline": "G4", "where": "(model)", "value": 0.5})
    changes, _ = compare(grouped_record, after)
    assert [(c.proxy, c.baseline, c.candidate) for c in changes] == [
        ("finding", f"{gone['guideline']} {gone['where']}", None),
        ("finding", None, "G4 (model)"),
    ]
    assert changes[1].describe() == "finding added: G4 (model)"


def test_kernels_lost_on_one_side_is_a_change(tiny_record):
    after = copy.deepcopy(tiny_record)
    after["kernels"] = {"unavailable": "RuntimeError: export failed."}
    changes, notes = compare(tiny_record, after)
    assert [(c.proxy, c.baseline, c.candidate) for c in changes] == [
        ("kernels.all", tiny_record["kernels"]["all"]["total"], "unavailable"),
        ("kernels.extended", 4, "unavailable"),
    ]
    assert notes == [f"{TINY}: kernels not counted in the candidate: RuntimeError: export failed."]


def test_match_records_by_label(tiny_record, grouped_record):
    stored = {"models": [tiny_record, grouped_record]}
    ghost = dict(tiny_record, label="ghost:make")
    pairs, changes = match_records(stored, [tiny_record, ghost], complete=False)
    assert [cand["label"] for _, cand in pairs] == [TINY]
    assert [(c.model, c.baseline, c.candidate) for c in changes] == [("ghost:make", None, "ghost:make")]
    _, changes = match_records(stored, [tiny_record], complete=True)
    assert [(c.model, c.describe()) for c in changes] == [
        (grouped_record["label"], "model removed (only in the baseline)")]


# --- the file -------------------------------------------------------------------------------------------------------


def test_baseline_round_trip(tmp_path, tiny_record, grouped_record):
    env = capture(threads=1)
    data = baseline_data([tiny_record, grouped_record], thresholds=Thresholds(), environment=env)
    path = save_baseline(tmp_path / "base.json", data)
    loaded = load_baseline(path)
    assert loaded["schema"] == BASELINE_SCHEMA == "shufflebench.baseline/1"
    assert loaded["models"] == [tiny_record, grouped_record]
    assert loaded["fingerprint"] == environment_fingerprint(env)
    assert loaded["kernel_context"] == kernel_context()
    assert loaded["thresholds"]["g2_max_overhead"] == 0.5
    assert "latency" not in loaded and loaded["device"] is None
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_a_model_given_twice_is_refused(tiny_record):
    with pytest.raises(UsageError, match="given twice"):
        baseline_data([tiny_record, tiny_record], thresholds=Thresholds(), environment={})


@pytest.mark.parametrize(
    "content, message",
    [
        ({"schema": "shufflebench.profile/1"}, "has schema 'shufflebench.profile/1'; expected shufflebench.baseline"),
        ({"schema": "shufflebench.baseline/2", "models": []}, "this shufflebench reads shufflebench.baseline/1"),
        ({"schema": "shufflebench.baseline/1", "models": {}}, "'models' must be a list"),
        ({"schema": "shufflebench.baseline/1", "models": [{"label": "x"}]}, "model record 0 lacks 'flops_madd'"),
    ],
)
def test_bad_baseline_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(UsageError, match=message):
        load_baseline(path)


def test_missing_baseline_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_baseline(tmp_path / "nope.json")


def test_fingerprint_tracks_what_changes_speed():
    env = capture(threads=1)
    assert environment_fingerprint(env) == environment_fingerprint(copy.deepcopy(env))
    newer = copy.deepcopy(env)
    newer["versions"]["onnxruntime"] = "99.0"
    assert environment_fingerprint(newer) != environment_fingerprint(env)
    threads = dict(env, thread_env={"OMP_NUM_THREADS": "4"})
    assert environment_fingerprint(threads) != environment_fingerprint(env)
    warned = dict(env, warnings=["something"])
    assert environment_fingerprint(warned) == environment_fingerprint(env)  # warnings do not change the machine


def test_change_describe_formats():
    assert Change("m", "params", 2278604, 2278700).describe() == "params 2,278,604 -> 2,278,700 (+96, +0.00421%)"
    assert Change("m", "model", None, "m").describe() == "model added (not in the baseline)"
    assert Change("m", "finding", "G1 stage2.0", None).describe() == "finding gone: G1 stage2.0"
