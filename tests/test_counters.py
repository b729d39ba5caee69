"""Counted devices without the tools: the counts read back from callgrind and plugin files, the per-inference
isolation, the cycle estimate, the counted verdict of `regress`, device profiles, and the errors that name what to
install. Everything here runs on fake tool output; tests/test_counted_cli.py runs the real tools."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shufflebench import profile as profile_stage
from shufflebench.cli import app
from shufflebench.counters import build
from shufflebench.counters.callgrind import callgrind_options, parse_dump, read_dumps
from shufflebench.counters.figures import CYCLES_FORMULA, Counters, count_ratio, split_models
from shufflebench.counters.qemu_plugin import parse_marks, plugin_argument
from shufflebench.devices import load_profile, resolve_device
from shufflebench.errors import SetupError, UsageError
from shufflebench.measure import board_runner
from shufflebench.measure.environment import capture
from shufflebench.regress.counted import context_difference, judge_counts
from shufflebench.runners.targets import CallgrindPython, CountedArm

runner = CliRunner()

DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
part: {part}

desc: I1 cache: 32768 B, 64 B, 8-way associative
desc: Trigger: Client Request: shufflebench inference

events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
summary: {ir} 400 100 10 30 20 2 5 3

fn=whatever
0 1 2 3
"""


def events(instructions: int, loads: int = 400, stores: int = 100, l1: int = 60, ll: int = 10) -> dict[str, int]:
    return {"instructions": instructions, "loads": loads, "stores": stores, "l1_misses": l1, "ll_misses": ll}


# --- reading the tools' files ---------------------------------------------------------------------------------------


def test_a_callgrind_dump_becomes_canonical_events():
    # misses are summed over instruction fetches, reads and writes: L1 10+30+20, last level 2+5+3
    assert parse_dump(DUMP.format(part=1, ir=1000)) == events(1000, l1=60, ll=10)


def test_a_dump_of_another_trigger_is_ignored():
    assert parse_dump(DUMP.format(part=1, ir=5).replace("Client Request: shufflebench inference",
                                                        "Program termination")) is None


def test_dumps_are_read_in_numeric_order(tmp_path):
    out = tmp_path / "callgrind.out"
    for part, ir in ((1, 100), (2, 200), (10, 1000), (9, 900)):
        (tmp_path / f"callgrind.out.{part}").write_text(DUMP.format(part=part, ir=ir))
    out.write_text(DUMP.format(part=11, ir=7).replace("Client Request: shufflebench inference", "Program termination"))
    assert [e["instructions"] for e in read_dumps(out)] == [100, 200, 900, 1000]


def test_plugin_marks_pair_into_regions():
    text = "insn_count 1\nmark 100 10 5\nmark 150 20 7\nmark 1000 100 50\nmark 2000 300 80\nexit 2100 310 81\n"
    assert parse_marks(text) == [{"instructions": 50, "loads": 10, "stores": 2},
                                 {"instructions": 1000, "loads": 200, "stores": 30}]


@pytest.mark.parametrize("text, message", [("something else\n", "not an insn_count file"),
                                           ("insn_count 1\nmark 1 1 1\n", "started and never ended")])
def test_bad_plugin_files_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_marks(text)


def test_plugin_paths_cannot_hold_a_comma(tmp_path):
    assert plugin_argument(Path("/x/insn.so"), Path("/t/marks.txt")) == "/x/insn.so,out=/t/marks.txt"
    with pytest.raises(ValueError, match="comma"):
        plugin_argument(Path("/x/a,b.so"), Path("/t/m.txt"))


def test_callgrind_simulates_fixed_caches_not_the_hosts(tmp_path):
    options = callgrind_options(tmp_path / "out")
    assert "--instr-atstart=no" in options and "--cache-sim=yes" in options
    assert {"--I1=32768,8,64", "--D1=32768,8,64", "--LL=8388608,16,64"} <= set(options)


# --- one inference, isolated from start-up --------------------------------------------------------------------------


def test_regions_are_split_by_model_and_the_markers_cost_is_taken_off():
    overhead = {"instructions": 7, "loads": 2, "stores": 1}
    regions = [overhead] + [{"instructions": 107 + i, "loads": 12, "stores": 1} for i in range(3)] + \
              [{"instructions": 1007, "loads": 2, "stores": 0} for _ in range(3)]
    first, second = split_models(regions, models=2, runs=3)
    assert [r["instructions"] for r in first] == [100, 101, 102]
    assert first[0]["loads"] == 10 and first[0]["stores"] == 0
    assert second == [{"instructions": 1000, "loads": 0, "stores": 0}] * 3  # never below zero


