"""The engine's SQLite database: connections, schema, the tenant id and issued tokens.

Layout (why): `runs` is append-only in arrival order (`seq`), so accepting a call costs one sequential insert per
run. The lookup tables `run_ids` and `run_metadata` are keyed by values that arrive in random order; B-tree inserts
in random order dirty a page each, so they are built apart from the calls: the writer fills them when no call is
waiting (`index_state.indexed_upto`), and readers scan the not yet indexed tail, so results are always complete.
Both lookup tables lead with `bucket = seq >> BUCKET_BITS`: each bucket is a small subtree filled in one sorted
batch (appends, not page-by-page random writes, even with millions of runs); a lookup probes every bucket
(about 60 probes per million runs). `commits` has one row per transaction and maps `received_at` to `seq` ranges
(the writer keeps `received_at` non-decreasing). `workflows` holds the names runs were received for;
`registered_workflows` the workflows the engine KNOWS (declared when it starts, or registered later), in order of
registration: with none, the engine is a recorder that accepts every name (see Engine).

Dispatch (schema 4, see engine/dispatch/): `workflow_versions` holds what workers registered with PutWorkflow (one
row per distinct definition of a name; the newest is the one new runs use). `dispatch_state.materialized_upto` is the
last `runs.seq` the scheduler has looked at: runs of a workflow with a version get a `run_state` row (status, times,
the version they run) and one `tasks` row per task (the queue, the leases and the outcomes, attempt by attempt
overwritten in place: `retry_count` counts the task's attempts after the first); runs of a workflow
without a version are left alone until one is registered. `workers` keeps registered workers across restarts (a
worker reconnects with its id), `task_logs` what tasks logged (EventsService/PutLog). A replay (REST tasks/replay)
starts a task's attempts again: `retry_count` keeps counting (it is what workers and listings see, as on Hatchet)
and `replay_base` records where the retry policy's count restarted (`retry_count - replay_base` retries used).
`run_state_status` (status, seq) and `run_state_version` (version_id, status, seq) let the REST task-metrics count
a million runs by status from an index alone (all runs, or a workflow's).

Triggers (schema 6, see dispatch/triggers.py): `crons` (created over REST, method API, or declared in a workflow
version's `cron_triggers`, method DEFAULT with an empty name; unique by workflow, expression and name; `next_at` is
the next firing, epoch seconds), `schedules` (one run at `trigger_at`; a row is deleted when it fires, as on
Hatchet) and `events` (what EventsService/Push stored; `events_newest` is the REST listing's order, newest first,
and is created by any engine that opens an older schema 6 database). The runs they start are appended to `runs`
by the scheduler, in the transaction that fires them.

Versions: 1 lookup tables without buckets; 2 bucketed lookup tables; 3 adds `registered_workflows`; 4 adds the
dispatch tables; 5 adds `tasks.replay_base` and the `run_state_status` and `run_state_version` indexes; 6 adds
`crons`, `schedules` and `events`.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from hatchet_client.engine.errors import EngineError

SCHEMA_VERSION = 6
BUCKET_BITS = 14  # 16384 runs per lookup bucket
BUSY_TIMEOUT_SECONDS = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  token_id TEXT PRIMARY KEY, issued_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS runs (
  seq INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL,
  workflow_name TEXT NOT NULL,
  input TEXT NOT NULL,
  additional_metadata TEXT NOT NULL,
  priority INTEGER
);
CREATE TABLE IF NOT EXISTS commits (
  first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commits_received_at ON commits (received_at);
CREATE TABLE IF NOT EXISTS workflows (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS registered_workflows (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, registered_at TEXT NOT NULL, source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_ids (
  bucket INTEGER NOT NULL, run_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (bucket, run_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_metadata (
  bucket INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (bucket, key, value, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_upto INTEGER NOT NULL);
INSERT OR IGNORE INTO index_state (id, indexed_upto) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS workflow_versions (
  seq INTEGER PRIMARY KEY, version_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, digest TEXT NOT NULL,
  definition TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS workflow_versions_name ON workflow_versions (name, seq);
CREATE TABLE IF NOT EXISTS workers (
  worker_id TEXT PRIMARY KEY, name TEXT NOT NULL, actions TEXT NOT NULL, slots TEXT NOT NULL,
  registered_at TEXT NOT NULL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_state (
  seq INTEGER PRIMARY KEY, version_id TEXT NOT NULL, status TEXT NOT NULL,
  started_at REAL, finished_at REAL, error TEXT, retry_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tasks (
  task_id INTEGER PRIMARY KEY, run_seq INTEGER NOT NULL, readable_id TEXT NOT NULL, external_id TEXT NOT NULL UNIQUE,
  action TEXT NOT NULL, is_on_failure INTEGER NOT NULL, status TEXT NOT NULL, priority INTEGER NOT NULL,
  retry_count INTEGER NOT NULL DEFAULT 0, queued_at REAL, available_at REAL, schedule_deadline REAL,
  worker_id TEXT, assigned_at REAL, started_at REAL, timeout_at REAL, finished_at REAL, output TEXT, error TEXT,
  replay_base INTEGER NOT NULL DEFAULT 0, UNIQUE (run_seq, readable_id)
);
CREATE INDEX IF NOT EXISTS run_state_status ON run_state (status, seq);
CREATE INDEX IF NOT EXISTS run_state_version ON run_state (version_id, status, seq);
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (action, priority DESC, task_id) WHERE status = 'QUEUED';
CREATE INDEX IF NOT EXISTS tasks_backoff ON tasks (available_at) WHERE status = 'QUEUED';
CREATE INDEX IF NOT EXISTS tasks_schedule ON tasks (schedule_deadline) WHERE status = 'QUEUED';
CREATE INDEX IF NOT EXISTS tasks_timeout ON tasks (timeout_at) WHERE status IN ('ASSIGNED', 'RUNNING');
CREATE INDEX IF NOT EXISTS tasks_worker ON tasks (worker_id) WHERE status IN ('ASSIGNED', 'RUNNING');
CREATE TABLE IF NOT EXISTS task_logs (
  id INTEGER PRIMARY KEY, task_external_id TEXT NOT NULL, retry_count INTEGER, created_at TEXT NOT NULL,
  level TEXT, message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS crons (
  seq INTEGER PRIMARY KEY, cron_id TEXT NOT NULL UNIQUE, workflow_name TEXT NOT NULL, name TEXT NOT NULL,
  expression TEXT NOT NULL, input TEXT NOT NULL, additional_metadata TEXT NOT NULL, priority INTEGER,
  method TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL, next_at REAL,
  UNIQUE (workflow_name, expression, name)
);
CREATE INDEX IF NOT EXISTS crons_due ON crons (next_at) WHERE enabled = 1;
CREATE TABLE IF NOT EXISTS schedules (
  seq INTEGER PRIMARY KEY, schedule_id TEXT NOT NULL UNIQUE, workflow_name TEXT NOT NULL, trigger_at REAL NOT NULL,
  input TEXT NOT NULL, additional_metadata TEXT NOT NULL, priority INTEGER, method TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (trigger_at);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, key TEXT NOT NULL, payload TEXT NOT NULL,
  additional_metadata TEXT, priority INTEGER, scope TEXT, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_newest ON events (created_at DESC, seq);
CREATE TABLE IF NOT EXISTS dispatch_state (id INTEGER PRIMARY KEY CHECK (id = 1), materialized_upto INTEGER NOT NULL);
INSERT OR IGNORE INTO dispatch_state (id, materialized_upto) VALUES (1, 0);
"""


