"""The latency model without a device: kernels' multiply-adds and bytes, the roofline arithmetic by hand, the fit and
its correction on synthetic kernels, drift taken out as ratios, the calibration file and its versions."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from shufflebench.errors import UsageError
from shufflebench.latency.calibration import (Calibration, ContextFactor, load_calibration, refit, save_calibration,
                                              sized)
from shufflebench.latency.fit import (Correction, KindModel, Peaks, fit_kind, fit_roofline, robust_line, shape_folds,
                                      tile_factor)
from shufflebench.latency.kernels import Kernel, classify, kernels_of, reachable_from
from shufflebench.latency.records import (GraphRecord, KernelSample, kernel_time_us, record_of, trimmed_mean,
                                         undisturbed)
from tests.fixtures.calibration import fake_calibration

CONV = Kernel("c", "FusedConv", "com.microsoft", inputs=((1, 16, 8, 8), (32, 16, 3, 3), (32,)),
              outputs=((1, 32, 8, 8),), group=1, kernel=(3, 3), stride=(1, 1), fused=("relu",))


def test_multiply_adds_bytes_and_kind_of_kernels_by_hand():
    # 32 outputs x 64 positions x 16 inputs x 9 taps; every input, weight, bias and output read or written once
    assert CONV.kind == "conv.spatial"
    image = Kernel("s", "Conv", "com.microsoft.nchwc", ((1, 3, 224, 224), (24, 3, 3, 3), (24,)), ((1, 24, 112, 112),),
                   group=1, kernel=(3, 3), stride=(2, 2))
    assert image.kind == "conv.stem+nchwc"  # reads an image (3 channels): a stem, not one of the 3x3 convolutions
    assert classify("Conv", "", ((1, 5, 8, 8), (8, 5, 3, 3)), 1, (3, 3)) == "conv.spatial"
    assert CONV.madd == 32 * 64 * 16 * 9 == 294_912
    assert CONV.bytes == 4 * (16 * 64 + 32 * 16 * 9 + 32 + 32 * 64) == 30_848
    assert CONV.arithmetic_intensity == pytest.approx(294_912 / 30_848)
    depthwise = Kernel("d", "Conv", "com.microsoft.nchwc", ((1, 64, 14, 14), (64, 1, 5, 5), (64,)),
                       ((1, 64, 7, 7),), group=64, kernel=(5, 5), stride=(2, 2))
    assert depthwise.kind == "conv.depthwise+nchwc" and depthwise.madd == 64 * 49 * 25
    grouped = Kernel("g", "Conv", "", ((1, 240, 28, 28), (240, 80, 1, 1)), ((1, 240, 28, 28),), group=3)
    assert grouped.kind == "conv.grouped" and grouped.madd == 240 * 784 * 80
    fc = Kernel("f", "Gemm", "", ((1, 1024), (1000, 1024), (1000,)), ((1, 1000),))
    assert fc.kind == "gemm" and fc.madd == 1000 * 1024
    assert fc.bytes == 4 * (1024 + 1024 * 1000 + 1000 + 1000)
    reorder = Kernel("r", "ReorderOutput", "com.microsoft.nchwc", ((1, 32, 8, 8),), ((1, 24, 8, 8),))
    assert reorder.kind == "reorder" and reorder.madd == 0 and reorder.bytes == 4 * (32 + 24) * 64
    assert classify("Concat", "", (), 1, ()) == "concat" and classify("GlobalAveragePool", NCHWC, (), 1, ()) == \
        "global_pool+nchwc"
    # two tensors in (onnxruntime's broadcasting loop) or one (an MLAS activation): two kinds
    assert classify("Add", "", ((1, 8, 4, 4), (1, 8, 4, 4)), 1, ()) == "elementwise.binary"
    assert classify("Mul", "", ((1, 8, 4, 4), (1, 8, 1, 1)), 1, ()) == "elementwise.binary"
    assert classify("Relu", "", ((1, 8, 4, 4),), 1, ()) == "elementwise"
    assert Kernel.from_dict(CONV.to_dict()) == CONV


NCHWC = "com.microsoft.nchwc"


def test_roofline_components_and_bound_by_hand():
    peaks = Peaks(madd_per_s=1e11, memory_bandwidth_bytes_per_s=1e10, cache_bandwidth_bytes_per_s=4e10)
    model = KindModel("conv.spatial", overhead_us=3.0, compute_efficiency=0.5, memory_efficiency=2.0,
                      correction=None, samples=10, cv_error=0.1, cv_error_corrected=None, spread=0.1)
    parts = model.components(CONV, peaks)
    assert parts.compute_us == pytest.approx(294_912 / (1e11 * 0.5) * 1e6)  # 5.898 us
    assert parts.memory_us == pytest.approx(30_848 / (1e10 * 2.0) * 1e6)  # 1.542 us
    assert parts.total_us == pytest.approx(3.0 + 5.89824)
    assert parts.bound == "compute"
    slow_memory = KindModel("conv.spatial", 3.0, 0.5, 0.1, None, 10, 0.1, None, 0.1)
    assert slow_memory.components(CONV, peaks).bound == "memory"  # 30.8 us of traffic at a tenth of bandwidth
    tiny = Kernel("t", "Relu", "", ((1, 8, 2, 2),), ((1, 8, 2, 2),))
    elementwise = KindModel("elementwise", 4.0, None, 1.0, None, 10, 0.1, None, 0.1)
    assert elementwise.components(tiny, peaks).bound == "overhead"  # 256 bytes: 0.03 us against 4 us fixed
    assert elementwise.components(tiny, peaks).compute_us == 0.0


def _synthetic(count: int, seed: int = 0) -> tuple[list[Kernel], Peaks]:
    rng = np.random.default_rng(seed)
    kernels = []
    for _ in range(count):
        c_in, c_out = (int(x) for x in rng.choice([16, 32, 64, 128, 256, 512], 2))
        size = int(rng.choice([7, 14, 28, 56]))
        kernels.append(Kernel("k", "Conv", "", ((1, c_in, size, size), (c_out, c_in, 1, 1)),
                              ((1, c_out, size, size),)))
    return kernels, Peaks(1e11, 1e10, 4e10)


def test_the_fit_recovers_a_roofline_and_keeps_no_correction_it_does_not_need():
    kernels, peaks = _synthetic(60)
    times = [4.0 + max(k.madd / (1e11 * 0.8), k.bytes / (1e10 * 1.0)) * 1e6 for k in kernels]
    compute = np.array([k.madd / 1e11 * 1e6 for k in kernels])
    memory = np.array([k.bytes / 1e10 * 1e6 for k in kernels])
    assert 10 < sum(m / 1.0 > c / 0.8 for c, m in zip(compute, memory)) < 50  # both sides of the ridge are seen
    roof = fit_roofline(compute, memory, np.array(times))
    assert roof.overhead == pytest.approx(4.0, rel=0.05)
    assert roof.compute_efficiency == pytest.approx(0.8, rel=0.03)
    assert roof.memory_efficiency == pytest.approx(1.0, rel=0.03)
    model = fit_kind("conv.pointwise", kernels, times, peaks)
    assert model.cv_error < 0.02 and model.correction is None  # nothing left to correct


def test_memory_beyond_the_spill_working_set_by_hand():
    peaks = Peaks(madd_per_s=1e11, memory_bandwidth_bytes_per_s=1e10, cache_bandwidth_bytes_per_s=4e10)
    add = Kernel("a", "Add", "", ((1, 64, 56, 56), (1, 64, 56, 56)), ((1, 64, 56, 56),))
    assert add.bytes == 3 * 4 * 64 * 56 * 56 == 2_408_448
    model = KindModel("elementwise.binary", 3.0, None, 2.0, None, 10, 0.1, None, 0.1, spill_bytes=1_000_000,
                      spill_efficiency=4.0)
    # 2,408,448 bytes at twice the bandwidth (120.4 us) and the 1,408,448 beyond 1 MB at four times more (35.2 us)
    assert model.components(add, peaks).memory_us == pytest.approx(2_408_448 / 2e10 * 1e6 + 1_408_448 / 4e10 * 1e6)
    assert model.components(add, peaks).total_us == pytest.approx(3.0 + 120.4224 + 35.2112)
    small = Kernel("s", "Add", "", ((1, 8, 8, 8), (1, 8, 8, 8)), ((1, 8, 8, 8),))  # 6 KB: within the working set
    assert model.components(small, peaks).memory_us == pytest.approx(6144 / 2e10 * 1e6)
    assert KindModel.from_dict(model.to_dict()) == model


def _streams(count: int, seed: int = 0) -> list[Kernel]:
    rng = np.random.default_rng(seed)
    return [Kernel("a", "Add", "", ((1, c, s, s), (1, c, s, s)), ((1, c, s, s),))
            for c, s in zip(rng.choice([8, 16, 32, 64, 128, 256], count), rng.choice([7, 14, 28, 56, 112], count))]


def test_the_fit_finds_a_second_memory_level_only_where_there_is_one():
    peaks = Peaks(1e11, 1e10, 4e10)
    kernels = _streams(120)
    # 3 us fixed, twice the bandwidth in cache, and every byte beyond 1 MiB costs as much again at 1.5x bandwidth
    times = [3.0 + (k.bytes / 2e10 + max(0, k.bytes - 2 ** 20) / 1.5e10) * 1e6 for k in kernels]
    model = fit_kind("elementwise.binary", kernels, times, peaks)
    assert model.spill_bytes == pytest.approx(2 ** 20) and model.spill_efficiency == pytest.approx(1.5, rel=0.01)
    assert model.memory_efficiency == pytest.approx(2.0, rel=0.01) and model.overhead_us == pytest.approx(3.0, rel=0.02)
    assert model.cv_error < 0.01
    one_level = fit_kind("elementwise.binary", kernels, [3.0 + k.bytes / 2e10 * 1e6 for k in kernels], peaks)
    assert one_level.spill_bytes is None and one_level.memory_efficiency == pytest.approx(2.0, rel=0.03)
    convolutions, _ = _synthetic(60)
    times = [4.0 + (k.bytes / 1e10 + max(0, k.bytes - 2 ** 20) / 1e10) * 1e6 for k in convolutions]
    assert fit_kind("conv.pointwise", convolutions, times, peaks).spill_bytes is None  # one level for compute kinds


def test_a_grouped_convolution_pays_for_its_small_per_group_products_by_hand():
    peaks = Peaks(madd_per_s=1e11, memory_bandwidth_bytes_per_s=1e10, cache_bandwidth_bytes_per_s=4e10)
    # the G2 experiment's 8 groups of 23 channels on 56x56: each group a 23 x 23 product over 3,136 positions
    grouped = Kernel("g", "Conv", "", ((1, 184, 56, 56), (184, 23, 1, 1), (184,)), ((1, 184, 56, 56),), group=8)
    assert grouped.per_group_product == (23, 23) and grouped.madd == 184 * 3136 * 23 == 13_271_552
    assert CONV.per_group_product == (16 * 9, 32) and Kernel("r", "Relu", "", ((1, 8),), ((1, 8),)).per_group_product \
        == (1, 1)
    plain = KindModel("conv.grouped", 2.0, 0.5, 1.0, None, 10, 0.1, None, 0.1)
    tiled = KindModel("conv.grouped", 2.0, 0.5, 1.0, None, 10, 0.1, None, 0.1, tile_k=8.0, tile_m=4.0)
    assert plain.components(grouped, peaks).compute_us == pytest.approx(13_271_552 / 5e10 * 1e6)  # 265.4 us
    # (1 + 8/23) x (1 + 4/23) = 837/529 = 1.582 times that
    assert tiled.components(grouped, peaks).compute_us == pytest.approx(265.43104 * 837 / 529)
    assert KindModel.from_dict(tiled.to_dict()) == tiled


def test_the_fit_finds_the_tile_terms_of_grouped_convolutions():
    rng = np.random.default_rng(3)
    kernels = []
    for _ in range(90):
        groups = int(rng.choice([2, 4, 8]))
        c_in, c_out = (groups * int(x) for x in rng.choice([3, 6, 12, 24, 48, 96], 2))
        size = int(rng.choice([7, 14, 28, 56]))
        kernels.append(Kernel("g", "Conv", "", ((1, c_in, size, size), (c_out, c_in // groups, 1, 1)),
                              ((1, c_out, size, size),), group=groups))
    peaks = Peaks(1e11, 1e10, 4e10)

    def time(k: Kernel, tile_k: float, tile_m: float) -> float:
        per_k, per_m = k.per_group_product
        return 3.0 + k.madd * (1 + tile_k / per_k) * (1 + tile_m / per_m) / (1e11 * 0.6) * 1e6

    model = fit_kind("conv.grouped", kernels, [time(k, 8, 4) for k in kernels], peaks)
    assert (model.tile_k, model.tile_m) == (8.0, 4.0) and model.cv_error < 0.02
    assert model.compute_efficiency == pytest.approx(0.6, rel=0.03)
    untiled = fit_kind("conv.grouped", kernels, [time(k, 0, 0) for k in kernels], peaks)
    assert (untiled.tile_k, untiled.tile_m) == (0.0, 0.0)
    blocked = fit_kind("conv.pointwise+nchwc", kernels, [time(k, 8, 4) for k in kernels], peaks)
    assert (blocked.tile_k, blocked.tile_m) == (0.0, 0.0)  # the blocked layout's own code gets no tile terms


def test_a_narrow_dense_convolution_in_the_plain_layout_pays_for_its_small_product():
    peaks = Peaks(madd_per_s=1e11, memory_bandwidth_bytes_per_s=1e10, cache_bandwidth_bytes_per_s=4e10)
    # the G1 experiment's ARM column at ratio 12: 9 -> 108 channels on 56x56, one 108 x 9 product over 3,136 positions
    narrow = Kernel("n", "FusedConv", "com.microsoft", ((1, 9, 56, 56), (108, 9, 1, 1), (108,)), ((1, 108, 56, 56),))
    assert narrow.kind == "conv.pointwise" and narrow.per_group_product == (9, 108)
    assert narrow.madd == 108 * 3136 * 9 == 3_048_192
    model = KindModel("conv.pointwise", 2.0, 0.5, 1.0, None, 10, 0.1, None, 0.1, tile_k=8.0, tile_m=2.0)
    # (1 + 8/9) x (1 + 2/108) = 1870/972 = 1.924 times the roofline's 61.0 us
    assert model.components(narrow, peaks).compute_us == pytest.approx(3_048_192 / 5e10 * 1e6 * 1870 / 972)
    rng = np.random.default_rng(5)
    kernels = []
    for _ in range(80):
        c_in, c_out = (int(x) for x in rng.choice([9, 13, 22, 46, 90, 174, 350], 2))
        size = int(rng.choice([7, 14, 28, 56]))
        kernels.append(Kernel("p", "FusedConv", "com.microsoft", ((1, c_in, size, size), (c_out, c_in, 1, 1)),
                              ((1, c_out, size, size),)))
    peaks = Peaks(1e11, 1e10, 4e10)
    times = [3.0 + k.madd * tile_factor(k, 8, 2) / (1e11 * 0.7) * 1e6 for k in kernels]
    found = fit_kind("conv.pointwise", kernels, times, peaks)
    assert (found.tile_k, found.tile_m) == (8.0, 2.0) and found.cv_error < 0.02


def test_a_correction_is_kept_where_it_measurably_helps():
    kernels, peaks = _synthetic(80, seed=1)
    # twice as slow per doubling of input channels beyond the roofline: a shape effect the roofline cannot see
    times = [2.0 + k.madd / (1e11 * 0.5) * 1e6 * (k.inputs[0][1] / 64) ** 0.5 for k in kernels]
    model = fit_kind("conv.pointwise", kernels, times, peaks)
    assert model.correction is not None and "log_c_in" in model.correction.features
    # cross-validated: 39% off with the roofline alone, 6% with the correction
    assert model.cv_error > 0.3 and model.cv_error_corrected is not None and model.cv_error_corrected < 0.1
    predicted = [model.components(k, peaks).total_us for k in kernels]
    assert np.mean([abs(p / t - 1) for p, t in zip(predicted, times)]) < 0.1


def test_robust_line_ignores_graphs_measured_in_a_bad_spell():
    x = list(range(1, 41))
    y = [30.0 + 2.0 * v for v in x]
    y[5] += 500.0  # a preempted run
    intercept, slope = robust_line(x, y)
    assert intercept == pytest.approx(30.0, abs=0.5) and slope == pytest.approx(2.0, abs=0.05)


def _profile(kernel_samples: dict, reference: list) -> dict:
    import base64

    import onnx
    from onnx import helper

    nodes = [helper.make_node("Conv", ["shufflebench_reference_input", "w"], ["r"], name="ref_conv"),
             helper.make_node("Relu", ["x"], ["y"], name="subject")]
    graph = helper.make_graph(nodes, "g", [], [])
    encoded = base64.b64encode(helper.make_model(graph).SerializeToString()).decode()
    assert onnx.ModelProto.FromString(base64.b64decode(encoded)).graph.node[0].name == "ref_conv"
    kernels = [{"name": "ref_conv", "op": "Conv", "samples_us": reference, "inputs": [[1, 32, 28, 28],
                [32, 32, 3, 3]], "outputs": [[1, 32, 28, 28]]}]
    kernels += [{"name": name, "op": "Relu", "samples_us": samples, "inputs": [[1, 8, 4, 4]],
                 "outputs": [[1, 8, 4, 4]]} for name, samples in kernel_samples.items()]
    return {"kernels": kernels, "optimized_graph_b64": encoded}


def test_kernel_times_are_ratios_to_the_reference_of_the_same_run():
    # the machine runs at full speed, at half speed, then at full speed again: the ratio does not move
    profile = _profile({"subject": [10.0, 20.0, 10.0, 20.0, 10.0]}, [100.0, 200.0, 100.0, 200.0, 100.0])
    record = record_of("case", "kernel", profile, samples_s=[2e-4, 4e-4, 2e-4, 9e-4, 2e-4],
                       reference_samples_s=[1e-4, 2e-4, 1e-4, 1e-4, 1e-4])
    assert [s.kernel.name for s in record.kernels] == ["subject"]  # the reference branch is not a sample
    assert record.kernels[0].ratio == pytest.approx(0.1)
    assert record.reference_kernels == 1 and record.executed == 2
    # end to end, the lower quartiles: the round where the graph was interrupted (9e-4) does not count
    assert record.e2e_ratio == pytest.approx(2.0) and record.reference_e2e_us == pytest.approx(100.0)
    assert GraphRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_trimmed_mean_and_reachability():
    assert trimmed_mean([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # the outlier is cut
    assert undisturbed([5.0, 1.0, 2.0, 3.0, 4.0]) == 2.0 and undisturbed([7.0]) == 7.0
    assert trimmed_mean([3, 4]) == pytest.approx(3.5)  # whole-microsecond steps are averaged, not rounded
    nodes = [{"name": "a", "inputs": ["in"], "outputs": ["t"]}, {"name": "b", "inputs": ["t"], "outputs": ["u"]},
             {"name": "c", "inputs": ["x"], "outputs": ["v"]}]
    assert reachable_from(nodes, "in") == {"a", "b"}


def test_fused_activation_and_residual_sum_are_read_from_the_optimized_graph():
    nodes = [{"name": "k", "op_type": "Conv", "domain": NCHWC, "inputs": ["x", "w", "b", "s"],
              "attributes": {"activation": "Relu", "group": 1, "kernel_shape": [1, 1], "strides": [1, 1]}}]
    profile = {"kernels": [{"name": "k", "op": "Conv", "inputs": [[1, 16, 4, 4], [16, 16, 1, 1], [16],
                                                                   [1, 16, 4, 4]], "outputs": [[1, 16, 4, 4]]}]}
    (kernel,) = kernels_of(profile, nodes)
    assert kernel.fused == ("relu", "sum") and kernel.kind == "conv.pointwise+nchwc"
    assert kernel.features()["sum"] == 1.0


# --- the calibration file --------------------------------------------------------------------------------------------

def test_calibration_round_trips_through_its_file(tmp_path):
    calibration = fake_calibration()
    path = save_calibration(calibration, tmp_path / "cal.json")
    data = json.loads(path.read_text())
    assert data["schema"] == "shufflebench.calibration/8" and data["device"] == "cpu"
    assert data["fingerprint"] == calibration.fingerprint and len(data["fingerprint"]) == 16
    loaded = load_calibration(path)
    assert loaded.to_dict() == calibration.to_dict() and loaded.path == path


@pytest.mark.parametrize("schema, expected", [
    ("shufflebench.calibration/9", "is a calibration of version 9; this shufflebench reads version 8: calibrate again"),
    ("shufflebench.calibration/7", "is a calibration of version 7; this shufflebench reads version 8: calibrate again"),
    ("shufflebench.profile/2", "is not a shufflebench calibration (schema 'shufflebench.profile/2'"),
])
def test_a_foreign_version_is_refused_in_one_line(tmp_path, schema, expected):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(dict(fake_calibration().to_dict(), schema=schema)))
    with pytest.raises(UsageError) as error:
        load_calibration(path)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_missing_damaged_and_unreadable_calibrations_are_refused(tmp_path):
    with pytest.raises(UsageError, match="does not exist; make one with: shufflebench calibrate"):
        load_calibration(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UsageError, match="is not a readable calibration"):
        load_calibration(tmp_path / "bad.json")
    broken = dict(fake_calibration().to_dict())
    del broken["peaks"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(UsageError, match="is a damaged calibration"):
        load_calibration(tmp_path / "broken.json")


def _pointwise_us(kernel: Kernel) -> float:
    """The exact roofline the synthetic 1x1 convolutions run at: 4 us, 25% of peak compute, 1.5x the bandwidth."""
    return 4.0 + max(kernel.madd / (1e11 * 0.25), kernel.bytes / (1e10 * 1.5)) * 1e6


def _grouped_us(kernel: Kernel) -> float:
    """The exact roofline of the synthetic grouped convolutions: 6 us, 10% of peak compute, half the bandwidth."""
    return 6.0 + max(kernel.madd / (1e11 * 0.10), kernel.bytes / (1e10 * 0.5)) * 1e6


def _records(networks: int = 8, slow_profiles: float = 1.0) -> tuple[GraphRecord, ...]:
    """Kernel graphs of 1x1 convolutions timed by an exact roofline (their reference branch: 100 us), each run
    beside 1 to 10 reference kernels so the per-kernel term can be told apart; then ``networks`` networks of 1x1 and
    grouped convolutions at their exact times, whose reference branch ran cold (140 us instead of 100: its ratios
    are no measure there) while their batch's reference graph took the typical 150 us. Every other network was
    profiled ``slow_profiles`` times slower than it was timed end to end (a slow spell between the two)."""
    kernels, _ = _synthetic(30)
    records = []
    for i, kernel in enumerate(kernels):
        time_us = _pointwise_us(kernel)
        reference_kernels = 1 + i % 10
        e2e = 30.0 + 2.0 * (1 + reference_kernels) + time_us + 100.0
        records.append(GraphRecord(f"k/{i}", "kernel", (KernelSample(kernel, time_us / 100.0, time_us),),
                                   reference_kernels, 100.0, e2e / 150.0, 150.0))
    for n in range(networks):
        pointwise = [kernels[(3 * n + j) % 30] for j in range(3)]
        grouped = [Kernel("g", "Conv", "", ((1, c, s, s), (c, c // 4, 1, 1)), ((1, c, s, s),), group=4)
                   for c, s in ((64 * (1 + n % 4), 14), (32 * (1 + n % 3), 28))]
        slow = slow_profiles if n % 2 else 1.0
        samples = tuple(KernelSample(k, us / 140.0, us * slow) for k, us in
                        [(k, _pointwise_us(k)) for k in pointwise] + [(k, _grouped_us(k)) for k in grouped])
        kernel_time = sum(s.raw_us for s in samples) / slow
        e2e = 30.0 + 2.0 * (len(samples) + 1) + kernel_time + 140.0
        records.append(GraphRecord(f"stack/{n}", "stack", samples, 1, 140.0 * slow, e2e / 150.0, 150.0))
    return tuple(records)


@pytest.mark.parametrize("slow_profiles", [1.0, 1.4])
def test_fitting_a_calibration_and_holding_a_group_out(slow_profiles):

    base = replace(fake_calibration(), records=_records(slow_profiles=slow_profiles), peaks=Peaks(1e11, 1e10, 4e10),
                   reference_us=100.0, reference_e2e_us=150.0)
    fitted = refit(base).fitted  # profiles of networks 1.4x slow are anchored back to their end-to-end times
    graph = fitted.graph
    assert graph.run_overhead_us == pytest.approx(30.0, abs=1.0) and graph.per_kernel_us == pytest.approx(2.0, abs=0.2)
    # the networks' kernels are taken at their raw times (their cold reference branch would make them 29% faster)
    assert fitted.kinds["conv.pointwise"].compute_efficiency == pytest.approx(0.25, rel=0.03)
    # a kind seen only inside networks gets a predictor of its own
    assert fitted.kinds["conv.grouped"].compute_efficiency == pytest.approx(0.10, rel=0.05)
    assert fitted.kinds["conv.grouped"].overhead_us == pytest.approx(6.0, abs=0.5)
    assert graph.context["compute"].factor == pytest.approx(1.0, abs=0.02)  # nothing left for the context to explain
    assert graph.sigma == pytest.approx(0.03)  # every held-out network predicted within the floor
    held_out = refit(base, exclude=("stack",)).fitted
    assert "conv.grouped" not in held_out.kinds
    assert held_out.graph.context == {"compute": ContextFactor(1.0), "memory": ContextFactor(1.0)}  # nothing to
    assert held_out.graph.sigma == 0.15  # learn them from
    assert isinstance(Calibration.from_dict(refit(base).to_dict()), Calibration)


def test_a_network_profiled_in_a_slow_spell_is_anchored_to_its_end_to_end_time():
    from shufflebench.latency.records import anchored

    one = Kernel("a", "Conv", "", ((1, 64, 14, 14), (64, 64, 1, 1)), ((1, 64, 14, 14),))
    two = Kernel("b", "Conv", "", ((1, 64, 14, 14), (128, 64, 1, 1)), ((1, 128, 14, 14),))
    # profiled 1.4x slow: 140 and 280 us, the reference branch 140; its batch's reference graph took 160 us (typical
    # 150: the batch ran 16/15 slow); end to end 436 us in typical units = 30 run + 2 x 3 kernels + 100 + 200 + 100
    record = GraphRecord("model/x-1", "model/x", (KernelSample(one, 1.0, 140.0), KernelSample(two, 2.0, 280.0)), 1,
                         140.0, 436.0 / 150.0, 160.0)
    out = anchored(record, 150.0, 30.0, 2.0)
    drift = 150.0 / 160.0
    scale = 400.0 / (drift * 560.0)  # (436 - 30 - 6) over the profiled 560 us in typical units (525)
    assert [s.raw_us for s in out.kernels] == pytest.approx([140.0 * drift * scale, 280.0 * drift * scale])
    assert [kernel_time_us(out, s, 100.0, 150.0) for s in out.kernels] == pytest.approx([100.0, 200.0])
    assert out.reference_us == pytest.approx(100.0)  # the reference branch, anchored with the rest
    assert out.reference_e2e_us == 150.0 and out.e2e_ratio == record.e2e_ratio
    kernel_graph = replace(record, case="k/1", group="kernel")
    assert anchored(kernel_graph, 150.0, 30.0, 2.0) is kernel_graph  # kernel graphs keep their ratio times
    # an end-to-end time that leaves the kernels under half their profile is a failed timing: the profile stands
    failed = anchored(replace(record, e2e_ratio=200.0 / 150.0), 150.0, 30.0, 2.0)
    assert [s.raw_us for s in failed.kernels] == pytest.approx([140.0 * drift, 280.0 * drift])


def test_context_factors_are_medians_over_networks():
    from shufflebench.latency.calibration import _context

    # four networks, (measured, predicted, kernels) per kind: one network's 1x1 convolutions ran 30x their prediction
    sums = [{"conv.pointwise": (110.0, 100.0, 3), "elementwise": (50.0, 100.0, 2)},
            {"conv.pointwise": (220.0, 200.0, 3), "elementwise": (40.0, 80.0, 2)},
            {"conv.pointwise": (330.0, 300.0, 3)},
            {"conv.pointwise": (3000.0, 100.0, 3)}]
    context = _context(sums)
    # medians of 1.1, 1.1, 1.1, 30 (a ratio of sums would say 5.2, from one network)
    assert context["conv.pointwise"] == ContextFactor(pytest.approx(1.1))
    assert context["compute"] == ContextFactor(pytest.approx(1.1))
    assert "elementwise" not in context  # two networks: too few for a factor of its own
    assert context["memory"] == ContextFactor(0.5)  # two networks: too few for a slope


def test_memory_bound_context_factors_grow_with_the_network():
    from shufflebench.latency.calibration import _context

    # ten networks of 0.5 to 5 ms alone (the kernels' predicted sums): their reorders ran (size / 1 ms) ** 0.1 times
    # their prediction, their 1x1 convolutions 1.02x whatever the size
    sizes = [500.0 * 1.29155 ** i for i in range(10)]  # 500 us ... 5000 us
    sums = []
    for size in sizes:
        reorder = 0.1 * size
        sums.append({"reorder": (reorder * (size / 1000.0) ** 0.1, reorder, 4),
                     "conv.pointwise": (1.02 * 0.9 * size, 0.9 * size, 6)})
    context = _context(sums)
    reorder = context["reorder"]
    assert reorder.factor == pytest.approx(1.0) and reorder.slope == pytest.approx(0.1)
    assert reorder.sizes_us == (pytest.approx(500.0), pytest.approx(5000.0, rel=1e-4))
    assert reorder.at(2000.0) == pytest.approx(2 ** 0.1)  # 1.072
    assert reorder.at(50000.0) == pytest.approx(reorder.at(5000.0))  # held to the sizes it was fitted on
    assert reorder.at(10.0) == pytest.approx(0.5 ** 0.1)  # 0.933, as at 500 us
    # convolutions are compute-bound: one factor, no slope
    assert context["conv.pointwise"] == ContextFactor(pytest.approx(1.02))
    # the memory group's points are the reorders': sized as well
    assert context["memory"].slope == pytest.approx(0.1)
    assert sized("gemm") and sized("reshape") and sized("memory")
    assert not sized("conv.pointwise+nchwc") and not sized("compute") and not sized("conv.stem")


def test_a_weight_the_engine_packed_away_is_taken_from_the_graph():
    # onnxruntime packs a fully connected layer's matrix at load time: the profiler lists the input and the bias only
    nodes = [{"name": "fc", "op_type": "Gemm", "domain": "", "inputs": ["x", "w", "b"], "attributes": {"transB": 1},
              "constants": {"w": [1000, 1024], "b": [1000]}}]
    profile = {"kernels": [{"name": "fc", "op": "Gemm", "inputs": [[1, 1024], [1000]], "outputs": [[1, 1000]]}]}
    (kernel,) = kernels_of(profile, nodes)
    assert kernel.inputs == ((1, 1024), (1000, 1024), (1000,))
    assert kernel.bytes == 4 * (1024 + 1024 * 1000 + 1000 + 1000)  # the 4 MB of weights are read every run


def test_the_neighbour_part_of_a_correction_by_hand():
    # linear part 0.1 + 0.2 z; two calibration kernels at z = 0 and z = 10 left +0.5 and -0.5 of log error
    correction = Correction(("x",), (0.0,), (1.0,), 0.1, (0.2,), ((0.0,), (10.0,)), (0.5, -0.5))
    shrink = 2 / (2 + 8)  # both neighbours count (fewer than 32), shrunk by 2 / (2 + NEIGHBOUR_SHRINK)
    # at z = 0: distances 0 and 10, weights 1/0.3 and 1/10.3
    at_0 = (0.5 / 0.3 - 0.5 / 10.3) / (1 / 0.3 + 1 / 10.3)
    assert at_0 == pytest.approx(0.471698, abs=1e-6)
    assert correction.factor({"x": 0.0}) == pytest.approx(math.exp(0.1 + shrink * at_0))  # 1.2145
    assert correction.factor({}) == correction.factor({"x": 0.0})  # a missing feature counts as its mean
    # at z = 1: distances 1 and 9, weights 1/1.3 and 1/9.3
    at_1 = (0.5 / 1.3 - 0.5 / 9.3) / (1 / 1.3 + 1 / 9.3)
    assert correction.factor({"x": 1.0}) == pytest.approx(math.exp(0.3 + shrink * at_1))  # 1.4557
    assert correction.factor({"x": 50.0}) == 4.0  # never beyond MAX_FACTOR
    assert Correction.from_dict(json.loads(json.dumps(correction.to_dict()))) == correction


def test_copies_of_one_kernel_shape_share_a_cross_validation_fold():
    rows = [{"log_c_in": float(c), "log_hw": 6.0} for c in (4, 5, 6, 7, 8, 9) for _ in range(10)]
    folds = shape_folds(rows, 5)
    assert all(len(set(folds[i: i + 10])) == 1 for i in range(0, 60, 10))  # each shape's ten copies together
    assert len(set(folds.tolist())) >= 2
    assert shape_folds([rows[0]] * 7, 5).tolist() == [0, 1, 2, 3, 4, 0, 1]  # one shape: folds by position


def test_the_neighbours_correct_what_no_trend_can():
    rng = np.random.default_rng(5)
    kernels = []
    for _ in range(600):
        c_in = int(rng.choice([64, 96, 128, 192, 256, 320, 384, 512, 768, 1024]))
        c_out = int(rng.choice([64, 128, 256]))
        size = int(rng.choice([14, 28, 56]))
        kernels.append(Kernel("k", "Conv", "", ((1, c_in, size, size), (c_out, c_in, 1, 1)), ((1, c_out, size, size),)))
    peaks = Peaks(1e11, 1e10, 4e10)
    # 192 to 320 input channels run 40% slower than narrower and wider ones: a hump no trend in log_c_in can follow
    times = [2.0 + k.madd / (1e11 * 0.5) * 1e6 * (1.4 if 192 <= k.inputs[0][1] <= 320 else 1.0) for k in kernels]
    model = fit_kind("conv.pointwise", kernels, times, peaks)
    assert model.correction is not None and len(model.correction.residuals) == 600
    # cross-validated with whole shapes held out: 13.3% off with the roofline alone, 11.0% with the correction
    assert model.cv_error > 0.12 and model.cv_error_corrected is not None
    assert model.cv_error_corrected < 0.9 * model.cv_error
    hump, wide = (Kernel("k", "Conv", "", ((1, c, 20, 20), (96, c, 1, 1)), ((1, 96, 20, 20),)) for c in (288, 640))
    ratio = model.components(hump, peaks).compute_us / model.components(wide, peaks).compute_us
    # unseen shapes: multiply-adds alone say 0.45, the truth is 0.63; the neighbours recover well over half the hump
    assert 0.54 < ratio < 0.65
