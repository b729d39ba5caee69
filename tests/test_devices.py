"""Device profiles: every shipped file loads; bad files are refused naming the file, key and reason."""

from __future__ import annotations

import pytest

from shufflebench.devices import HOST_ENV, devices_dir, list_profiles, load_profile, resolve_device
from shufflebench.errors import UsageError


def test_shipped_profiles_load():
    names = {p.name for p in list_profiles()}
    assert {"cpu", "cpu-torch", "cuda", "cuda-torch", "arm", "arm-emulated", "snapdragon-810", "gtx-1080ti"} <= names


def test_default_cpu_profile():
    cpu = resolve_device("cpu")
    assert (cpu.backend, cpu.provider, cpu.threads, cpu.location) == ("onnxruntime", "CPUExecutionProvider", 1, "local")
    assert cpu.runnable and not cpu.emulated


def test_reference_profiles_are_not_runnable_and_cite_sources():
    for name in ("snapdragon-810", "gtx-1080ti"):
        profile = resolve_device(name)
        assert not profile.runnable
        assert profile.hardware.peak_madd_per_s > 0 and profile.hardware.source


def test_overrides_and_host_resolution(monkeypatch):
    assert resolve_device("cpu", threads=2, batch=4).threads == 2
    monkeypatch.setenv(HOST_ENV, "board-from-env")
    assert resolve_device("arm").host == "board-from-env"
    assert resolve_device("arm", host="pi@board").host == "pi@board"


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": 0}, "--threads 0 is not allowed"),
    ({"batch": -1}, "--batch -1 is not allowed"),
    ({"host": "x"}, "--host applies to SSH devices"),
])
def test_bad_overrides(kwargs, message):
    with pytest.raises(UsageError, match=message):
        resolve_device("cpu", **kwargs)


def test_unknown_device_lists_known():
    with pytest.raises(UsageError, match=r"unknown device 'tpu'; known: .*arm-emulated.*cpu"):
        resolve_device("tpu")


@pytest.mark.parametrize("text, message", [
    ('name = "x"\ndescription = ""\nkind = "cpu"\nbackend = "onnxruntime"\nlocation = "local"\nspeed = 1\n',
     "speed: unknown key"),
    ('name = "x"\ndescription = ""\nkind = "tpu"\nbackend = "onnxruntime"\nlocation = "local"\n',
     "kind: 'tpu' is not allowed; allowed: cpu, cuda, arm"),
    ('name = "x"\ndescription = ""\nkind = "cpu"\nbackend = "onnxruntime"\nlocation = "local"\nthreads = 0\n',
     "threads: 0 must be a whole number >= 1"),
    ('name = "x"\nkind = "cpu"\nbackend = "onnxruntime"\nlocation = "local"\n', "description: missing"),
    ('name = "y"\ndescription = ""\nkind = "cpu"\nbackend = "onnxruntime"\nlocation = "local"\n',
     "must match the file name"),
    ('name = "x"\ndescription = ""\nkind = "cpu"\nbackend = "onnxruntime"\nlocation = "local"\n'
     '[hardware]\npeak_madd_per_s = 1e9\n', "hardware figures need their source"),
    ('name = "x"\ndescription = ""\nkind = "cpu"\nbackend = "torch"\nlocation = "emulated"\n', "emulation is for"),
    ("name = \n", "not valid TOML"),
])
def test_malformed_profiles_are_refused(tmp_path, text, message):
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_profile_by_path(tmp_path):
    text = (devices_dir() / "cpu.toml").read_text().replace('name = "cpu"', 'name = "mine"')
    path = tmp_path / "mine.toml"
    path.write_text(text)
    assert resolve_device(str(path)).name == "mine"


def test_devices_command_lists_profiles_and_marks_reference_ones():
    import json

    from typer.testing import CliRunner

    from shufflebench.cli import app

    result = CliRunner().invoke(app, ["devices", "--format", "json"])
    assert result.exit_code == 0
    by_name = {d["name"]: d for d in json.loads(result.stdout)["devices"]}
    assert by_name["cpu"]["runnable"] and not by_name["gtx-1080ti"]["runnable"]
    assert by_name["arm-emulated"]["emulated"] and by_name["arm-emulated"]["qemu_cpu"] == "cortex-a72"
    table = CliRunner().invoke(app, ["devices"])
    assert "reference only" in table.stdout and "arm-emulated" in table.stdout