def connect(path: Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any one thread at a time."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB
    return conn


def private_file(path: Path) -> None:
    """Make the database file readable by its owner only, before SQLite opens it: it stores run inputs, secrets
    included, as Hatchet does. SQLite gives its -wal and -shm files the permissions of the database file."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def init_database(path: Path) -> str:
    """Create the database (and its directory) if needed; return its tenant id."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        private_file(path)
        conn = connect(path)
    except (OSError, sqlite3.Error) as exc:
        raise EngineError(f"cannot open the engine database {path}: {exc}") from None
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise EngineError(f"the engine database {path} was made by a newer version (schema {version})")
        conn.execute("PRAGMA journal_mode=WAL")
        if version == 1:  # lookup tables without buckets: they are derived data, rebuilt from `runs`
            conn.executescript(
                "BEGIN IMMEDIATE; DROP TABLE IF EXISTS run_ids; DROP TABLE IF EXISTS run_metadata;"
                "UPDATE index_state SET indexed_upto = 0; COMMIT;"
            )
        _add_replay_base(conn)
        tenant = str(uuid.uuid4())  # kept only by the first process to create the database
        conn.executescript(
            "BEGIN IMMEDIATE;"
            + _SCHEMA
            + f"INSERT OR IGNORE INTO settings (key, value) VALUES ('tenant_id', '{tenant}');"
            + f"PRAGMA user_version={SCHEMA_VERSION};"
            + "COMMIT;"
        )
        row = conn.execute("SELECT value FROM settings WHERE key = 'tenant_id'").fetchone()
        return str(row[0])
    except sqlite3.Error as exc:
        raise EngineError(f"cannot initialise the engine database {path}: {exc}") from None
    finally:
        conn.close()


def _add_replay_base(conn: sqlite3.Connection) -> None:
    """Schema 5: a schema 4 `tasks` table gets `replay_base` (before the schema script, which only creates)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
        if columns and "replay_base" not in columns:
            conn.execute("ALTER TABLE tasks ADD COLUMN replay_base INTEGER NOT NULL DEFAULT 0")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def register_token(path: Path, token_id: str, issued_at: float, expires_at: float) -> None:
    conn = connect(path)
    try:
        conn.execute(
            "INSERT INTO tokens (token_id, issued_at, expires_at) VALUES (?, ?, ?)",
            (token_id, iso_utc(issued_at), iso_utc(expires_at)),
        )
    except sqlite3.Error as exc:
        raise EngineError(f"cannot record the token in {path}: {exc}") from None
    finally:
        conn.close()


WorkflowSource = Literal["declared", "registered"]


def check_workflow_name(name: object) -> str:
    """A workflow name the engine can know: a non-empty string without NUL. EngineError otherwise."""
    if not isinstance(name, str) or not name:
        raise EngineError(f"a workflow name must be a non-empty string, not {name!r}")
    if "\x00" in name:
        raise EngineError(f"a workflow name cannot contain NUL: {name!r}")
    return name


def insert_workflows(conn: sqlite3.Connection, names: Iterable[str], source: WorkflowSource) -> list[str]:
    """Record workflows as known (those already known keep their first registration); the names added."""
    added = []
    at = iso_utc(time.time())
    for name in names:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO registered_workflows (name, registered_at, source) VALUES (?, ?, ?)",
            (check_workflow_name(name), at, source),
        )
        if cursor.rowcount:
            added.append(name)
    return added


def register_workflows(path: Path, names: Iterable[str], source: WorkflowSource) -> list[str]:
    """Record workflows as known in the database at `path` (one transaction); the names that were new."""
    names = [check_workflow_name(name) for name in names]
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        added = insert_workflows(conn, names, source)
        conn.execute("COMMIT")
        return added
    except sqlite3.Error as exc:
        raise EngineError(f"cannot record workflows in {path}: {exc}") from None
    finally:
        conn.close()


def iso_utc(timestamp: float) -> str:
    """Fixed-width RFC 3339 UTC text (`2024-01-02T03:04:05.678901Z`), so text order is time order."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