def test_a_missing_region_is_an_error():
    with pytest.raises(ValueError, match="recorded 6 marked regions; expected 7"):
        split_models([{"instructions": 1}] * 6, models=2, runs=3)


def test_the_fewest_instructions_are_reported_with_their_own_events():
    counters = Counters("valgrind", (events(1050, loads=999), events(1000, loads=400), events(1000, loads=7)))
    assert counters.chosen == 1  # the first of equals
    assert counters.instructions == 1000 and counters.loads == 400
    assert counters.spread == pytest.approx(0.05)


def test_estimated_cycles_by_its_formula():
    # accesses 1000 + 400 + 100 = 1500; L1 hits 1500 - 60; LL hits 60 - 10; misses 10
    counters = Counters("valgrind", (events(1000),))
    assert counters.estimated_cycles == 1440 + 5 * 50 + 35 * 10 == 2040
    assert counters.primary == "estimated_cycles"
    assert "L1 hits + 5 x last-level hits + 35 x last-level misses" in CYCLES_FORMULA


def test_without_a_cache_simulation_instructions_stand_for_speed():
    counters = Counters("qemu-plugin", ({"instructions": 10, "loads": 4, "stores": 2},))
    assert counters.estimated_cycles is None and counters.primary == "instructions"
    assert counters.figures == {"instructions": 10, "loads": 4, "stores": 2}


def test_counters_round_trip_through_json():
    counters = Counters("valgrind", (events(1010), events(1000)), warmup=1, context={"tool": "valgrind-3.19.0"})
    data = json.loads(json.dumps(counters.to_dict()))
    assert data["instructions"] == 1000 and data["estimated_cycles"] == 2040 and data["chosen"] == 1
    assert Counters.from_dict(data) == counters


@pytest.mark.parametrize("runs, message", [((), "at least one"), (({"loads": 1},), "need instructions"),
                                           (({"instructions": -1},), "integers >= 0"),
                                           (({"instructions": 1}, {"instructions": 1, "loads": 1}), "same events")])
def test_bad_counts_are_refused(runs, message):
    with pytest.raises(ValueError, match=message):
        Counters("valgrind", runs)


def test_uneven_inferences_are_reported():
    assert Counters("qemu-plugin", ({"instructions": 100}, {"instructions": 103})).warnings[0].startswith("uneven")
    assert Counters("qemu-plugin", ({"instructions": 100}, {"instructions": 101})).warnings == ()


def test_a_counted_ratio_carries_the_reproducibility_band():
    fast, slow = Counters("qemu-plugin", ({"instructions": 1000},)), Counters("qemu-plugin", ({"instructions": 1500},))
    ratio = count_ratio(slow, fast)
    assert ratio.estimate == 1.5 and ratio.counted
    assert ratio.low == pytest.approx(1.5 / 1.001 ** 2) and ratio.high == pytest.approx(1.5 * 1.001 ** 2)


# --- the counted verdict ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("candidate, verdict, regression", [
    (1006, "slower", True),   # +0.6%: beyond the 0.5% threshold
    (1004, "slower", False),  # +0.4%: a change, tolerated
    (1000.5, "no significant change", False),  # +0.05%: within the counters' reproducibility
    (990, "faster", False),
])
def test_count_verdicts(candidate, verdict, regression):
    base = Counters("qemu-plugin", ({"instructions": 100000},))
    cand = Counters("qemu-plugin", ({"instructions": int(candidate * 100)},))
    decision = judge_counts(cand, base, threshold=0.005)
    assert decision.verdict == verdict and decision.regression is regression
    assert decision.figure == "instructions" and decision.ratio == pytest.approx(candidate / 1000)


def test_the_verdict_judges_estimated_cycles_where_simulated():
    base, cand = Counters("valgrind", (events(1000),)), Counters("valgrind", (events(1000, ll=20),))
    decision = judge_counts(cand, base, threshold=0.1)
    assert decision.figure == "estimated_cycles"
    assert decision.ratios["instructions"] == 1.0
    assert decision.ratio == pytest.approx((2040 + 300) / 2040)  # ten more misses: 10 x (35 - 5) cycles
    assert "+14.7% estimated cycles per inference (2,040 -> 2,340, counted), beyond the 10.0% threshold" in \
        decision.describe()


