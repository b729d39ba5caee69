"""Result files on disk, for every command and report: JSON written atomically with a schema version (a crash never
leaves half a file), and read back only when its schema is the one expected."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import UsageError


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and an atomic rename, so a crash never
    leaves half a file; `UsageError` when the folder cannot be written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"file {str(path)!r} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not a readable JSON result: {exc}") from None
    schema = data.get("schema", "") if isinstance(data, dict) else ""
    if not str(schema).startswith(schema_prefix + "/"):
        raise UsageError(f"{path} has schema {schema!r}; expected {schema_prefix}/<version>")
    return data
