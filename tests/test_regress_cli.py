"""`shufflebench baseline save` and `shufflebench regress`: exit codes, one-line errors, reports, --against-rev.

Latency here never comes from real timing: `profile.measure_models` is replaced by the real interleaved
timing loop running fake models on a fake clock with seeded noise, so verdicts are deterministic.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shufflebench import profile as profile_stage
from shufflebench.cli import app
from shufflebench.errors import UsageError
from shufflebench.measure.environment import capture
from shufflebench.measure.sampling import SamplingPolicy, collect_interleaved
from shufflebench.measure.stats import Measurement
from shufflebench.regress.gitrev import RevisionRef, revision_ref, revision_worktree

runner = CliRunner()
TINY = "tests.fixtures.user_models:tiny_net"
ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A baseline of the tiny user net and a small zoo micro-network."""
    path = tmp_path_factory.mktemp("baseline") / "base.json"
    result = invoke("baseline", "save", TINY, "g1:resolution=8", "--input-shape", "1,3,8,8", "--output", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"saved exact proxies of 2 models to {path}")
    return path


def tampered(saved: Path, tmp_path: Path, edit) -> Path:
    data = json.loads(saved.read_text())
    edit(data)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(data))
    return path


# --- exact proxies against a file -----------------------------------------------------------------------------------


def test_unchanged_models_pass(saved):
    result = invoke("regress", TINY, "g1:resolution=8", "--input-shape", "1,3,8,8", "--baseline", str(saved))
    assert result.exit_code == 0, result.output
    assert "exact proxies: no change in 2 models" in result.stdout
    assert "PASS: no regression" in result.stdout