def test_counts_of_another_context_are_not_compared():
    here = {"tool": "valgrind-3.19.0", "onnxruntime": "1.32.0", "isa": "avx2", "python": "3.11.2"}
    assert context_difference(here, dict(here, python="3.12.0")) is None
    assert context_difference(here, dict(here, onnxruntime="1.33.0")) == "onnxruntime 1.32.0 vs 1.33.0"


# --- device profiles --------------------------------------------------------------------------------------------------


def test_shipped_counted_devices():
    cpu, arm, n1 = (resolve_device(n) for n in ("cpu-counted", "arm-counted", "arm-counted-n1"))
    assert (cpu.counter, arm.counter, n1.counter) == ("valgrind", "qemu-plugin", "qemu-plugin")
    assert (arm.qemu_cpu, n1.qemu_cpu) == ("cortex-a72", "neoverse-n1")
    assert cpu.counted and not cpu.emulated and arm.emulated and not resolve_device("cpu").counted
    assert cpu.to_dict()["counted"] is True
    table = runner.invoke(app, ["devices"])
    data = json.loads(runner.invoke(app, ["devices", "--format", "json"]).stdout)
    assert {d["name"] for d in data["devices"] if d["counted"]} == {"cpu-counted", "arm-counted", "arm-counted-n1"}
    assert "local, counted by" in table.stdout and "emulated, counted" in table.stdout


def _profile(tmp_path, **fields) -> Path:
    values = {"name": "mine", "description": "d", "kind": "cpu", "backend": "onnxruntime", "location": "local",
              **fields}
    path = tmp_path / "mine.toml"
    path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items()) + "\n")
    return path


