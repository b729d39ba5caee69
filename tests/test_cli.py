"""The command line: exit codes, one-line errors, and the numbers in its machine-readable output."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_count_json_for_shufflenet_v2_matches_table5():
    result = invoke("count", "v2", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "shufflebench.count/2"
    assert data["model"] == "shufflenet_v2"
    assert data["variant"]["width"] == 1.0
    assert data["input_shape"] == [1, 3, 224, 224]
    assert isinstance(data["flops_madd"], int) and isinstance(data["params"], int)
    assert data["flops_madd"] == pytest.approx(146e6, rel=0.015)
    assert data["params"] == pytest.approx(2.3e6, rel=0.03)
    assert data["coverage"]["unknown"] == {}
    assert set(data["mac_bytes"]) == {"eager", "deployed"}
    assert data["mac_bytes"]["eager"] > data["mac_bytes"]["deployed"] > 0
    assert data["arithmetic_intensity"]["deployed"] == pytest.approx(
        data["flops_madd"] / data["mac_bytes"]["deployed"])
    assert "layers" not in data


def test_count_flags_and_inline_options_agree():
    by_flags = json.loads(invoke("count", "shufflenet_v1", "--groups", "8", "--width", "0.5", "--format", "json").stdout)
    inline = json.loads(invoke("count", "v1:groups=8,width=0.5", "--format", "json").stdout)
    assert by_flags["flops_madd"] == inline["flops_madd"]
    assert by_flags["label"] == inline["label"] == "shufflenet_v1:groups=8,width=0.5,resolution=224"


def test_count_per_layer_json_rows_add_up():
    data = json.loads(invoke("count", "mbv1", "--resolution", "128", "--per-layer", "--format", "json").stdout)
    layers = data["layers"]
    assert sum(row["flops_madd"] for row in layers) == data["flops_madd"]
    assert sum(row["mac_bytes"] for row in layers) == data["mac_bytes"]["eager"]
    first = layers[0]
    assert {"name", "op", "kind", "input_shapes", "output_shapes", "flops_madd", "params", "mac_bytes"} <= set(first)
    assert first["input_shapes"] == [[1, 3, 128, 128]]


def test_count_table_shows_units_coverage_and_paper():
    result = invoke("count", "v2")
    assert result.exit_code == 0
    assert "M" in result.stdout and "coverage:" in result.stdout and "0 unknown" in result.stdout
    assert "Table 5" in result.stdout and ": agrees --" in result.stdout


def test_a_count_outside_a_figures_tolerance_is_said_to_disagree():
    from dataclasses import replace

    from shufflebench.models import resolve_model
    from shufflebench.prepared import PreparedModel
    from shufflebench.report.count import paper_comparison, published_figures

    model = PreparedModel(resolve_model("v2"))
    (figure,) = published_figures(model)  # Table 5: 146M multiply-adds within 1.5%, 2.3M params
    assert paper_comparison(figure, model.layer_table)["agrees"] is True  # 144.9M, 2.28M
    strict = replace(figure, tolerance=0.001, params=None)  # 144.9M is 0.7% off 146M
    assert paper_comparison(strict, model.layer_table)["agrees"] is False


def test_count_table_per_layer_fits_100_columns():
    result = invoke("count", "v2", "--per-layer", "--sort", "mac", "--top", "5")
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    assert "5 of" in result.stdout


def test_count_csv_has_one_line_per_layer():
    result = invoke("count", "g1", "--per-layer", "--format", "csv")
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("index,name,kind")
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 60  # 10 blocks of two (1x1 conv, batch norm, ReLU)
    assert sum(row[2] == "conv" for row in rows) == 20


@pytest.mark.parametrize(
    "args, message",
    [
        (("count", "v3"), "unknown model 'v3'; known: shufflenet_v1"),
        (("count", "v2", "--width", "0.75"), "width=0.75 is not offered; allowed: 0.5, 1.0, 1.5, 2.0"),
        (("count", "v1:groups=5"), "groups=5 is not offered; allowed: 1, 2, 3, 4, 8"),
        (("count", "v2", "--groups", "3"), "unknown option 'groups'"),
        (("count", "v2", "--batch", "-1"), "--batch -1 is not allowed"),
        (("count", "missing.onnx"), "ONNX file 'missing.onnx' does not exist"),
        (("count", "tests.fixtures.user_models:tiny_net"), "needs --input-shape"),
        (("count", "tests.fixtures.user_models:not_a_module", "--input-shape", "1,3,8,8"), "not a torch.nn.Module"),
        (("count", "v2:width"), "is not key=value"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_user_callable_counts_by_hand():
    result = invoke("count", "tests.fixtures.user_models:tiny_net", "--input-shape", "1,3,8,8", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # conv: 64 positions * 8 out * 3 in * 9 taps = 13824; linear 8 * 2 = 16.
    assert data["flops_madd"] == 13824 + 16
    assert data["params"] == 8 * 27 + 8 * 2 + 2


def test_user_onnx_file_counts_the_same(tmp_path):
    import torch

    from tests.fixtures.user_models import tiny_net

    path = tmp_path / "tiny.onnx"
    torch.onnx.export(tiny_net().eval(), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    data = json.loads(invoke("count", str(path), "--format", "json").stdout)
    assert data["source"] == "onnx" and data["graph"] == "onnx"
    assert data["flops_madd"] == 13824 + 16
    assert data["params"] == 8 * 27 + 8 * 2 + 2


def test_list_json_has_every_model_with_options_and_paper_figures():
    data = json.loads(invoke("list", "--format", "json").stdout)
    names = {m["name"] for m in data["models"]}
    assert {"shufflenet_v1", "shufflenet_v2", "mobilenet_v1", "mobilenet_v2", "alexnet", "resnet50",
            "g1", "g2", "g3", "g4"} <= names
    v2 = next(m for m in data["models"] if m["name"] == "shufflenet_v2")
    assert v2["aliases"] == ["v2"]
    width = next(o for o in v2["options"] if o["name"] == "width")
    assert width["choices"] == [0.5, 1.0, 1.5, 2.0] and width["default"] == 1.0
    assert {f["flops_madd"] for f in v2["paper"]} >= {41e6, 146e6, 299e6, 591e6}


def test_list_table_renders():
    result = invoke("list")
    assert result.exit_code == 0
    assert "shufflenet_v2" in result.stdout and "(v2)" in result.stdout


def test_check_strict_exit_codes():
    assert invoke("check", "v2", "--strict").exit_code == 0
    result = invoke("check", "v1:groups=8", "--strict")
    assert result.exit_code == 1
    assert "G2 excessive group convolution increases MAC:" in result.stdout


def test_check_json_and_config(tmp_path):
    config = tmp_path / "lint.toml"
    config.write_text("[tool.shufflebench]\ng2_max_overhead = 10.0\ng1_min_mac_saving = 0.9\ng4_max_elementwise_share = 0.9\n")
    result = invoke("check", "v1:groups=8", "--strict", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["thresholds"]["g2_max_overhead"] == 10.0
    assert data["summary"]["G2"]["above"] == 0 and data["summary"]["G2"]["checked"] > 0


def test_check_config_with_unknown_key_is_refused(tmp_path):
    config = tmp_path / "lint.toml"
    config.write_text("g5_anything = 1\n")
    result = invoke("check", "v2", "--config", str(config))
    assert result.exit_code == 2
    assert "unknown key 'g5_anything'" in result.stderr


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("list", "count", "check"):
        assert command in result.stdout


@pytest.mark.parametrize("command, budget", [("profile", "10.0"), ("compare", "10.0"), ("guidelines", "3.0"),
                                             ("regress", "5.0"), ("baseline save", "10.0")])
def test_budget_means_seconds_per_model_in_every_command(command, budget):
    # One declaration of the sampling options; each command's default comes from its preset in options.py.
    result = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    line = next(line for line in result.stdout.splitlines() if "--budget" in line)
    assert "Seconds of timing PER MODEL" in line and f"[default: {budget}]" in line