def test_no_candidate_checks_every_model_of_the_file(saved):
    result = invoke("regress", "--baseline", str(saved), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "shufflebench.regress/2"
    assert [m["candidate"] for m in data["models"]] == [TINY, "g1:ratio=1,scale=1,base=gpu,resolution=8"]
    assert data["changes"] == [] and data["outcome"] == {"exit_code": 0, "regression": False, "reasons": []}
    assert data["settings"]["proxies"] == "strict"
    assert all(m["latency"] is None for m in data["models"])


def test_a_changed_proxy_fails_with_a_clear_diff(saved, tmp_path):
    def edit(data):
        data["models"][0]["params"] -= 18  # as if the linear layer had lost its bias and 8 weights
    path = tampered(saved, tmp_path, edit)
    result = invoke("regress", "--baseline", str(path))
    assert result.exit_code == 1
    assert "exact proxies: 1 change" in result.stdout
    assert "params" in result.stdout and "216" in result.stdout and "234" in result.stdout and "+18" in result.stdout
    assert "FAIL: exact proxies: 1 change (--proxies strict)" in result.stdout
    # --proxies report lists the same change and passes.
    report = invoke("regress", "--baseline", str(path), "--proxies", "report", "--format", "json")
    assert report.exit_code == 0
    changes = json.loads(report.stdout)["changes"]
    assert [(c["model"], c["proxy"], c["baseline"], c["candidate"]) for c in changes] == [(TINY, "params", 216, 234)]


def test_a_model_of_the_file_that_cannot_be_built_is_a_usage_error(saved, tmp_path):
    def edit(data):
        data["models"].append(dict(data["models"][0], label="ghost.pkg:net"))
    path = tampered(saved, tmp_path, edit)
    result = invoke("regress", TINY, "--input-shape", "1,3,8,8", "--baseline", str(path))
    assert result.exit_code == 0  # named candidates: the file's other models are not asked about
    result = invoke("regress", "--baseline", str(path))
    assert result.exit_code == 2
    assert "cannot import 'ghost.pkg'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_zoo_models_added_and_removed(tmp_path):
    """What `.ci/run` checks (scripts/check-proxies.sh), with the committed baseline edited: a model registered
    but not in the file is added, a model in the file but not registered is removed."""
    committed = ROOT / "tests" / "baselines" / "zoo-proxies.json"

    def edit(data):
        v2 = next(r for r in data["models"] if r["model"] == "shufflenet_v2")
        data["models"].remove(v2)
        data["models"].append(dict(v2, label="retired_net:resolution=64", model="retired_net"))
    path = tampered(committed, tmp_path, edit)
    result = invoke("regress", "--zoo", "--resolution", "64", "--baseline", str(path), "--no-latency",
                    "--format", "json")
    assert result.exit_code == 1
    changes = json.loads(result.stdout)["changes"]
    assert [(c["model"], c["summary"]) for c in changes] == [
        ("shufflenet_v2:width=1.0,resolution=64", "model added (not in the baseline)"),
        ("retired_net:resolution=64", "model removed (only in the baseline)"),
    ]


def test_markdown_for_a_pull_request(saved, tmp_path):
    def edit(data):
        data["models"][1]["kernels"]["extended"]["by_op"]["com.microsoft:FusedConv"] = 19
        data["models"][1]["kernels"]["extended"]["total"] = 19
    path = tampered(saved, tmp_path, edit)
    md = tmp_path / "comment.md"
    result = invoke("regress", "--baseline", str(path), "--markdown", str(md))
    assert result.exit_code == 1
    text = md.read_text()
    assert text.startswith("### shufflebench regress: FAIL\n")
    assert "| g1:resolution=8 | kernels.extended | 19 | 20 | +1 (+5.26%) |" in text
    assert "|  | kernels.extended[com.microsoft:FusedConv] | 19 | 20 | +1 (+5.26%) |" in text
    assert "<summary>Environment</summary>" in text and "onnxruntime" in text


def test_committed_zoo_baseline_covers_every_registered_model():
    """The baseline `.ci/run` checks must name every registered model; adding one without it fails here first."""
    from shufflebench.regress.proxies import load_baseline
    from shufflebench.zoo.catalog import entries

    data = load_baseline(ROOT / "tests" / "baselines" / "zoo-proxies.json")
    stored = {record["model"] for record in data["models"]}
    assert stored == {entry.name for entry in entries()}
    assert all(record["input_shape"][2:] == [64, 64] for record in data["models"])


# --- latency, from the fake clock -----------------------------------------------------------------------------------


class FakeMachine:
    """Fake clock and fake models: ``latency x shared drift x own log-normal jitter`` per run, seeded."""

    def __init__(self, seed: int):
        self.now, self.drift, self.rng = 0.0, 0.0, random.Random(seed)

    def clock(self) -> float:
        return self.now

    def model(self, latency_s: float):
        def run_once() -> None:
            self.drift = max(-0.05, min(0.05, self.drift + self.rng.gauss(0, 0.003)))
            self.now += latency_s * math.exp(self.drift + self.rng.gauss(0, 0.02))

        return run_once


@pytest.fixture
def fake_latency(monkeypatch):
    """Replace `profile.measure_models`; ``state["slowdown"]`` sets how much slower the candidate is."""
    state = {"slowdown": 0.0, "calls": []}

    def measure_models(models, device, policy, *, on_progress=None, verify=True, breakdown=False):
        refs = [model.ref for model in models]
        state["calls"].append((refs, device, policy))
        machine = FakeMachine(seed=1)
        rounds = SamplingPolicy(warmup_runs=2, min_runs=200, max_runs=200, budget_s=1e9)
        latencies = [2.5e-3 * (1 + state["slowdown"])] + [2.5e-3] * (len(refs) - 1)
        samples = collect_interleaved([machine.model(s) for s in latencies], rounds, clock=machine.clock)
        env = capture(threads=device.threads, provider=device.provider)
        return [profile_stage.ProfileResult(ref.identity, device, None, Measurement.from_samples(s), env, {}, False)
                for ref, s in zip(refs, samples)]

    monkeypatch.setattr(profile_stage, "measure_models", measure_models)
    return state


@pytest.mark.parametrize("slowdown, exit_code, verdict", [(0.0, 0, "no significant change"), (0.03, 0, "slower"),
                                                          (0.10, 1, "slower"), (-0.2, 0, "faster")])
def test_latency_verdicts_and_exit_codes(fake_latency, slowdown, exit_code, verdict):
    fake_latency["slowdown"] = slowdown
    result = invoke("regress", "g1:resolution=8", "--against", "g1:resolution=8", "--budget", "3", "--format", "json")
    assert result.exit_code == exit_code, result.output
    data = json.loads(result.stdout)
    decision = data["models"][0]["latency"]["decision"]
    assert decision["verdict"] == verdict
    assert decision["ratio"] == pytest.approx(1 + slowdown, abs=0.01)
    assert decision["paired"] and decision["rounds"] == [200, 200]
    assert data["settings"]["proxies"] == "report" and data["changes"] == []
    refs, device, policy = fake_latency["calls"][0]
    assert [r.label for r in refs] == ["g1:ratio=1,scale=1,base=gpu,resolution=8"] * 2
    assert device.name == "cpu" and policy.budget_s == 3.0 and policy.min_runs == 50


def test_latency_table_and_markdown(fake_latency, tmp_path):
    fake_latency["slowdown"] = 0.10
    md = tmp_path / "pr.md"
    result = invoke("regress", TINY, "--input-shape", "1,3,8,8", "--against", "g1:resolution=8", "--threshold", "8%",
                    "--markdown", str(md))
    assert result.exit_code == 1
    assert "REGRESSION" in result.stdout and "beyond the 8.0% threshold" in result.stdout
    text = md.read_text()
    assert f"| {TINY} | g1:resolution=8 |" in text and "| REGRESSION |" in text
    assert "- **latency of tests.fixtures.user_models:tiny_net: slower: +" in text
    # A 15% threshold tolerates the same 10% slowdown.
    assert invoke("regress", TINY, "--input-shape", "1,3,8,8", "--against", "g1:resolution=8",
                  "--threshold", "15%").exit_code == 0


def test_output_file_is_the_json(fake_latency, tmp_path):
    out = tmp_path / "regress.json"
    result = invoke("regress", "g1:resolution=8", "--against", "g1:resolution=8", "--output", str(out),
                    "--format", "json")
    assert result.exit_code == 0
    assert json.loads(out.read_text()) == json.loads(result.stdout)


# --- bad input ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (("regress", "v2", "--against", "v2", "--threshold", "abc"), "--threshold 'abc' is not a percentage"),
        (("regress", "v2", "--against", "v2", "--threshold=-5%"), "--threshold '-5%' is negative"),
        (("regress", "v2", "--against", "v2", "--threshold", "5"), "is ambiguous; write 5% for a percentage"),
        (("regress", "v2", "--against", "v2", "--min-effect", "x"), "--min-effect 'x' is not a percentage"),
        (("regress", "v2"), "nothing to compare against: give --against MODEL, --against-rev REV or --baseline"),
        (("regress", "v2", "--baseline", "missing.json"), "file 'missing.json' does not exist"),
        (("regress", "v9", "--against", "v2"), "unknown model 'v9'"),
        (("regress", "v2", "--against", "v9"), "unknown model 'v9'"),
        (("regress", "v2", "v1", "--against", "v2", "--no-latency"), "--against compares one candidate; 2 were given"),
        (("regress", "v2", "--against-rev", "HEAD"), "--against-rev takes one package.module:callable"),
        (("regress", "v2", "--against", "v2", "--device", "gtx-1080ti"), "reference-only"),
        (("regress", "v2", "--against", "v2", "--input-shape", "1,3,8,8"), "--input-shape is for your own models"),
        (("baseline", "save", "--output", "x.json"), "no model given"),
        (("baseline", "save", TINY, "--output", "x.json", "--resolution", "64"), "--resolution applies to zoo models"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args, message):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_file_of_another_schema_is_refused(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"schema": "shufflebench.profile/1"}))
    result = invoke("regress", "v2", "--baseline", str(path))
    assert result.exit_code == 2
    assert "has schema 'shufflebench.profile/1'; expected shufflebench.baseline/<version>" in result.stderr


