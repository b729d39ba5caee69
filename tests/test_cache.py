"""The export cache: bounded, least recently used first, shown and cleared by `shufflebench cache`."""

from __future__ import annotations

import json
import os
import time

import pytest
from typer.testing import CliRunner

from shufflebench import cache
from shufflebench.cli import app
from shufflebench.errors import UsageError


def _file(folder, name, size, age_s):
    path = folder / name
    path.write_bytes(b"x" * size)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_least_recently_used_exports_go_first_and_the_new_one_stays(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    folder = cache.cache_dir()
    folder.mkdir(parents=True)
    oldest = _file(folder, "a.onnx", 400, age_s=300)
    used = _file(folder, "b.onnx", 400, age_s=200)
    middle = _file(folder, "c.onnx", 400, age_s=100)
    cache.mark_used(used)  # a cache hit makes it the most recently used
    new = _file(folder, "d.onnx", 400, age_s=0)
    assert cache.evict(keep=new, limit=1000) == 800  # 1600 bytes held: the two least recently used go
    assert not oldest.exists() and not middle.exists() and used.exists() and new.exists()
    assert cache.evict(keep=new, limit=10) == 400 and new.exists()  # the file just made is never removed


def test_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE_LIMIT", "500MB")
    assert cache.cache_limit() == 500_000_000
    monkeypatch.setenv("SHUFFLEBENCH_CACHE_LIMIT", "2GiB")
    assert cache.cache_limit() == 2 << 30
    monkeypatch.setenv("SHUFFLEBENCH_CACHE_LIMIT", "lots")
    with pytest.raises(UsageError, match="SHUFFLEBENCH_CACHE_LIMIT='lots' is not a size; write e.g. 4GiB"):
        cache.cache_limit()
    monkeypatch.delenv("SHUFFLEBENCH_CACHE_LIMIT")
    assert cache.cache_limit() == 4 << 30


def test_exports_respect_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("SHUFFLEBENCH_CACHE_LIMIT", "1")  # one byte: each export leaves only itself
    runner = CliRunner()
    for model in ("g1:resolution=8", "g1:resolution=8,ratio=2"):
        result = runner.invoke(app, ["profile", model, "--budget", "0.05", "--warmup", "0", "--min-runs", "3",
                                     "--min-time", "0"])
        assert result.exit_code == 0, result.output
        assert len(list(cache.cache_dir().glob("*.onnx"))) == 1


def test_cache_command_shows_and_clears(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    cache.cache_dir().mkdir(parents=True)
    _file(cache.cache_dir(), "a.onnx", 1000, age_s=0)
    shown = CliRunner().invoke(app, ["cache", "--format", "json"])
    assert shown.exit_code == 0
    data = json.loads(shown.stdout)
    assert (data["files"], data["bytes"], data["limit_bytes"]) == (1, 1000, 4 << 30)
    cleared = CliRunner().invoke(app, ["cache", "--clear"])
    assert cleared.exit_code == 0 and "removed 1 exported model, 1000 B" in cleared.stdout
    assert not list(cache.cache_dir().glob("*.onnx"))
