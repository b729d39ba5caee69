"""Result files: written atomically with the umask's permissions, leftovers of a killed write cleaned up, outputs
checked before anything is measured, and a result shown even when writing it fails afterwards."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from typer.testing import CliRunner

from shufflebench.cli import app
from shufflebench.errors import UsageError
from shufflebench.files import check_output_paths, write_json_atomic, write_text_atomic


def test_a_result_file_gets_the_permissions_of_any_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"schema": "shufflebench.test/1"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0600


def test_a_killed_writes_leftover_is_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".r.json.abc123.tmp"
    stale.write_text("half a file")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".r.json.def456.tmp"  # a write happening right now elsewhere is left alone
    fresh.write_text("in progress")
    write_text_atomic(tmp_path / "r.json", "{}\n")
    assert not stale.exists() and fresh.exists()
    assert (tmp_path / "r.json").read_text() == "{}\n"


def test_outputs_are_checked_before_anything_is_measured(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    check_output_paths({"--output": tmp_path / "new" / "r.json"}, [model])  # a folder still missing is fine
    assert not (tmp_path / "new").exists()  # and not made before the result is
    with pytest.raises(UsageError, match="--output '.*m.onnx' is an input of this command"):
        check_output_paths({"--output": tmp_path / "." / "m.onnx"}, [model])
    with pytest.raises(UsageError, match="--markdown and --output both name"):
        check_output_paths({"--output": tmp_path / "x", "--markdown": tmp_path / "x"})
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_output_paths({"--output": model / "r.json"})
    assert model.read_bytes() == b"model"


def test_a_result_is_printed_even_when_writing_it_fails_after_measuring(tmp_path, monkeypatch):
    import shufflebench.files as files

    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))
    real = files.write_text_atomic

    def disk_full(path, text):
        if str(path).endswith("r.json"):
            raise UsageError(f"cannot write {path}: No space left on device")
        return real(path, text)

    monkeypatch.setattr(files, "write_text_atomic", disk_full)
    result = CliRunner().invoke(app, ["profile", "g1:resolution=8", "--format", "json", "--output",
                                      str(tmp_path / "r.json"), "--budget", "0.1", "--warmup", "0", "--min-runs", "3",
                                      "--min-time", "0"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["schema"] == "shufflebench.profile/2"  # the measurement is not lost
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot write") and "No space left on device" in line