# --- --against-rev: a temporary git repository ----------------------------------------------------------------------

MODEL_PY = '''from torch import nn


def make():
    return nn.Sequential(nn.Conv2d(3, {channels}, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())
'''


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "HOME": str(repo), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def user_repo(tmp_path, monkeypatch):
    """A user's repository: ``revpkg.model:make`` has 8 channels at HEAD~1 and 16 in HEAD and the working tree."""
    repo = tmp_path / "repo"
    (repo / "revpkg").mkdir(parents=True)
    (repo / "revpkg" / "__init__.py").write_text("")
    git(repo, "init", "-q")
    for channels in (8, 16):
        (repo / "revpkg" / "model.py").write_text(MODEL_PY.format(channels=channels))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"{channels} channels")
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    yield repo
    for name in [n for n in sys.modules if n == "revpkg" or n.startswith("revpkg.")]:
        del sys.modules[name]


def worktrees(repo: Path) -> int:
    return git(repo, "worktree", "list").count("\n")


def test_old_revision_builds_the_old_code_and_leaves_modules_alone(user_repo, monkeypatch):
    import revpkg.model as current

    # No "" on sys.path (as under some launchers): the working tree must still not shadow the revision.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    path_before = list(sys.path)
    with revision_worktree("HEAD~1") as tree:
        assert worktrees(user_repo) == 2
        ref = revision_ref("revpkg.model:make", (1, 3, 8, 8), tree)
        assert isinstance(ref, RevisionRef) and ref.label == "revpkg.model:make@HEAD~1"
        assert ref.name == f"revpkg.model:make@{tree.commit[:12]}"
        old = ref.build()
        assert old[0].out_channels == 8
        assert sys.modules["revpkg.model"] is current  # the working tree's module is back in place
        assert current.make()[0].out_channels == 16
        assert sys.path == path_before
        folder = tree.root
    assert worktrees(user_repo) == 1
    assert not folder.exists()


