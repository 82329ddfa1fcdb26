"""The result store: one SQLite file per sweep, one row per finished run.

Contract (what writers and readers may rely on):

- **One file**, ``DIR/runs.sqlite``, in WAL mode, so readers (reports, ``select --runs``) can
  read while the sweep writes. The file stores its schema version; a file written by a newer
  taskgrouper is refused rather than misread.
- **Single writer**: only the sweep driver process calls :meth:`RunStore.record`. Workers
  train and return results; they never open the store.
- **A run is written once, whole**: its ``runs`` row and all its per-task losses and metrics
  go in one transaction, after the run has finished. A crash, an exception or a kill during the
  write leaves the run absent, never half present; a reader sees a run completely or not at all.
- **Idempotent**: recording a run id that is already stored is a no-op when the record is the
  same (``finished_at`` aside) and an error when it differs.

Schema (version 2)::

    meta(key TEXT PRIMARY KEY, value TEXT)          -- schema_version, created_with
    runs(id TEXT PRIMARY KEY, "group" TEXT, tasks JSON, width REAL, fraction REAL,
         config JSON, cost_snt REAL, macs INTEGER, params INTEGER, cost JSON,
         train_samples INTEGER, wall_s REAL, best_epoch INTEGER, epochs_run INTEGER,
         finished_at TEXT, tags JSON, extra JSON)
    metrics(run_id -> runs.id, split TEXT in (val, test, constant_test), task TEXT,
            name TEXT, value REAL)                  -- one row per (run, split, task, metric)

Per-task results are a long table rather than JSON columns: metric names differ by task kind,
and the questions asked of a store ("the validation loss of task ``d`` in every candidate") are
plain indexed SQL over it, with no JSON functions. Things read whole (config, tags, the full
cost dict, what a run measured beyond metrics such as task affinities in ``extra``) are
JSON text. Version 1 files (no ``extra``) are migrated in place when opened. ``width`` and
``fraction`` (``model.width``,
``train.train_fraction``) are copied out of the config so reports can filter on them.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskgrouper.errors import InputError, TaskgrouperError

if TYPE_CHECKING:  # the store itself needs no torch
    from taskgrouper.train.trainer import TrainResult

__all__ = ["SCHEMA_VERSION", "STORE_FILE", "RunRecord", "RunSpec", "RunStore", "StoreError",
           "config_identity", "make_run_id"]

#: Version of the schema this code writes (and the newest it reads).
SCHEMA_VERSION = 2
#: Name of the store file inside a sweep folder.
STORE_FILE = "runs.sqlite"
#: Splits whose per-task results a record holds.
SPLITS = ("val", "test", "constant_test")

_FILE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,-]{0,199}")

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    "group"       TEXT NOT NULL,
    tasks         TEXT NOT NULL,
    width         REAL,
    fraction      REAL,
    config        TEXT NOT NULL,
    cost_snt      REAL,
    macs          INTEGER,
    params        INTEGER,
    cost          TEXT NOT NULL,
    train_samples INTEGER NOT NULL,
    wall_s        REAL NOT NULL,
    best_epoch    INTEGER NOT NULL,
    epochs_run    INTEGER NOT NULL,
    finished_at   TEXT NOT NULL,
    tags          TEXT NOT NULL,
    extra         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_by_group ON runs("group");
CREATE TABLE metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split  TEXT NOT NULL CHECK (split IN ('val', 'test', 'constant_test')),
    task   TEXT NOT NULL,
    name   TEXT NOT NULL,
    value  REAL,
    UNIQUE (run_id, split, task, name)
);
"""


class StoreError(TaskgrouperError):
    """A store problem; the message names the file (or run) and what would fix it."""


