"""``--against-rev``: your ``package.module:callable`` as it was at another git revision of your repository.

The revision is checked out with ``git worktree add --detach`` into a temporary folder (your working tree, index and
branches are left alone), and ``git worktree remove --force`` takes it away when the comparison ends, failures
included.

The old model is built IN THIS PROCESS, so both models run under the same interpreter, threads and onnxruntime. The
catch is Python's module cache: ``userpkg.model`` may already be imported from your working tree (the candidate), and
``import userpkg.model`` would then return that one instead of the old code. So each build of the old model:

1. takes out of ``sys.modules`` every module whose top-level package the worktree provides (``userpkg``,
   ``userpkg.model``, ``userpkg.layers``...), keeping them aside;
2. puts the worktree (the folder in it that matches your current directory, or its ``src/``) first on
   ``sys.path``, takes the working tree's own entries (the current directory, the repository, its ``src/``) off
   for the moment, and imports; a module that still comes from elsewhere (an installed copy) is refused;
3. calls the callable, then removes what it imported from the worktree and puts your modules back, with
   ``sys.path`` as it was.

The returned ``nn.Module`` keeps working: its classes hold their own module globals. Limits: shufflebench itself is
never swapped (its classes must stay the ones this process uses), and code with import-time side effects outside
Python modules (registering a custom op under a global name) runs twice.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import SetupError, UsageError
from ..models import ModelRef, import_callable

# shufflebench's own modules are never taken out of sys.modules: its error and data classes must stay the ones the
# running command uses, or `except ShufflebenchError` would stop catching.
_NEVER_SWAPPED = ("shufflebench",)


def _git(args: list[str], cwd: Path) -> str:
    if shutil.which("git") is None:
        raise SetupError("--against-rev needs git, and git is not on PATH")
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        message = " ".join(proc.stderr.split()) or f"git {' '.join(args)} failed with status {proc.returncode}"
        raise UsageError(message)
    return proc.stdout.strip()


@dataclass(frozen=True)
class Worktree:
    """A temporary checkout of ``revision`` (resolved to ``commit``); ``import_root`` is the folder in it that
    matches the current directory of the repository (where ``package.module`` is imported from)."""

    repo: Path
    root: Path
    revision: str
    commit: str
    import_root: Path


@contextmanager
def revision_worktree(revision: str, cwd: Path | None = None) -> Iterator[Worktree]:
    """Check ``revision`` out into a temporary worktree for the duration of the ``with`` block."""
    cwd = Path(cwd or Path.cwd()).resolve()
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], cwd)).resolve()
    except UsageError:
        raise UsageError(f"--against-rev needs a git repository; {cwd} is not in one") from None
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], top)
    except UsageError:
        raise UsageError(f"--against-rev {revision!r} is not a commit of the repository at {top}") from None
    folder = Path(tempfile.mkdtemp(prefix="shufflebench-rev-"))
    try:
        _git(["worktree", "add", "--detach", str(folder), commit], top)
        yield Worktree(top, folder, revision, commit, folder / cwd.relative_to(top))
    finally:
        # --force: the build leaves __pycache__ folders behind, which make the worktree "dirty".
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=top, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=top, capture_output=True)


def _provided_by(root: Path):
    """A predicate: does the module name's top-level package resolve inside ``root``?"""
    cache: dict[str, bool] = {}

    def provided(name: str) -> bool:
        top = name.partition(".")[0]
        if top not in cache:
            cache[top] = top not in _NEVER_SWAPPED and (
                importlib.machinery.PathFinder.find_spec(top, [str(root)]) is not None)
        return cache[top]

    return provided


def _import_root(top: str, root: Path) -> Path:
    """Where ``top`` lives in the worktree: ``root`` itself, or ``root/src`` for a src-layout repository."""
    for candidate in (root, root / "src"):
        if importlib.machinery.PathFinder.find_spec(top, [str(candidate)]) is not None:
            return candidate
    return root


def _call(target: str):
    """Import ``package.module:callable`` from the revision's checkout (not `models._call_target`: that one puts the
    current directory first on ``sys.path``, which here would shadow the checkout)."""
    return import_callable(target)


def _shadowing(entry: str, working: set[Path]) -> bool:
    """Is this ``sys.path`` entry the user's working tree ("" and "." are the current directory)?"""
    try:
        return Path(entry or ".").resolve() in working
    except OSError:
        return False


def build_at(target: str, import_root: Path, label: str, repo: Path | None = None):
    """Import ``target`` (``package.module:callable``) from ``import_root`` in isolation and return the module it
    builds; the interpreter's modules and ``sys.path`` are as before afterwards (see the module docstring).

    While it imports, ``sys.path`` holds the checkout first and none of the working tree's own entries (the
    current directory, ``repo`` and ``repo/src``), so nothing of today's code can be picked up by mistake.
    """
    module_name = target.partition(":")[0]
    top = module_name.partition(".")[0]
    if top in _NEVER_SWAPPED:
        raise UsageError(f"--against-rev cannot load {target} from another revision: shufflebench's own modules "
                         "are not swapped; export the old model to .onnx and use --against")
    root = _import_root(top, Path(import_root))
    working = {Path.cwd().resolve()}
    if repo is not None:
        working |= {Path(repo).resolve(), (Path(repo) / "src").resolve()}
    provided = _provided_by(root)
    kept = {name: module for name, module in sys.modules.items() if provided(name)}
    for name in kept:
        del sys.modules[name]
    saved_path = list(sys.path)
    sys.path[:] = [str(root)] + [entry for entry in saved_path if not _shadowing(entry, working)]
    importlib.invalidate_caches()
    try:
        model = _call(target)
        origin = getattr(sys.modules.get(module_name), "__file__", None)
    except UsageError as exc:
        raise UsageError(f"{label}: {exc}") from None
    finally:
        for name in [n for n in sys.modules if provided(n)]:
            del sys.modules[name]
        sys.modules.update(kept)
        sys.path[:] = saved_path
        importlib.invalidate_caches()
    # A package found elsewhere first (an installed copy) would silently compare today's code with itself.
    if origin is None or not Path(origin).resolve().is_relative_to(root.resolve()):
        raise UsageError(f"{label}: {module_name} was imported from {origin or 'nowhere'}, not from the revision's "
                         f"checkout; run from the folder that holds {top} (the repository root, or src/)")
    return model


@dataclass(frozen=True)
class RevisionRef(ModelRef):
    """A ``package.module:callable`` as it was at a git revision: builds the old code (see `build_at`).

    ``name`` carries the commit, so the export cache (keyed by name and content) never hands one revision's ONNX
    file to the other when only ``forward`` changed.
    """

    revision: str = ""
    commit: str = ""
    import_root: Path | None = None
    repo: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.target}@{self.commit[:12]}"

    def build(self):
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same seeded weights as ModelRef.build, so equal code gives equal weights
            return build_at(str(self.target), Path(str(self.import_root)), self.label, self.repo).eval()


def revision_ref(target: str, input_shape: tuple[int, ...], worktree: Worktree) -> RevisionRef:
    """The model ``target`` at the worktree's revision, with the candidate's input shape."""
    if not os.path.isdir(worktree.import_root):
        raise UsageError(f"{worktree.revision} has no folder {worktree.import_root.relative_to(worktree.root)} "
                         f"(the current directory within the repository)")
    return RevisionRef(label=f"{target}@{worktree.revision}", source="callable", input_shape=tuple(input_shape),
                       target=target, revision=worktree.revision, commit=worktree.commit,
                       import_root=worktree.import_root, repo=worktree.repo)