def test_worktree_is_removed_when_the_comparison_fails(user_repo):
    with pytest.raises(RuntimeError, match="boom"):
        with revision_worktree("HEAD~1") as tree:
            folder = tree.root
            raise RuntimeError("boom")
    assert worktrees(user_repo) == 1 and not folder.exists()


def test_unknown_revision_and_no_repository(user_repo, tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="'nope' is not a commit of the repository"):
        with revision_worktree("nope"):
            pass
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(UsageError, match="needs a git repository"):
        with revision_worktree("HEAD", cwd=outside):
            pass


def test_missing_callable_at_the_revision(user_repo):
    with revision_worktree("HEAD~1") as tree:
        ref = revision_ref("revpkg.other:make", (1, 3, 8, 8), tree)
        with pytest.raises(UsageError, match=r"revpkg.other:make@HEAD~1: cannot import 'revpkg.other'"):
            ref.build()
    assert worktrees(user_repo) == 1


def test_regress_against_rev_end_to_end(user_repo, fake_latency):
    fake_latency["slowdown"] = 0.0
    result = invoke("regress", "revpkg.model:make", "--input-shape", "1,3,8,8", "--against-rev", "HEAD~1",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["models"][0]["baseline"] == "revpkg.model:make@HEAD~1"
    changes = {c["proxy"]: (c["baseline"], c["candidate"]) for c in data["changes"]}
    assert changes["params"] == (8 * 27, 16 * 27)  # the conv's weights at 8 and at 16 output channels
    refs = fake_latency["calls"][0][0]
    assert refs[0].build()[0].out_channels == 16
    assert isinstance(refs[1], RevisionRef)
    assert worktrees(user_repo) == 1


# --- latency stored in a baseline file ------------------------------------------------------------------------------


@pytest.fixture
def fake_single(monkeypatch):
    """Replace `profile.profile_model` (one model timed alone) by the fake clock; ``state["latency_s"]`` sets
    the true latency of the next model measured."""
    from shufflebench.measure.sampling import collect

    state = {"latency_s": 2.5e-3, "seed": 0}

    def profile_model(model, device, policy, *, on_progress=None, verify=True, breakdown=False):
        state["seed"] += 1
        machine = FakeMachine(seed=state["seed"])
        runs = SamplingPolicy(warmup_runs=2, min_runs=200, max_runs=200, budget_s=1e9)
        samples = collect(machine.model(state["latency_s"]), runs, clock=machine.clock)
        env = capture(threads=device.threads, provider=device.provider, optimization_level=device.optimization_level)
        return profile_stage.ProfileResult(model.identity, device, None, Measurement.from_samples(samples), env, {},
                                           False)

    monkeypatch.setattr(profile_stage, "profile_model", profile_model)
    return state


def test_stored_latency_is_used_only_with_the_same_fingerprint(fake_single, tmp_path):
    path = tmp_path / "with-latency.json"
    saved = invoke("baseline", "save", TINY, "--input-shape", "1,3,8,8", "--latency", "--output", str(path))
    assert saved.exit_code == 0, saved.output
    assert "saved exact proxies and latency of 1 model" in saved.stdout
    stored = json.loads(path.read_text())
    assert stored["device"]["name"] == "cpu" and len(stored["latency"][TINY]["samples_ms"]) == 200

    # Unpaired runs carry their own drift (the fake machine's is up to +-5%), so the slowdown here is a clear 30%.
    fake_single["latency_s"] = 2.5e-3 * 1.30
    result = invoke("regress", TINY, "--input-shape", "1,3,8,8", "--baseline", str(path), "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    latency = data["models"][0]["latency"]
    assert latency["source"] == "stored" and latency["decision"]["paired"] is False
    assert latency["decision"]["ratio"] == pytest.approx(1.30, abs=0.08) and latency["decision"]["regression"]
    assert any("stored in the baseline file" in w for w in data["warnings"])

    def other_machine(data):
        data["fingerprint"] = "0123456789abcdef"
    elsewhere = tampered(path, tmp_path, other_machine)
    result = invoke("regress", TINY, "--input-shape", "1,3,8,8", "--baseline", str(elsewhere), "--format", "json")
    assert result.exit_code == 0
    entry = json.loads(result.stdout)["models"][0]
    assert entry["latency"] is None and "fingerprint 0123456789abcdef differs" in entry["latency_skipped"]

    result = invoke("regress", TINY, "--input-shape", "1,3,8,8", "--baseline", str(path), "--device", "cpu-torch",
                    "--format", "json")
    assert result.exit_code == 0
    assert "measured on device cpu, this run uses cpu-torch" in json.loads(result.stdout)["models"][0]["latency_skipped"]


def test_src_layout_and_a_package_found_elsewhere(tmp_path, monkeypatch):
    """A src-layout repository is imported from src/ at the revision; a target that the revision does not hold
    but that imports from elsewhere is refused instead of comparing today's code with itself."""
    repo = tmp_path / "srcrepo"
    (repo / "src" / "srcpkg").mkdir(parents=True)
    (repo / "src" / "srcpkg" / "__init__.py").write_text("")
    git(repo, "init", "-q")
    for channels in (4, 12):
        (repo / "src" / "srcpkg" / "model.py").write_text(MODEL_PY.format(channels=channels))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"{channels} channels")
    monkeypatch.chdir(repo)
    try:
        with revision_worktree("HEAD~1") as tree:
            assert revision_ref("srcpkg.model:make", (1, 3, 8, 8), tree).build()[0].out_channels == 4
            # `tests` is not in this repository: it would come from the current project, so it is refused.
            with pytest.raises(UsageError, match="not from the revision's checkout"):
                revision_ref(TINY, (1, 3, 8, 8), tree).build()
    finally:
        for name in [n for n in sys.modules if n == "srcpkg" or n.startswith("srcpkg.")]:
            del sys.modules[name]
    assert worktrees(repo) == 1


def test_a_threshold_below_the_default_minimum_effect_lowers_it_instead_of_refusing():
    # Without latency: whether an A/A pair passes a 1% gate is a timing claim (the benchmarks' business), not this one.
    result = invoke("regress", TINY, "--against", TINY, "--input-shape", "1,3,8,8", "--threshold", "1%",
                    "--no-latency", "--format", "json")
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)["settings"]
    assert (settings["threshold"], settings["min_effect"]) == (0.01, 0.01)
    given = invoke("regress", TINY, "--against", TINY, "--input-shape", "1,3,8,8", "--threshold", "1%",
                   "--min-effect", "2%", "--no-latency")
    assert given.exit_code == 2 and "--min-effect 2.0% is above --threshold 1.0%" in given.stderr


def test_gate_settings_resolve_the_minimum_effect_in_the_library_too():
    from shufflebench.regress.gate import GateSettings

    assert GateSettings().effect == 0.02
    assert GateSettings(threshold=0.005).effect == 0.005  # a counted gate's threshold, built by a library user
    assert GateSettings(threshold=0.05, min_effect=0.01).effect == 0.01
    with pytest.raises(UsageError, match="--min-effect 2.0% is above --threshold 0.5%"):
        GateSettings(threshold=0.005, min_effect=0.02)
