"""The results store of a sweep: one SQLite file (standard library), one row per architecture and device.

Tables (schema ``shufflebench.sweep-store/1``, also SQLite's ``user_version``):

* ``architectures``: one per architecture: its key, label, spec (`Architecture.to_dict`), counts (multiply-adds,
  params, deployed MAC bytes as columns, the whole `CostSummary` as JSON) or why counting failed;
* ``measurements``: one per architecture and device (primary key): ``ok`` with the latency summary as columns and
  the whole `Measurement` as JSON (raw samples and warm-up runs, unrounded, in ms), the environment, the session, the
  device profile, warnings, where it ran and how long it took; or ``failed`` with the reason; and the attempts;
* ``predictions``: one per architecture and device, for predict mode (latency from a calibrated model);
* the view ``rows``: architectures joined with their measurements and predictions, the schema beside each row.

Only the driver of a sweep writes, one row per transaction, as each result arrives: an interrupted sweep keeps
everything finished, and writes are upserts on the primary key, so a rerun or a retry never adds a second row.
Write-ahead logging lets ``sweep report`` read while a sweep writes.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..cost import CostSummary
from ..errors import UsageError
from ..measure.stats import Measurement
from .space import Architecture

if TYPE_CHECKING:
    from .work import DeviceRun

STORE_SCHEMA = "shufflebench.sweep-store/1"
STORE_VERSION = 1
STATUSES = ("ok", "failed")

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS architectures (
    key TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    spec TEXT NOT NULL,
    count_status TEXT CHECK (count_status IN ('ok', 'failed')),
    flops_madd INTEGER,
    params INTEGER,
    mac_bytes_deployed INTEGER,
    counts TEXT,
    count_attempts INTEGER NOT NULL DEFAULT 0,
    count_error TEXT,
    counted_at TEXT
);
CREATE TABLE IF NOT EXISTS measurements (
    architecture TEXT NOT NULL REFERENCES architectures(key),
    device TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    attempts INTEGER NOT NULL,
    error TEXT,
    median_ms REAL,
    ci95_low_ms REAL,
    ci95_high_ms REAL,
    runs INTEGER,
    effective_runs INTEGER,
    emulated INTEGER,
    latency TEXT,
    environment TEXT,
    session TEXT,
    device_profile TEXT,
    warnings TEXT,
    worker TEXT,
    started_at REAL,
    duration_s REAL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (architecture, device)
);
CREATE TABLE IF NOT EXISTS predictions (
    architecture TEXT NOT NULL REFERENCES architectures(key),
    device TEXT NOT NULL,
    predicted_ms REAL NOT NULL,
    predictor TEXT NOT NULL,
    predicted_at TEXT NOT NULL,
    PRIMARY KEY (architecture, device)
);
CREATE VIEW IF NOT EXISTS rows AS
    SELECT (SELECT value FROM meta WHERE key = 'schema') AS schema, a.key AS architecture, a.label, a.source, a.spec,
           a.flops_madd, a.params, a.mac_bytes_deployed, a.counts, d.device, m.status, m.attempts, m.error,
           m.median_ms, m.ci95_low_ms, m.ci95_high_ms, m.runs, m.effective_runs, m.emulated, m.latency,
           m.environment, m.warnings, m.worker, p.predicted_ms, p.predictor
    FROM architectures a
    JOIN (SELECT architecture, device FROM measurements UNION SELECT architecture, device FROM predictions) d
        ON d.architecture = a.key
    LEFT JOIN measurements m ON m.architecture = a.key AND m.device = d.device
    LEFT JOIN predictions p ON p.architecture = a.key AND p.device = d.device;
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class StoredRow:
    """One architecture on one device as the store holds it (a summary: the raw samples stay in the store, see
    `Store.measurement`). Latency in milliseconds; ``status`` is None for a device that has a prediction only, and
    ``device`` is None for an architecture that has counts only."""

    architecture: Architecture
    device: str | None
    cost: CostSummary | None
    status: str | None
    attempts: int
    error: str | None
    median_ms: float | None
    ci95_ms: tuple[float, float] | None
    runs: int | None
    emulated: bool
    warnings: tuple[str, ...]
    predicted_ms: float | None = None

    @property
    def key(self) -> str:
        return self.architecture.key

    @property
    def label(self) -> str:
        return self.architecture.label or self.architecture.target

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data (what ``sweep report --format json`` lists)."""
        return {"architecture": self.key, "label": self.label, "spec": self.architecture.to_dict(),
                "device": self.device, "flops_madd": self.cost.flops_madd if self.cost else None,
                "params": self.cost.params if self.cost else None,
                "mac_bytes_deployed": self.cost.mac_bytes["deployed"] if self.cost else None,
                "status": self.status, "attempts": self.attempts, "error": self.error, "median_ms": self.median_ms,
                "ci95_ms": list(self.ci95_ms) if self.ci95_ms else None, "runs": self.runs, "emulated": self.emulated,
                "warnings": list(self.warnings), "predicted_ms": self.predicted_ms}