def config_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a config (JSON form) that define a run's results.

    Validated through :class:`~taskgrouper.config.ExperimentConfig` so defaults are filled in;
    the device, thread count, evaluation batch size and search section are dropped (the same
    run on another device is the same run): the trainer's own test of whether a run folder
    holds this run.
    """
    from taskgrouper.config import ExperimentConfig, run_identity  # the one "same run"

    return run_identity(ExperimentConfig.model_validate(dict(config)))


def make_run_id(group: str, config: Mapping[str, Any]) -> str:
    """A deterministic, readable run id: ``<group>-<tasks>-w<width>-<hash of the config>``.

    The hash covers :func:`config_identity`, so the id changes with anything that changes the
    results and stays the same across devices.
    """
    import hashlib

    identity = config_identity(config)
    digest = hashlib.sha1(_canonical(identity).encode()).hexdigest()[:10]
    tasks = "+".join(identity.get("tasks") or ["all"])
    return f"{group}-{tasks}-w{identity['model']['width']:g}-{digest}"


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep, before it runs.

    Attributes:
        id: Unique, deterministic id; also the run's folder name (``DIR/runs/<id>``), so it is
            restricted to letters, digits and ``. _ + = , -``.
        group: What the run is for, e.g. ``"candidate"``, ``"esa"``, ``"baseline"``.
        config: The :class:`~taskgrouper.config.ExperimentConfig` in JSON form.
        tags: Anything else a planner wants to find again (JSON-serialisable).
    """

    id: str
    group: str
    config: dict[str, Any]
    tags: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_PATTERN.fullmatch(self.id):
            raise InputError(f"run id {self.id!r} cannot be a folder name: use 1 to 200 letters, "
                             f"digits and . _ + = , - (starting with a letter or digit)")
        if not self.group:
            raise InputError(f"run {self.id}: group must be a non-empty string")

    @classmethod
    def create(cls, group: str, config: Mapping[str, Any],
               tags: Mapping[str, Any] | None = None) -> RunSpec:
        """A spec whose id is :func:`make_run_id` of ``group`` and ``config``."""
        return cls(make_run_id(group, config), group, dict(config), dict(tags or {}))


@dataclass
class RunRecord:
    """A finished run as the store keeps it: its spec plus what it measured.

    Attributes:
        id, group, config, tags: As in :class:`RunSpec`.
        tasks: The tasks the network predicts, in the run's order.
        val: Task -> {"loss": ..., metric: ...} on the validation split (best weights).
        test: The same on the test split.
        constant_test: The same for a constant predictor (training mean / majority class).
        cost: ``snt``, ``macs``, ``params`` (and whatever else the trainer measured).
        train_samples: Training samples processed (resumes included).
        wall_s: Training wall seconds (resumes included).
        best_epoch: Epoch (1-based) of the kept weights.
        epochs_run: Epochs trained.
        finished_at: ISO 8601 UTC time the run finished.
        extra: What the run measured beyond per-task metrics (e.g. ``{"affinity": ...}``).
    """

    id: str
    group: str
    config: dict[str, Any]
    tags: dict[str, Any]
    tasks: list[str]
    val: dict[str, dict[str, float]]
    test: dict[str, dict[str, float]]
    constant_test: dict[str, dict[str, float]]
    cost: dict[str, float]
    train_samples: int
    wall_s: float
    best_epoch: int
    epochs_run: int
    finished_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_result(cls, spec: RunSpec, result: TrainResult,
                    finished_at: str | None = None) -> RunRecord:
        """The record of ``spec`` once trained to ``result``.

        ``finished_at`` defaults to the time the run's ``metrics.json`` was written (so the
        same finished run gives the same record whenever it is read), else now.
        """
        if finished_at is None:
            metrics = Path(result.out_dir) / "metrics.json"
            stamp = metrics.stat().st_mtime if metrics.exists() else None
            finished_at = _iso(stamp)
        return cls(id=spec.id, group=spec.group, config=dict(spec.config), tags=dict(spec.tags),
                   tasks=list(result.tasks), val=result.val, test=result.test,
                   constant_test=result.constant_test, cost=dict(result.cost),
                   train_samples=int(result.train_samples), wall_s=float(result.wall_s),
                   best_epoch=int(result.best_epoch), epochs_run=int(result.epochs_run),
                   finished_at=finished_at, extra=dict(getattr(result, "extra", None) or {}))

    @property
    def spec(self) -> RunSpec:
        return RunSpec(self.id, self.group, self.config, self.tags)

    @property
    def width(self) -> float:
        """``model.width`` of the config (1.0 when unset)."""
        return float((self.config.get("model") or {}).get("width", 1.0))

    @property
    def fraction(self) -> float:
        """``train.train_fraction`` of the config (1.0 when unset)."""
        return float((self.config.get("train") or {}).get("train_fraction", 1.0))

    @property
    def val_losses(self) -> dict[str, float]:
        return {t: m["loss"] for t, m in self.val.items()}

    @property
    def test_losses(self) -> dict[str, float]:
        return {t: m["loss"] for t, m in self.test.items()}


