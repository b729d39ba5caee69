"""The error contract on every command: a bad or hostile input gives exit 2 (1 for a refused measurement), one line on
stderr (a second only as a hint) that names the bad value and what is allowed, no traceback; and no input is ever
overwritten.

Each case is (command line, the bad value as the message quotes it, what the message says is allowed). The command
line may use the files made by `hostile_files` ({m}: an ONNX model, {b}: a baseline of v2 at 32 px, ...).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app

ROOT = Path(__file__).resolve().parent.parent
H = "tests.fixtures.hostile_models"
SMALL = "v2:resolution=32"
QUICK = ["--budget", "0.1", "--warmup", "0", "--min-runs", "3", "--min-time", "0"]


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory) -> dict[str, str]:
    """Files a hostile user points the commands at."""
    import torch
    from torch import nn

    folder = tmp_path_factory.mktemp("hostile")
    model = folder / "m.onnx"
    torch.onnx.export(nn.Sequential(nn.Conv2d(3, 4, 3)).eval(), (torch.zeros(1, 3, 8, 8),), str(model), dynamo=False)
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "garbage.onnx").write_bytes(os.urandom(64) + b"\xff\x00" * 32)
    (folder / "folder.onnx").mkdir()
    (folder / "binary.toml").write_bytes(b"\xff\xfe\x00\x81" * 16)
    (folder / "bad.toml").write_text("g1 = [\n")
    (folder / "nan.toml").write_text("g4_max_elementwise_share = nan\n")
    (folder / "share.toml").write_text("g4_max_elementwise_share = 5\n")
    (folder / "unknown.toml").write_text("g9_max = 1\n")
    (folder / "board.toml").write_text('name = "board"\ndescription = "x"\nkind = "arm"\nbackend = "onnxruntime"\n'
                                       'location = "ssh"\ncolour = "red"\n')
    (folder / "garbage.json").write_text("{not json")
    (folder / "other.json").write_text(json.dumps({"schema": "shufflebench.profile/2"}))
    (folder / "empty-devices").mkdir()
    (folder / "afile").write_text("a file, not a folder\n")
    baseline = folder / "b.json"
    saved = CliRunner().invoke(app, ["baseline", "save", SMALL, "--output", str(baseline)])
    assert saved.exit_code == 0, saved.output
    corrupt = json.loads(baseline.read_text())
    corrupt["models"][0]["flops_madd"] = "many"
    (folder / "corrupt.json").write_text(json.dumps(corrupt))
    (folder / "broken.py").write_text("def build(:\n    pass\n")  # a user's module with a syntax error
    return {"dir": str(folder), "m": str(model), "b": str(baseline), **{
        name.replace(".", "_").replace("-", "_"): str(folder / name)
        for name in ("empty.onnx", "garbage.onnx", "folder.onnx", "binary.toml", "bad.toml", "nan.toml", "share.toml",
                     "unknown.toml", "board.toml", "garbage.json", "other.json", "empty-devices", "afile",
                     "corrupt.json")}}


CASES = [
    # --- models: names, options, inline forms ------------------------------------------------------------------
    ("count nosuch", "'nosuch'", "known: shufflenet_v1"),
    ("count v2:width=0.3", "width=0.3", "allowed: 0.5, 1.0, 1.5, 2.0"),
    ("count v2:width=abc", "width=abc", "allowed: 0.5"),
    ("count v2:bogus=1", "'bogus'", "allowed: width, resolution"),
    ("count v2:width", "'width'", "key=value"),
    ("count v2:width=1,width=2", "'width'", "given twice"),
    ("count v2:width=0.5 --width 1.0", "width=0.5 inline and --width 1.0", "give it once"),
    ("count v2 --groups 3", "'groups'", "allowed: width, resolution"),
    ("count v2 --input-shape 1,3,8,8", "--input-shape", "takes --resolution and --batch"),
    ("count v2 --resolution 8", "resolution=8", "the minimum is 32"),
    ("count v2:resolution=100000", "1x3x100000x100000", "lower --batch or --resolution"),
    ("count v2 --batch 100000", "100000x3x224x224", "lower --batch or --resolution"),
    ("count v2 --batch 0", "--batch 0", "positive integer"),
    ("count v2 --batch abc", "--batch 'abc'", "allowed: a whole number"),
    ("count v2 --sort flops", "--sort 'flops'", "allowed: order, madd, mac, params"),
    ("count v2 --top 0", "--top '0'", "a whole number >= 1"),
    ("count v2 --format xml", "--format 'xml'", "allowed: table, json, csv"),
    ("count v2 --bugdet 3", "--bugdet", "allowed: --batch"),
    ("profile v2 --bugdet 3", "--bugdet", "did you mean --budget?"),
    ("bogus", "'bogus'", "allowed: list, count, check"),
    # --- your own models: callables that fail ------------------------------------------------------------------
    (f"count {H}:raises --input-shape 1,3,8,8", "RuntimeError: weights file missing", f"{H}:raises: calling it"),
    (f"count {H}:needs_argument --input-shape 1,3,8,8", "TypeError", "missing 1 required positional argument"),
    (f"count {H}:exits --input-shape 1,3,8,8", "SystemExit: 0", f"{H}:exits: calling it"),
    (f"count {H}:returns_int --input-shape 1,3,8,8", "returned int", "not a torch.nn.Module"),
    (f"count {H}:ANSWER --input-shape 1,3,8,8", "type int", "not an nn.Module or a callable"),
    (f"count {H}:broken_forward --input-shape 1,3,8,8", "ValueError: forward is broken", "forward on a 1x3x8x8"),
    (f"count {H}:shape_mismatch --input-shape 1,3,8,8", "RuntimeError: mat1 and mat2", "forward on a 1x3x8x8"),
    (f"count {H}:conv --input-shape 1,3", "forward on a 1x3 input", "Expected 3D (unbatched) or 4D"),
    (f"check {H}:broken_forward --input-shape 1,3,8,8", "ValueError: forward is broken", "forward on a 1x3x8x8"),
    (f"count {H}:nothere --input-shape 1,3,8,8", "'nothere'", "has no attribute"),
    ("count nosuchpackage.models:build --input-shape 1,3,8,8", "'nosuchpackage.models'", "cannot import"),
    ("count broken:build --input-shape 1,3,8,8", "SyntaxError", "importing broken"),
    (f"count {H}:conv", f"{H}:conv", "needs --input-shape"),
    (f"count {H}:conv --input-shape 1,a,3", "'1,a,3'", "list of positive integers"),
    (f"count {H}:conv --input-shape 0,3,8,8", "'0,3,8,8'", "list of positive integers"),
    (f"count {H}:conv --input-shape 1,3,8,8 --width 0.5", "--width", "applies to zoo models only"),
    # --- ONNX files -----------------------------------------------------------------------------------------------
    ("count {dir}/missing.onnx", "missing.onnx", "does not exist"),
    ("count {empty_onnx}", "empty.onnx", "holds no graph"),
    ("count {garbage_onnx}", "garbage.onnx", "not"),
    ("count {folder_onnx}", "folder.onnx", "is a folder"),
    ("count {m} --input-shape 1,3,16,16", "1x3x16x16", "takes 1x3x8x8"),
    ("count {m} --batch 4", "--batch 4", "a fixed batch of 1"),
    ("profile {m} --device cpu-torch", "m.onnx is an ONNX file", "runs torch models"),
    # --- check and its thresholds -----------------------------------------------------------------------------
    ("check v2 --config {dir}/missing.toml", "missing.toml", "does not exist"),
    ("check v2 --config {dir}", "hostile", "is a folder; give a file"),
    ("check v2 --config {binary_toml}", "binary.toml", "is not a text file"),
    ("check v2 --config {bad_toml}", "bad.toml", "not valid TOML"),
    ("check v2 --config {nan_toml}", "g4_max_elementwise_share = nan", "must be a positive number"),
    ("check v2 --config {share_toml}", "g4_max_elementwise_share = 5", "allowed: above 0, below 1"),
    ("check v2 --config {unknown_toml}", "'g9_max'", "allowed: g1_min_mac_saving"),
    # --- devices ------------------------------------------------------------------------------------------------
    ("profile v2 --device tpu", "'tpu'", "known: arm-counted-n1, arm-counted, arm-emulated-n1"),
    ("predict v2 --device arm-counted", "arm-counted", "predict for a timed device"),
    ("profile v2 --device {binary_toml}", "binary.toml", "is not a text file"),
    ("profile v2 --device {dir}", "hostile", "is a folder; give a file"),
    ("profile v2 --device {board_toml}", "colour", "unknown key; allowed"),
    ("profile v2 --device gtx-1080ti", "'gtx-1080ti'", "reference-only"),
    ("profile v2 --host pi@board", "--host", "applies to SSH devices"),
    ("profile v2 --device arm", "arm", "give --host user@board"),
    ("profile v2 --breakdown --device cpu-torch", "cpu-torch runs torch", "onnxruntime's profiler"),
    ("profile v2 --threads 0", "--threads 0", "allowed: 1 to"),
    ("profile v2 --threads 999", "--threads 999", "allowed: 1 to"),
    # --- sampling options ----------------------------------------------------------------------------------------
    ("profile v2 --budget abc", "--budget 'abc'", "a number >= 0.01"),
    ("profile v2 --budget 0", "--budget '0'", "a number >= 0.01"),
    ("profile v2 --precision 2", "--precision '2'", "from 0.0001 to 1"),
    ("profile v2 --warmup -1", "--warmup '-1'", "a whole number >= 0"),
    ("profile v2 --min-runs 1.5", "--min-runs '1.5'", "a whole number >= 1"),
    ("profile v2 --min-time -1", "--min-time '-1'", "a number >= 0"),
    ("profile v2 --format csv", "--format 'csv'", "allowed: table, json, md"),
    # --- outputs -------------------------------------------------------------------------------------------------
    ("profile v2 --output {dir}", "hostile", "is a folder; give a file name"),
    ("profile v2 --output /proc/shufflebench/x.json", "/proc/shufflebench/x.json", "cannot be written"),
    ("profile {m} --output {m}", "m.onnx", "refusing to overwrite it"),
    ("compare v2 v1 --plot x.jpg", "'x.jpg'", "must end in .png or .svg"),
    ("compare v2 v1 --plot {dir}/same.png --output {dir}/same.png", "same.png", "give each its own file"),
    ("baseline save v2 --output {dir}", "hostile", "is a folder; give a file name"),
    ("profile v2 --output {dir}/" + "x" * 300 + ".json", "xxxxxxxx", "cannot be written: File name too long"),
    ("baseline save {m} --output {m}", "m.onnx", "refusing to overwrite it"),
    ("regress v2:resolution=32 --baseline {b} --output {b}", "b.json", "refusing to overwrite it"),
    ("regress v2 --against v2 --output {dir}/x.json --markdown {dir}/x.json", "x.json", "give each its own file"),
    # --- compare and guidelines ----------------------------------------------------------------------------------
    ("compare v2", "shufflenet_v2:width=1.0,resolution=224", "two different models or more"),
    ("compare v2 shufflenet_v2", "shufflenet_v2:width=1.0,resolution=224", "given twice"),
    ("compare v2 v1 --baseline nope", "'nope'", "known: shufflenet_v1"),
    ("compare v2 v1 --input-shape 1,3,8,8", "--input-shape", "only zoo models are given; use --resolution"),
    ("guidelines --only ''", "--only ''", "give a comma-separated list"),
    ("guidelines --only g1,g1", "g1 twice", "each is measured once"),
    ("guidelines --only g5", "'g5'", "allowed: g1, g2, g3, g4"),
    ("guidelines --widths 3", "'3'", "allowed: 1, 2, 4"),
    ("guidelines --widths 1,1", "1 twice", "each is measured once"),
    # --- calibrations and predictions ----------------------------------------------------------------------------
    ("predict v2", "no calibration of device cpu", "make one with shufflebench calibrate --device cpu"),
    ("predict v2 --calibration {dir}/missing.json", "missing.json", "does not exist"),
    ("predict v2 --calibration {garbage_json}", "garbage.json", "not a readable calibration"),
    ("predict v2 --calibration {other_json}", "shufflebench.profile/2", "expected shufflebench.calibration/8"),
    ("predict v2 --calibration {garbage_json} --output {garbage_json}", "garbage.json", "refusing to overwrite"),
    ("profile v2 --calibration {garbage_json}", "garbage.json", "not a readable calibration"),  # before measuring
    ("calibrate --device cpu-torch", "cpu-torch", "onnxruntime's profiler"),
    ("calibrate --network os:path", "'os:path'", "allowed: a zoo name with options, or an ONNX file"),
    ("calibrate --network g2:groups=5", "groups=5", "allowed: 1, 2, 4, 8"),
    # --- baselines and the gate ------------------------------------------------------------------------------------
    ("baseline save v2", "'--output'", "Missing option"),
    ("baseline save --output {dir}/b2.json", "no model given", "use --zoo"),
    ("regress v2", "nothing to compare against", "--against MODEL, --against-rev REV or --baseline FILE"),
    ("regress v2 --against v1 --threshold 5", "--threshold '5'", "write 5% for a percentage"),
    ("regress v2 --against v1 --threshold abc", "--threshold 'abc'", "write e.g. 5% or 0.05"),
    ("regress v2 --against v1 --min-effect 10% --threshold 5%", "--min-effect 10.0%", "up to the threshold"),
    ("regress v2 --against v1 --proxies lax", "--proxies 'lax'", "allowed: strict, report"),
    ("regress v2 --against-rev HEAD", "--against-rev", "one package.module:callable"),
    ("regress v2 --baseline {dir}/missing.json", "missing.json", "does not exist"),
    ("regress v2 --baseline {garbage_json}", "garbage.json", "not a readable JSON result"),
    ("regress v2 --baseline {other_json}", "shufflebench.profile/2", "expected shufflebench.baseline/<version>"),
    ("regress v2 --baseline {b}", "shufflenet_v2:width=1.0,resolution=224", "which holds: shufflenet_v2:width=1.0,"
                                                                             "resolution=32"),
    ("regress --baseline {corrupt_json}", "flops_madd is 'many'", "not a whole number"),
]


def _command(case: str, files: dict[str, str]) -> list[str]:
    return [part.format(**files) for part in shlex.split(case)]


def _fingerprints(files: dict[str, str]) -> dict[str, str]:
    return {name: hashlib.sha256(Path(path).read_bytes()).hexdigest()
            for name, path in files.items() if Path(path).is_file()}


@pytest.mark.parametrize("case, value, allowed", CASES, ids=[case for case, _, _ in CASES])
def test_a_hostile_input_gets_one_line_naming_the_value_and_what_is_allowed(case, value, allowed, hostile_files,
                                                                            monkeypatch, tmp_path):
    monkeypatch.chdir(hostile_files["dir"])  # where a user's own broken module lies, as in their project
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SHUFFLEBENCH_ARM_HOST", raising=False)
    before = _fingerprints(hostile_files)
    args = _command(case, hostile_files)
    if args[0] in ("profile", "compare", "regress"):  # short sampling, where the case does not set it itself
        args += [item for flag, value in zip(QUICK[::2], QUICK[1::2]) if flag not in args for item in (flag, value)]
    result = CliRunner().invoke(app, args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("see: ")), lines
    assert lines[0].startswith("error: ") and value in lines[0] and allowed in lines[0], lines[0]
    assert _fingerprints(hostile_files) == before  # no input was touched


@pytest.mark.parametrize("variable", ["missing", "empty-devices"])
def test_a_devices_folder_that_is_not_one_is_said_so(variable, hostile_files, monkeypatch):
    folder = hostile_files["dir"] + "/missing" if variable == "missing" else hostile_files["empty_devices"]
    monkeypatch.setenv("SHUFFLEBENCH_DEVICES", folder)
    for args in (["devices"], ["profile", "v2", "--device", "cpu"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2
        (line,) = result.stderr.strip().splitlines()
        assert folder in line and ("is not a folder" in line or "holds no device profile" in line), line


@pytest.mark.parametrize("args, message", [
    (["--out", "{afile}"], "--out '{afile}' is a file; give a folder for the results"),
    (["--out", "/proc/shufflebench"], "--out '/proc/shufflebench/cpu/REPORT.md' cannot be written"),
    (["--device", "tpu"], "error: unknown device 'tpu'"),
    (["--device", "gtx-1080ti", "--out", "{dir}/refused"], "reference-only"),
])
def test_bench_refuses_before_measuring_and_leaves_no_folder(args, message, hostile_files):
    args = [a.format(**hostile_files) for a in args]
    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert message.format(**hostile_files) in line and "Traceback" not in done.stderr
    assert not Path(hostile_files["dir"], "refused").exists()  # a refused device leaves no empty results folder


def test_an_input_that_cannot_be_a_file_name_is_no_reason_to_refuse_an_output(tmp_path):
    from shufflebench.files import check_output_paths

    grid = "searchspace:family=shufflenet,seed=" + "|".join(str(seed) for seed in range(1, 101))  # 391 characters
    check_output_paths({"--store": tmp_path / "sweep.sqlite"}, [grid])  # no OSError: File name too long
