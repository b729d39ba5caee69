"""Result files on disk, for every command and report: JSON written atomically with a schema version (a crash never
leaves half a file), and read back only when its schema is the one expected."""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import UsageError


def read_text_file(path: str | Path, what: str) -> str:
    """The text of a file the user named (``what`` says which: "device profile", "config file"...); `UsageError`
    when it does not exist, is a folder, cannot be read or is not UTF-8 text."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {str(path)!r} is a folder; give a file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {str(path)!r} is not a text file") from None
    except OSError as exc:
        raise UsageError(f"{what} {str(path)!r} cannot be read: {exc.strerror}") from None


# A temporary file of a write that was killed half-way is this old before the next write to its target removes it
# (a live write takes well under a second).
_STALE_TMP_S = 60.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: Path) -> None:
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if time.time() - stale.stat().st_mtime > _STALE_TMP_S:
                stale.unlink()
        except OSError:
            pass


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and an atomic rename, so a crash never
    leaves half a file; the file gets the permissions of any new file (the umask's); `UsageError` when it cannot be
    written. A temporary file a killed write left beside ``path`` is removed."""
    path = Path(path)
    if is_dir(path):
        raise UsageError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private (0600)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_file(path: str | Path) -> bool:
    """``Path.is_file()`` for text a user gave that may be a path or something else: False, not OSError, for a
    string that cannot be a path at all (a model spec with a long grid of values is "File name too long")."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


def is_dir(path: str | Path) -> bool:
    """``Path.is_dir()`` with `is_file`'s tolerance."""
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def check_output_paths(outputs: Mapping[str, str | Path | None], inputs: Iterable[str | Path | None] = ()) -> None:
    """Before anything is measured, refuse outputs that would fail or destroy something: an output (named by its
    option, e.g. ``--output``) that is a folder or cannot be written (a file is tried in its folder), two outputs
    that are the same file, and an output that is one of the command's inputs (never overwritten)."""
    given = {option: Path(path) for option, path in outputs.items() if path is not None}
    existing_inputs = [Path(p) for p in inputs if p is not None and is_file(p)]
    seen: dict[Path, str] = {}
    for option, path in given.items():
        try:
            _check_output(option, path, given, existing_inputs, seen)
        except OSError as exc:  # e.g. a name too long for the file system
            raise UsageError(f"{option} {str(path)!r} cannot be written: {exc.strerror}") from None


def _check_output(option: str, path: Path, given: Mapping[str, Path], existing_inputs: list[Path],
                  seen: dict[Path, str]) -> None:
    """One output's checks (see `check_output_paths`); ``seen`` collects the outputs checked so far."""
    if path.is_dir():
        raise UsageError(f"{option} {str(path)!r} is a folder; give a file name")
    key = path.resolve()
    if key in seen or any(_same_file(path, p) for p in given.values() if p is not path):
        other = seen.get(key) or next(o for o, p in given.items() if p is not path and _same_file(path, p))
        raise UsageError(f"{option} and {other} both name {str(path)!r}; give each its own file")
    seen[key] = option
    for source in existing_inputs:
        if key == source.resolve() or _same_file(path, source):
            raise UsageError(f"{option} {str(path)!r} is an input of this command; refusing to overwrite it")
    _try_writing_beside(option, path)


def _try_writing_beside(option: str, path: Path) -> None:
    """Create and remove a file in the nearest existing folder of ``path`` (folders still missing are made only when
    the result is written), and check an existing ``path`` opens for writing: permission bits say nothing to root;
    a read-only file system says it only to a real write."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{option} {str(path)!r} cannot be written: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
        if path.exists():
            with open(path, "r+b"):
                pass
    except OSError as exc:
        raise UsageError(f"{option} {str(path)!r} cannot be written: {exc.strerror}") from None


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (`write_text_atomic`).

    ``data`` must carry a ``schema`` key (e.g. ``"shufflebench.profile/1"``) so readers can refuse or migrate.
    """
    if "schema" not in data:
        raise ValueError("result data must carry a 'schema' key")
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path, *, schema_prefix: str) -> dict[str, Any]:
    """Read a result file, refusing one whose schema is not ``schema_prefix/<version>``."""
    path = Path(path)
    text = read_text_file(path, "file")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not a readable JSON result: {exc}") from None
    schema = data.get("schema", "") if isinstance(data, dict) else ""
    if not str(schema).startswith(schema_prefix + "/"):
        raise UsageError(f"{path} has schema {schema!r}; expected {schema_prefix}/<version>")
    return data