@pytest.mark.parametrize("fields, message", [
    ({"counter": "perf"}, "counter: 'perf' is not allowed; allowed: none, valgrind, qemu-plugin"),
    ({"counter": "valgrind", "kind": "arm", "location": "emulated"},
     "counter: 'valgrind' needs kind = 'cpu' and location = 'local'"),
    ({"counter": "qemu-plugin"}, "counter: 'qemu-plugin' needs kind = 'arm' and location = 'emulated'"),
    ({"counter": "valgrind", "threads": 2}, "threads: 2 is not allowed with a counter"),
    ({"counter": "valgrind", "backend": "torch"}, "counting needs backend = \"onnxruntime\""),
    ({"counter": "valgrind", "counter_runs": 0}, "counter_runs: 0 must be a whole number >= 1"),
    ({"counter": "valgrind", "counter_warmup": -1}, "counter_warmup: -1 must be a whole number >= 0"),
])
def test_bad_counted_profiles_are_refused(tmp_path, fields, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_profile(_profile(tmp_path, **fields))


def test_threads_cannot_be_raised_on_a_counted_device():
    with pytest.raises(UsageError, match="--threads 2 is not allowed on cpu-counted: counted devices run one thread"):
        resolve_device("cpu-counted", threads=2)


# --- what to install ------------------------------------------------------------------------------------------------


@pytest.fixture
def empty_path(tmp_path, monkeypatch):
    """A PATH with only python on it (no valgrind, qemu, setarch or compiler)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.delenv("CC", raising=False)
    return folder


def test_missing_valgrind_names_the_package(empty_path, tmp_path):
    with pytest.raises(SetupError, match=r"valgrind not found; install valgrind \(Debian and Ubuntu: apt-get install "
                                         r"valgrind\), or run scripts/setup-counters.sh"):
        CallgrindPython(tmp_path / "out", executable=os.path.realpath(os.sys.executable)).check()


def test_missing_qemu_user_names_the_package(empty_path, tmp_path):
    with pytest.raises(SetupError, match=r"qemu-aarch64 not found; install qemu-user .*a static qemu cannot load "
                                         "plugins"):
        CountedArm(tmp_path / "marks.txt").check()


def test_a_qemu_that_cannot_load_plugins_is_refused(empty_path, tmp_path):
    for name, script in (("qemu-aarch64", "echo 'usage: qemu-aarch64 [options] program'"), ("setarch", "exit 0")):
        tool = empty_path / name
        tool.write_text(f"#!/bin/sh\n{script}\n")
        tool.chmod(0o755)
    with pytest.raises(SetupError, match="cannot load plugins"):
        CountedArm(tmp_path / "marks.txt").check()


def test_missing_compiler_names_the_package(empty_path, monkeypatch, tmp_path):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SetupError, match=r"no C compiler \(cc, gcc, clang\).*apt-get install gcc libc6-dev"):
        build.built("insn_count")


def test_a_missing_valgrind_header_names_the_package():
    stderr = "callgrind_marker.c:12:10: fatal error: valgrind/callgrind.h: No such file or directory"
    assert build._reason(stderr).startswith("valgrind/callgrind.h not found; install valgrind's headers")


def test_helpers_are_built_once_into_the_cache(tmp_path, monkeypatch):
    if build.shutil.which("cc") is None and build.shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path / "cache"))
    first = build.built("insn_count")
    assert first.parent == tmp_path / "cache" / "counters" and first.stat().st_size > 0
    stamp = first.stat().st_mtime_ns
    assert build.built("insn_count") == first and first.stat().st_mtime_ns == stamp


# --- the counted loop of the board runner ---------------------------------------------------------------------------


def test_counted_requests_are_checked():
    with pytest.raises(ValueError, match="runs=0 is not an integer >= 1"):
        board_runner.validate_count({"runs": 0, "marker": {"kind": "syscall"}})
    with pytest.raises(ValueError, match="allowed kinds: callgrind, syscall"):
        board_runner.validate_count({"marker": {"kind": "perf"}})
    with pytest.raises(ValueError, match="needs the path of its library"):
        board_runner.validate_count({"marker": {"kind": "callgrind"}})
    assert board_runner.validate_count({"marker": {"kind": "syscall"}}) == {
        "runs": 3, "warmup": 1, "marker": {"kind": "syscall"}}


def test_the_counted_loop_runs_without_a_tool(tiny_onnx):
    # Outside a counting tool the syscall marker only gets EBADF back: the loop runs and answers without samples.
    request = {"model": str(tiny_onnx), "inputs": {"x": {"shape": [1, 3, 16, 16], "dtype": "float32"}},
               "return_outputs": True}
    answer, status = board_runner.handle({"interleaved": [request], "policy": {},
                                          "count": {"runs": 2, "warmup": 1, "marker": {"kind": "syscall"}}})
    assert status == 0, answer
    result = answer["results"][0]
    assert result["counted"] == {"runs": 2, "warmup": 1} and "samples_ms" not in result and "samples_s" not in result
    assert board_runner.decode_outputs(result)["y"].shape == (1, 4, 16, 16)


# --- regress and baseline save on a counted device, with fake counts ------------------------------------------------


@pytest.fixture
def fake_counts(monkeypatch):
    """Replace `profile.measure_models` with counts: ``state["counts"]`` maps a label to its instructions."""
    state: dict = {"counts": {}, "calls": []}

    def measure_models(models, device, policy, *, on_progress=None, verify=True, breakdown=False):
        state["calls"].append([model.label for model in models])
        env = capture(threads=1, provider=device.provider)
        context = {"tool": "fake-counter 1", "device": device.name}
        return [profile_stage.ProfileResult(
            model.identity, device, None, None, env, {}, False,
            counters=Counters("qemu-plugin", ({"instructions": state["counts"][model.label]},), context=context))
            for model in models]

    monkeypatch.setattr(profile_stage, "measure_models", measure_models)
    return state


G1 = "g1:resolution=8"
G1_LABEL = "g1:ratio=1,scale=1,base=gpu,resolution=8"
G1_WIDE = "g1:ratio=12,scale=1,base=gpu,resolution=8"


@pytest.mark.parametrize("counts, exit_code, verdict", [(1_006_000, 1, "REGRESSION"), (1_004_000, 0, "slower"),
                                                        (1_000_000, 0, "no significant change")])
def test_counted_regress_is_deterministic_with_a_half_percent_default(fake_counts, counts, exit_code, verdict):
    fake_counts["counts"] = {G1_WIDE: counts, G1_LABEL: 1_000_000}
    result = runner.invoke(app, ["regress", "g1:resolution=8,ratio=12", "--against", G1, "--device", "arm-counted"])
    assert result.exit_code == exit_code, result.output
    assert f"| {verdict}" in result.stdout or verdict in result.stdout
    assert "threshold 0.5%" in result.stdout
    assert fake_counts["calls"] == [[G1_WIDE, G1_LABEL]]  # both counted in one process


def test_counted_regress_json(fake_counts):
    fake_counts["counts"] = {G1_WIDE: 1_020_000, G1_LABEL: 1_000_000}
    result = runner.invoke(app, ["regress", "g1:resolution=8,ratio=12", "--against", G1, "--device", "arm-counted",
                                 "--threshold", "3%", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    counts = data["models"][0]["counts"]
    assert counts["source"] == "counted" and data["models"][0]["latency"] is None
    assert counts["decision"]["ratio"] == pytest.approx(1.02) and counts["decision"]["verdict"] == "slower"
    assert not counts["decision"]["regression"] and data["settings"]["threshold"] == 0.03


def test_stored_counts_judge_a_candidate_without_counting_the_baseline(fake_counts, tmp_path):
    path = tmp_path / "base.json"
    fake_counts["counts"] = {G1_LABEL: 1_000_000}
    saved = runner.invoke(app, ["baseline", "save", G1, "--device", "arm-counted", "--output", str(path)])
    assert saved.exit_code == 0, saved.output
    stored = json.loads(path.read_text())
    assert stored["schema"] == "shufflebench.baseline/1"
    assert stored["counters"][G1_LABEL]["instructions"] == 1_000_000 and stored["device"]["name"] == "arm-counted"

    fake_counts["calls"].clear()
    fake_counts["counts"] = {G1_LABEL: 1_010_000}
    result = runner.invoke(app, ["regress", "--baseline", str(path), "--device", "arm-counted"])
    assert result.exit_code == 1, result.output
    assert fake_counts["calls"] == [[G1_LABEL]]  # only the candidate was counted
    assert "(stored)" in result.stdout and "+1.0% instructions per inference" in result.stdout

    # Another counting context (here: another tool version) is not compared.
    stored["counters"][G1_LABEL]["context"]["tool"] = "fake-counter 2"
    path.write_text(json.dumps(stored))
    result = runner.invoke(app, ["regress", "--baseline", str(path), "--device", "arm-counted"])
    assert result.exit_code == 0, result.output
    assert "counts not judged: stored counts not used: made with tool fake-counter 2 vs fake-counter 1" in \
        " ".join(result.stdout.split())


@pytest.mark.parametrize("args, message", [
    (("profile", G1, "--device", "cpu-counted", "--threads", "2"), "--threads 2 is not allowed on cpu-counted"),
    (("regress", G1, "--against", G1, "--device", "arm-counted", "--threshold", "abc"),
     "--threshold 'abc' is not a percentage"),
    (("baseline", "save", G1, "--device", "arm-counted", "--latency", "--output", "x.json"),
     "--latency times models; arm-counted counts them"),
])
def test_bad_counted_input_gives_one_line_and_exit_2(fake_counts, args, message):
    fake_counts["counts"] = {G1_LABEL: 1}
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_breakdown_is_refused_on_a_counted_device(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUFFLEBENCH_CACHE", str(tmp_path))
    result = runner.invoke(app, ["profile", G1, "--device", "cpu-counted", "--breakdown"])
    assert result.exit_code == 2
    assert "--breakdown times kernels with onnxruntime's profiler; cpu-counted counts" in result.stderr


def test_missing_valgrind_on_the_command_line(empty_path, tmp_path):
    os.symlink(os.sys.executable, empty_path / "python3")
    result = runner.invoke(app, ["profile", G1, "--device", "cpu-counted"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: valgrind not found; install valgrind")
    assert len(result.stderr.strip().splitlines()) == 1


def test_guidelines_compare_counted_figures(monkeypatch):
    from shufflebench import guidelines

    def measure_models(models, device, policy, *, on_progress=None, verify=True, breakdown=False):
        # the more the channels are unbalanced (larger ratio), the more instructions: G1 holds
        return [profile_stage.ProfileResult(
            model.identity, device, model.cost, None, capture(threads=1), {}, True,
            counters=Counters("qemu-plugin", ({"instructions": 1000 + 10 * model.identity.variant["ratio"]},)))
            for model in models]

    monkeypatch.setattr(guidelines, "measure_models", measure_models)
    result = runner.invoke(app, ["guidelines", "--only", "g1", "--widths", "1", "--device", "arm-counted",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "shufflebench.guidelines/2" and data["figure"] == "instructions"
    experiment = data["experiments"][0]
    assert experiment["verdict"]["result"] == "holds"
    assert experiment["verdict"]["speedups"]["1"]["estimate"] == pytest.approx(1120 / 1010)
    assert experiment["rows"][0]["measured"]["1"]["counted"] == {"instructions": 1010}
    table = runner.invoke(app, ["guidelines", "--only", "g1", "--widths", "1", "--device", "arm-counted"])
    assert "instructions counted per image, lower is faster" in " ".join(table.stdout.split())
    assert "(counted, ±0.2%)" in table.stdout


def test_bench_refuses_counted_devices(tmp_path):
    from shufflebench.bench import QUICK, Suite

    with pytest.raises(UsageError, match="bench.py times models; cpu-counted counts instructions instead"):
        Suite(resolve_device("cpu-counted"), tmp_path, QUICK)
