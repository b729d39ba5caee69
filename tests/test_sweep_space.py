"""Search spaces of `shufflebench sweep`: zoo grids, a user's space callable, folders of .onnx files; bad input is
one line and exit 2 (no Ray needed: the space is read before any cluster starts)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app
from shufflebench.errors import UsageError
from shufflebench.sweep.space import Architecture, parse_space, sample
from shufflebench.sweep.work import count_architecture, prepare_architecture

FAKES = "tests.fixtures.sweep_fakes"


def test_the_issue_s_zoo_grid_is_fifteen_variants_with_canonical_keys():
    space = parse_space(["shufflenet_v1:groups=1|2|3|4|8,width=0.5|1.0|2.0"])
    assert len(space) == 15
    assert {a.source for a in space} == {"zoo"}
    first = space[0]
    assert first.target == "shufflenet_v1:groups=1,width=0.5,resolution=224"
    assert first.key == "shufflenet_v1:groups=1,width=0.5,resolution=224@1x3x224x224"
    assert first.label == "shufflenet_v1:groups=1,width=0.5"
    assert [a.target.split(",")[0] for a in space[:3]] == ["shufflenet_v1:groups=1"] * 3  # the first option varies slowest


def test_a_grid_longer_than_a_file_name_is_a_grid_not_an_os_error():
    seeds = "|".join(str(seed) for seed in range(1, 101))  # the spec is 391 characters: too long for a file name
    space = parse_space([f"searchspace:family=shufflenet,seed={seeds}"])
    assert len(space) == 100 and space[99].target.startswith("searchspace:")


def test_grids_dedupe_aliases_and_defaults_and_take_the_batch():
    space = parse_space(["v2:width=1.0|0.5", "shufflenet_v2", "shufflenet_v2:resolution=160|224"], batch=4)
    assert [a.label for a in space] == ["shufflenet_v2", "shufflenet_v2:width=0.5", "shufflenet_v2:resolution=160"]
    assert {a.input_shape[0] for a in space} == {4}
    assert space[2].input_shape == (4, 3, 160, 160)


def test_a_user_space_lists_names_and_shapes_and_builds_one_architecture(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    space = parse_space([f"{FAKES}:space"])
    assert [a.label for a in space] == ["c8", "c16", "c24", "c32"]
    assert space[1].key == f"{FAKES}:space/c16@1x3x8x8"
    cost = count_architecture(space[1])
    # Conv2d(3 -> 16, 3x3, no bias) on 8x8: 16 * 3 * 9 * 64 multiply-adds, 16 * 27 params
    assert cost.flops_madd == 16 * 3 * 9 * 64 == 27648
    assert cost.params == 16 * 27
    assert prepare_architecture(space[1], cost).cost is cost  # counted once: the measurement reuses it


def test_an_onnx_folder_is_every_file_below_it_keyed_by_content(onnx_models, tmp_path):
    folder = tmp_path / "models"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(onnx_models["tiny"], folder / "tiny.onnx")
    shutil.copy(onnx_models["stem"], folder / "sub" / "stem.onnx")
    space = parse_space([str(folder)])
    assert [a.label for a in space] == ["sub/stem.onnx", "tiny.onnx"]
    assert space[1].input_shape == (1, 3, 16, 16)
    assert len(space[1].digest) == 64 and f"#{space[1].digest[:12]}@1x3x16x16" in space[1].key
    assert count_architecture(space[1]).flops_madd == (8 * 3 * 9 + 4 * 8) * 16 * 16  # conv 3->8 3x3, conv 8->4 1x1
    (folder / "tiny.onnx").write_bytes((folder / "sub" / "stem.onnx").read_bytes())
    with pytest.raises(UsageError, match="changed since the sweep was planned"):
        prepare_architecture(space[1])


def test_architectures_survive_the_store_s_spec_round_trip():
    arch = parse_space(["mbv2:width=0.5"])[0]
    assert Architecture.from_dict(arch.to_dict()) == arch
    assert Architecture.from_dict(arch.to_dict()).label == "mobilenet_v2:width=0.5"


def test_a_sample_is_the_same_for_the_same_seed_and_keeps_space_order():
    space = parse_space(["shufflenet_v1:groups=1|2|3|4|8,width=0.5|1.0|2.0"])
    picked = sample(space, 4, seed=7)
    assert picked == sample(space, 4, seed=7) and len(picked) == 4
    assert picked == sorted(picked, key=space.index)
    assert sample(space, 4, seed=8) != picked
    assert sample(space, 99) == space


@pytest.mark.parametrize("space, message", [
    ("shufflenet_v1:groups=1|7", r"^error: shufflenet_v1: groups=7 is not offered; allowed: 1, 2, 3, 4, 8$"),
    ("shufflenet_v1:depth=1|2", r"^error: shufflenet_v1: unknown option 'depth'; allowed: groups, width, resolution$"),
    ("shufflenet_v2:width=0.5||1.0", r"^error: shufflenet_v2: option width='0.5\|\|1.0' has an empty value"),
    ("shufflenet_v2:width=0.5|0.5", r"^error: shufflenet_v2: option width='0.5\|0.5' repeats a value$"),
    ("nonsense", r"^error: search space 'nonsense' is not a zoo grid .*, a folder of \.onnx files, or "
                 r"package\.module:space$"),
    ("no_such_module:space", r"^error: cannot import 'no_such_module' for the space no_such_module:space"),
    (f"{FAKES}:not_a_space", rf"^error: the space {FAKES}:not_a_space returned int; expected"),
    (f"{FAKES}:bad_shape_space", r"^error: the space .*: c8 has input shape \(1, 3, 0, 8\); give positive integers"),
    ("missing.onnx", r"^error: search space 'missing.onnx': no such \.onnx file or folder$"),
])
def test_bad_spaces_are_one_line_and_exit_2(space, message, tmp_path):
    result = CliRunner().invoke(app, ["sweep", space, "--mode", "count", "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "s.sqlite").exists()  # nothing is created for a space that cannot be read


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(UsageError, match="holds no .onnx file"):
        parse_space([str(tmp_path)])


@pytest.mark.parametrize("args, message", [
    (["--mode", "predict"], r"^error: no calibration of device cpu in .*; make one with shufflebench calibrate "
                            r"--device cpu \(or give --calibration FILE\)$"),
    (["--mode", "count", "--device", "cpu"],
     r"^error: --device is for measure and predict modes; count mode needs no device$"),
    (["--device", "snapdragon-810"], r"^error: device 'snapdragon-810' is reference-only"),
    (["--device", "cpu", "--device", "cpu"], r"^error: a device is given twice: cpu, cpu$"),
    (["--ray", "not an address"], r"^error: --ray 'not an address' is not allowed; allowed: local, auto, HOST:PORT"),
])
def test_bad_modes_devices_and_addresses_are_one_line_and_exit_2(args, message, tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))  # no calibration stored
    result = CliRunner().invoke(app, ["sweep", "v2:width=0.5", *args, "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert re.search(message, result.stderr.strip()), result.stderr
    assert not (tmp_path / "s.sqlite").exists()  # refused before the store is made
    assert not (tmp_path / "s.sqlite").exists()


def test_the_resources_a_node_declares():
    result = CliRunner().invoke(app, ["sweep", "resources", "cpu", "arm-emulated"])
    assert json.loads(result.stdout) == {"shufflebench_host": 1, "shufflebench_device_cpu": 1,
                                         "shufflebench_device_arm_emulated": 1}


def test_the_rest_of_shufflebench_never_imports_ray():
    code = ("import sys; from typer.testing import CliRunner; from shufflebench.cli import app; "
            "assert CliRunner().invoke(app, ['sweep', '--help']).exit_code == 0; "
            "assert CliRunner().invoke(app, ['count', 'g1']).exit_code == 0; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_without_ray_a_sweep_says_how_to_install_it(monkeypatch):
    from shufflebench.errors import SetupError
    from shufflebench.sweep.engine import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SetupError, match=r"^sweeps run on Ray: pip install 'shufflebench\[scale\]'"):
        import_ray()