class RunStore:
    """The SQLite store of finished runs of one sweep (see the module docstring's contract).

    Args:
        path: The store file, or a sweep folder (then ``<path>/runs.sqlite``). A path that
            does not exist yet is a folder unless it ends in ``.sqlite``, ``.sqlite3`` or
            ``.db``. Created, with its parent folders, if missing.

    Raises:
        StoreError: the file is not a SQLite database, not a taskgrouper store, or was written
            by a newer taskgrouper.

    Example::

        with RunStore("out/search") as store:
            for rec in store.records(group="candidate"):
                print(rec.id, rec.val_losses, rec.cost["snt"])
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir() or (not path.exists() and path.suffix not in _FILE_SUFFIXES):
            path = path / STORE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: no implicit transactions; record() opens its own.
        self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        try:
            self._open()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise StoreError(
                f"'{path}' is not a readable run store ({err}). Move it aside or delete it and "
                f"run the sweep again: finished runs are read back from their folders' "
                f"metrics.json without training") from None
        except BaseException:
            self._conn.close()
            raise

    def _open(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")  # raises DatabaseError on a non-SQLite file
        conn.execute("PRAGMA foreign_keys=ON")
        tables = self._tables()
        if not tables:  # a new file: create the schema (a writer lock only for this)
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not self._tables():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    from taskgrouper import __version__

                    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                     [("schema_version", str(SCHEMA_VERSION)),
                                      ("created_with", f"taskgrouper {__version__}")])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            tables = self._tables()
        if tables and "meta" not in tables:
            raise StoreError(f"'{self.path}' is a SQLite database but not a taskgrouper run "
                             f"store (it has no meta table); point at a sweep folder's "
                             f"runs.sqlite, or use a new output folder")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            raise StoreError(f"'{self.path}' has no valid schema_version in its meta table; it "
                             f"is damaged or not a taskgrouper run store") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"'{self.path}' has schema version {version}, newer than this "
                             f"taskgrouper reads (up to {SCHEMA_VERSION}); upgrade taskgrouper "
                             f"to read it")
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Bring an older store up to :data:`SCHEMA_VERSION` in one transaction."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if int(row[0]) == 1:  # version 2 added runs.extra
                conn.execute("ALTER TABLE runs ADD COLUMN extra TEXT NOT NULL DEFAULT '{}'")
                conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(f"'{self.path}' has schema version {version} and no "
                                 f"migration to {SCHEMA_VERSION} exists")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _tables(self) -> set[str]:
        return {r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore('{self.path}')"

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"run store '{self.path}' is closed")
        return self._conn

    # -- writing ---------------------------------------------------------------------------

    def record(self, record: RunRecord) -> bool:
        """Store a finished run, its row and all its metrics in one transaction.

        Returns:
            True if written, False if the same record (``finished_at`` aside) was stored.

        Raises:
            StoreError: a different record is stored under the same id.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            existing = self._get(record.id)
            if existing is not None:
                db.execute("ROLLBACK")
                if _comparable(existing) != _comparable(record):
                    fields = sorted(k for k, v in _comparable(record).items()
                                    if _comparable(existing).get(k) != v)
                    raise StoreError(
                        f"run '{record.id}' is already stored in '{self.path}' with different "
                        f"{', '.join(fields)}; give the new run another id, or use a new sweep "
                        f"folder")
                return False
            db.execute(
                'INSERT INTO runs (id, "group", tasks, width, fraction, config, cost_snt, macs, '
                "params, cost, train_samples, wall_s, best_epoch, epochs_run, finished_at, tags, "
                "extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, record.group, _dumps(record.tasks), record.width, record.fraction,
                 _dumps(record.config), _opt_float(record.cost.get("snt")),
                 _opt_int(record.cost.get("macs")), _opt_int(record.cost.get("params")),
                 _dumps(record.cost), int(record.train_samples), float(record.wall_s),
                 int(record.best_epoch), int(record.epochs_run), record.finished_at,
                 _dumps(record.tags), _dumps(record.extra)))
            db.executemany(
                "INSERT INTO metrics (run_id, split, task, name, value) VALUES (?, ?, ?, ?, ?)",
                _metric_rows(record))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return True

    # -- reading ---------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord | None:
        """The stored record of ``run_id``, or None."""
        return self._get(run_id)

    def __contains__(self, run_id: object) -> bool:
        return self._db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() \
            is not None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def done_ids(self) -> set[str]:
        """Ids of every stored (hence finished) run."""
        return {r[0] for r in self._db.execute("SELECT id FROM runs")}

    def records(self, group: str | None = None) -> list[RunRecord]:
        """All stored records (of one ``group`` if given), in the order they were stored."""
        where, params = ("", ()) if group is None else ('WHERE "group" = ?', (group,))
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM runs {where} ORDER BY rowid",
                                params).fetchall()
        metrics: dict[str, list[tuple]] = {}
        query = ("SELECT run_id, split, task, name, value FROM metrics "
                 f"WHERE run_id IN (SELECT id FROM runs {where}) ORDER BY rowid")
        for run_id, *rest in self._db.execute(query, params):
            metrics.setdefault(run_id, []).append(tuple(rest))
        return [_to_record(row, metrics.get(row[0], []), self.path) for row in rows]

    def _get(self, run_id: str) -> RunRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?",
                               (run_id,)).fetchone()
        if row is None:
            return None
        metrics = self._db.execute("SELECT split, task, name, value FROM metrics "
                                   "WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
        return _to_record(row, metrics, self.path)


_COLUMNS = ('id, "group", config, tags, tasks, cost, train_samples, wall_s, best_epoch, '
            "epochs_run, finished_at, extra")


def _to_record(row: tuple, metrics: Iterable[tuple], path) -> RunRecord:
    """A stored row as a record; a row that is not what :class:`RunStore` writes (edited by
    hand, another program) is a :class:`StoreError` naming the store, the run and the fix."""
    try:
        return _parse_row(row, metrics)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        run_id = row[0]
        raise StoreError(
            f"'{path}': the stored row of run '{run_id}' is malformed ({type(err).__name__}: "
            f"{err}); it was changed outside taskgrouper. Delete that run to retrain it "
            f"(sqlite3 '{path}' \"PRAGMA foreign_keys=ON; DELETE FROM runs WHERE id = "
            f"'{run_id}'\"), or restore the file") from None


def _parse_row(row: tuple, metrics: Iterable[tuple]) -> RunRecord:
    (run_id, group, config, tags, tasks, cost, train_samples, wall_s, best_epoch, epochs_run,
     finished_at, extra) = row
    tasks = json.loads(tasks)
    splits: dict[str, dict[str, dict[str, float]]] = {s: {} for s in SPLITS}
    for split, task, name, value in metrics:
        # SQLite has no NaN: it stores NULL, read back here as NaN.
        splits[split].setdefault(task, {})[name] = math.nan if value is None else float(value)
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise InputError(f"tasks must be a list of names, got {tasks!r}")
    mappings = {key: json.loads(text) for key, text in
                (("config", config), ("tags", tags), ("cost", cost), ("extra", extra))}
    for key, value in mappings.items():
        if not isinstance(value, dict):
            raise InputError(f"{key} must be a JSON object, got {type(value).__name__}")
    return RunRecord(id=run_id, group=group, tasks=tasks, val=splits["val"],
                     test=splits["test"], constant_test=splits["constant_test"],
                     train_samples=int(train_samples), wall_s=float(wall_s),
                     best_epoch=int(best_epoch), epochs_run=int(epochs_run),
                     finished_at=finished_at, **mappings)


def _metric_rows(record: RunRecord):
    """Rows of the metrics table, generated lazily (a bad value fails mid-insert)."""
    for split in SPLITS:
        for task, values in getattr(record, split).items():
            for name, value in values.items():
                yield record.id, split, task, name, float(value)


def _comparable(record: RunRecord) -> dict[str, str]:
    """Every field but ``finished_at``, as canonical JSON (NaN == NaN, -0.0 == 0.0)."""
    return {k: _canonical(v) for k, v in vars(record).items() if k != "finished_at"}


def _canonical(obj: Any) -> str:
    return json.dumps(_normalise(obj), sort_keys=True, allow_nan=True)


def _normalise(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj + 0.0  # -0.0 -> 0.0 (SQLite does not keep the sign of zero)
    if isinstance(obj, Mapping):
        return {str(k): _normalise(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_normalise(v) for v in obj]
    return obj


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, allow_nan=True)
    except TypeError as err:
        raise StoreError(f"cannot store a value that is not JSON-serialisable ({err}); keep "
                         f"configs and tags to str, numbers, lists and dicts") from None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _iso(timestamp: float | None) -> str:
    when = (_dt.datetime.now(_dt.timezone.utc) if timestamp is None
            else _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc))
    return when.isoformat(timespec="seconds")