class Store:
    """A sweep's SQLite file, opened (and created with its tables when new); `UsageError` for a file that is not a
    store of this schema. Use as a context manager, or call `close`."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UsageError(f"store {str(self.path)!r} does not exist; run `shufflebench sweep ... --store "
                             f"{self.path}` first")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{self.path} is not a sweep store (SQLite said: {exc})") from None
        if tables and version != STORE_VERSION:
            self._db.close()
            raise UsageError(f"{self.path} is a store of version {version}; this shufflebench reads "
                             f"{STORE_SCHEMA} (version {STORE_VERSION}) only")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        if not tables:
            with self._db:
                self._db.executescript(_TABLES)
                self._db.execute(f"PRAGMA user_version = {STORE_VERSION}")
                self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                     [("schema", STORE_SCHEMA), ("created_at", _now())])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- architectures and their counts ----------------------------------------------------------------------

    def add_architectures(self, architectures: Iterable[Architecture]) -> None:
        """File the architectures (those already there are left as they are)."""
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO architectures (key, label, source, spec) VALUES (?, ?, ?, ?)",
                [(a.key, a.label or a.target, a.source, json.dumps(a.to_dict())) for a in architectures])

    def counts(self, keys: Iterable[str] | None = None) -> dict[str, CostSummary]:
        """The counts of every counted architecture (of ``keys`` only, when given)."""
        rows = self._db.execute("SELECT key, counts FROM architectures WHERE count_status = 'ok'").fetchall()
        wanted = None if keys is None else set(keys)
        return {key: CostSummary.from_dict(json.loads(counts)) for key, counts in rows
                if wanted is None or key in wanted}

    def put_counts(self, key: str, cost: CostSummary, attempts: int = 1) -> None:
        """Record the counts of an architecture (replacing an earlier failure)."""
        with self._db:
            self._db.execute(
                "UPDATE architectures SET count_status = 'ok', flops_madd = ?, params = ?, mac_bytes_deployed = ?, "
                "counts = ?, count_attempts = count_attempts + ?, count_error = NULL, counted_at = ? WHERE key = ?",
                (cost.flops_madd, cost.params, cost.mac_bytes["deployed"], json.dumps(cost.to_dict()), attempts,
                 _now(), key))

    def put_count_failure(self, key: str, error: str, attempts: int) -> None:
        """Record why an architecture could not be counted (counts it had before are kept)."""
        with self._db:
            self._db.execute(
                "UPDATE architectures SET count_status = coalesce(count_status, 'failed'), "
                "count_attempts = count_attempts + ?, count_error = ?, counted_at = ? WHERE key = ?",
                (attempts, error, _now(), key))

    def count_failures(self) -> dict[str, str]:
        """Architecture key -> why counting it failed."""
        return dict(self._db.execute(
            "SELECT key, count_error FROM architectures WHERE count_status = 'failed'").fetchall())

    # --- measurements ----------------------------------------------------------------------------------------

    def measured(self, device: str) -> set[str]:
        """Keys of the architectures measured on ``device`` (failed ones are not: a rerun tries them again)."""
        return {row[0] for row in self._db.execute(
            "SELECT architecture FROM measurements WHERE device = ? AND status = 'ok'", (device,))}

    def put_measurement(self, key: str, run: "DeviceRun", attempts: int = 1) -> None:
        """Record a measurement of ``key`` on the run's device: insert, or replace the row (attempts add up)."""
        result, m = run.result, run.result.timed
        ci = m.ci95
        values = {
            "status": "ok", "error": None, "median_ms": m.median * 1e3,
            "ci95_low_ms": ci[0] * 1e3 if ci else None, "ci95_high_ms": ci[1] * 1e3 if ci else None,
            "runs": m.runs, "effective_runs": m.effective_runs, "emulated": int(result.emulated),
            "latency": json.dumps(m.to_dict()), "environment": json.dumps(result.environment),
            "session": json.dumps(result.session), "device_profile": json.dumps(result.device.to_dict()),
            "warnings": json.dumps(list(result.warnings)), "worker": run.worker, "started_at": run.started_at,
            "duration_s": run.duration_s,
        }
        self._upsert(key, result.device.name, attempts, values)

    def put_measurement_failure(self, key: str, device: str, error: str, attempts: int) -> None:
        """Record that ``key`` could not be measured on ``device`` and why; an earlier good row is kept as it is."""
        with self._db:
            self._db.execute(
                "INSERT INTO measurements (architecture, device, status, attempts, error, updated_at) "
                "VALUES (?, ?, 'failed', ?, ?, ?) ON CONFLICT (architecture, device) DO UPDATE SET "
                "attempts = attempts + excluded.attempts, updated_at = excluded.updated_at, "
                "error = CASE status WHEN 'ok' THEN error ELSE excluded.error END",
                (key, device, attempts, error, _now()))

    def _upsert(self, key: str, device: str, attempts: int, values: dict[str, Any]) -> None:
        names = list(values)
        assignments = ", ".join(f"{name} = excluded.{name}" for name in names)
        with self._db:
            self._db.execute(
                f"INSERT INTO measurements (architecture, device, attempts, updated_at, {', '.join(names)}) "
                f"VALUES (?, ?, ?, ?, {', '.join('?' for _ in names)}) ON CONFLICT (architecture, device) DO UPDATE "
                f"SET attempts = attempts + excluded.attempts, updated_at = excluded.updated_at, {assignments}",
                (key, device, attempts, _now(), *values.values()))

    def measurement(self, key: str, device: str) -> Measurement | None:
        """The full measurement (raw samples, warm-up runs, policy) of ``key`` on ``device``, or None."""
        row = self._db.execute("SELECT latency FROM measurements WHERE architecture = ? AND device = ? AND "
                               "status = 'ok'", (key, device)).fetchone()
        return Measurement.from_dict(json.loads(row[0])) if row else None

    def environment(self, key: str, device: str) -> dict[str, Any] | None:
        """The environment the measurement of ``key`` on ``device`` ran in, or None."""
        row = self._db.execute("SELECT environment FROM measurements WHERE architecture = ? AND device = ? AND "
                               "status = 'ok'", (key, device)).fetchone()
        return json.loads(row[0]) if row else None

    # --- predictions (predict mode) --------------------------------------------------------------------------

    def predicted(self, device: str) -> set[str]:
        """Keys of the architectures with a prediction for ``device``."""
        return {row[0] for row in self._db.execute(
            "SELECT architecture FROM predictions WHERE device = ?", (device,))}

    def put_prediction(self, key: str, device: str, predicted_ms: float, predictor: str) -> None:
        """Record a predicted latency of ``key`` on ``device`` (``predictor`` names the model that made it)."""
        with self._db:
            self._db.execute(
                "INSERT INTO predictions VALUES (?, ?, ?, ?, ?) ON CONFLICT (architecture, device) DO UPDATE SET "
                "predicted_ms = excluded.predicted_ms, predictor = excluded.predictor, "
                "predicted_at = excluded.predicted_at", (key, device, predicted_ms, predictor, _now()))

    # --- reading ---------------------------------------------------------------------------------------------

    def architectures(self) -> list[tuple[Architecture, CostSummary | None]]:
        """Every architecture in the store, in the order filed, with its counts (None when not counted)."""
        rows = self._db.execute("SELECT spec, counts FROM architectures ORDER BY rowid").fetchall()
        return [(Architecture.from_dict(json.loads(spec)), CostSummary.from_dict(json.loads(counts)) if counts
                 else None) for spec, counts in rows]

    def rows(self, devices: Sequence[str] = ()) -> list[StoredRow]:
        """Every architecture x device row (of ``devices`` only, when given), by device then filing order."""
        query = ("SELECT r.spec, r.counts, r.device, r.status, r.attempts, r.error, r.median_ms, r.ci95_low_ms, "
                 "r.ci95_high_ms, r.runs, r.emulated, r.warnings, r.predicted_ms FROM rows r "
                 "JOIN architectures a ON a.key = r.architecture")
        params: list[str] = []
        if devices:
            query += f" WHERE r.device IN ({', '.join('?' for _ in devices)})"
            params = list(devices)
        found = []
        for (spec, counts, device, status, attempts, error, median, low, high, runs, emulated, warnings,
             predicted) in self._db.execute(query + " ORDER BY r.device, a.rowid", params):
            found.append(StoredRow(
                Architecture.from_dict(json.loads(spec)), device,
                CostSummary.from_dict(json.loads(counts)) if counts else None, status, attempts or 0, error, median,
                (low, high) if low is not None and high is not None else None, runs, bool(emulated),
                tuple(json.loads(warnings)) if warnings else (), predicted))
        return found

    def devices(self) -> list[str]:
        """Every device with a row, by name."""
        return [row[0] for row in self._db.execute(
            "SELECT device FROM measurements UNION SELECT device FROM predictions ORDER BY 1")]
