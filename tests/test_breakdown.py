"""Operator breakdown: kernels mapped to exported nodes by hand, and a real profile's shares."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shufflebench.breakdown import breakdown, category_of_kernel, map_kernels
from shufflebench.cli import app
from shufflebench.models import resolve_model
from shufflebench.prepared import PreparedModel


def node(name, op, inputs, outputs):
    return {"name": name, "op_type": op, "inputs": inputs, "outputs": outputs}


EXPORTED = [
    node("/a/conv/Conv", "Conv", ["x", "w1"], ["a_conv"]),
    node("/a/bn/BatchNormalization", "BatchNormalization", ["a_conv", "s", "b", "m", "v"], ["a_bn"]),
    node("/a/relu/Relu", "Relu", ["a_bn"], ["a_relu"]),
    node("/b/conv/Conv", "Conv", ["a_relu", "w2"], ["b_conv"]),
    node("/b/bn/BatchNormalization", "BatchNormalization", ["b_conv", "s", "b", "m", "v"], ["b_bn"]),
    node("/c/Concat", "Concat", ["a_relu", "b_bn"], ["y"]),
]


def test_kernels_cover_the_nodes_optimization_folded_away():
    profile = {
        "kernels": [
            {"name": "/a/relu/Relu_output_0_nchwc", "op": "Conv", "time_us": 60.0},  # NCHWc conv named after a_relu
            {"name": "ReorderOutput_token_1", "op": "ReorderOutput", "time_us": 5.0},
            {"name": "/b/conv/Conv", "op": "FusedConv", "time_us": 30.0},
            {"name": "/c/Concat", "op": "Concat", "time_us": 5.0},
        ],
        "optimized_nodes": [
            {"name": "/a/relu/Relu_output_0_nchwc", "op_type": "Conv", "group": 1, "in_channels": 8},
            {"name": "ReorderOutput_token_1", "op_type": "ReorderOutput", "group": None, "in_channels": None},
            {"name": "/b/conv/Conv", "op_type": "FusedConv", "group": 8, "in_channels": 8},
            {"name": "/c/Concat", "op_type": "Concat", "group": None, "in_channels": None},
        ],
    }
    # a_relu's producer is the Relu node; the name is the tensor + "_nchwc"
    exported = [dict(n) for n in EXPORTED]
    exported[2]["outputs"] = ["/a/relu/Relu_output_0"]
    exported[3]["inputs"] = ["/a/relu/Relu_output_0", "w2"]
    exported[5]["inputs"] = ["/a/relu/Relu_output_0", "b_bn"]
    kernels = {k.name: k for k in map_kernels(profile, exported)}
    first = kernels["/a/relu/Relu_output_0_nchwc"]
    # Relu's output has two consumers, but the walk goes *up* from it: relu <- bn <- conv (each single-use).
    assert first.covers == ("/a/relu/Relu", "/a/bn/BatchNormalization", "/a/conv/Conv")
    assert first.category == "dense conv"
    assert kernels["ReorderOutput_token_1"].category == "inserted" and kernels["ReorderOutput_token_1"].covers == ()
    fused = kernels["/b/conv/Conv"]
    assert fused.covers == ("/b/conv/Conv", "/b/bn/BatchNormalization")
    assert fused.category == "depthwise conv"
    assert kernels["/c/Concat"].category == "shuffle/concat/split/transpose"


def test_categories_of_kernels():
    assert category_of_kernel("Conv", 1, 32) == "dense conv"
    assert category_of_kernel("Conv", 32, 32) == "depthwise conv"
    assert category_of_kernel("FusedConv", 3, 240) == "group conv"
    assert category_of_kernel("Gemm", None, None) == "dense conv"
    assert category_of_kernel("Relu", None, None) == "element-wise"
    assert category_of_kernel("Transpose", None, None) == "shuffle/concat/split/transpose"
    assert category_of_kernel("GlobalAveragePool", None, None) == "pooling"


def test_shares_and_overhead_by_hand():
    from shufflebench.breakdown import KernelTime

    table = PreparedModel(resolve_model("g1:resolution=8")).layer_table
    kernels = [KernelTime("a", "Conv", "dense conv", 75.0, ("x",)), KernelTime("r", "ReorderInput", "inserted", 25.0, ())]
    data = breakdown(kernels, 120.0, table)
    shares = {row.category: row.time_share for row in data.categories}
    assert shares == {"dense conv": 0.75, "inserted": 0.25}  # folded BN and fused ReLU cost nothing deployed
    assert data.overhead_us == 20.0 and data.overhead_share == pytest.approx(20 / 120)
    dense = next(r for r in data.categories if r.category == "dense conv")
    assert dense.madd_share == 1.0  # g1 is all 1x1 convolutions


def test_profile_breakdown_of_shufflenet_v2(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["profile", "v2:resolution=64", "--breakdown", "--format", "json",
                                      "--budget", "0.2", "--warmup", "1", "--min-runs", "6"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["breakdown"]
    assert sum(row["time_share"] for row in data["categories"]) == pytest.approx(1.0)
    assert sum(row["madd_share"] for row in data["categories"]) == pytest.approx(1.0)
    categories = {row["category"] for row in data["categories"]}
    assert {"dense conv", "depthwise conv", "shuffle/concat/split/transpose"} <= categories
    covered = [c for k in data["kernels"] for c in k["covers"]]
    assert len(covered) == len(set(covered))  # no exported node is claimed by two kernels
    convs = [c for c in covered if c.endswith("/Conv")]
    assert len(convs) == 56  # every convolution of ShuffleNet V2 is covered by exactly one kernel
    assert data["run_time_us"] >= data["node_time_us"] > 0


def test_compare_breakdown_gives_each_model_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["compare", "v1:resolution=64", "mbv2:resolution=64", "--breakdown", "--format",
                                      "json", "--budget", "0.2", "--warmup", "1", "--min-runs", "6"])
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)["models"]
    group_share = {m["model"]: next((r["time_share"] for r in m["breakdown"]["categories"]
                                     if r["category"] == "group conv"), 0.0) for m in models}
    assert group_share["shufflenet_v1"] > 0 and group_share["mobilenet_v2"] == 0
    table = CliRunner().invoke(app, ["compare", "g1:resolution=8", "g1:resolution=8,ratio=2", "--breakdown", "--device",
                                     "cpu-torch"])
    assert table.exit_code == 2 and "--breakdown uses onnxruntime's profiler" in table.stderr
