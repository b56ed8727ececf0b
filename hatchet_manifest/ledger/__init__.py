"""The ledger: what was applied, per target. One interface, two backends (SQLite, PostgreSQL).

Modules, each importing only modules listed before it (no cycles; psycopg is loaded only by `postgres`):
values (rows, targets, errors), migrations, redact (secrets out of messages, whether the URL parses or not),
base (the Ledger interface), rows (the export format, and reading untrusted JSON lines), digest (the state
digest), rules (transition rules: why a key was refused), dialect (what a SQL dialect provides), sql (SqlLedger:
every call, once for both backends), sqlite_sql and postgres_sql (each dialect's statements), filelock,
sqlite_file (is a path a file SQLite can use; SQLite's errors in words), sqlite and postgres (each backend's
connections, transactions, durability and locks; read-only opening), url (--ledger URL -> open_ledger: what it
takes and refuses).
"""

from hatchet_manifest.ledger.base import Ledger
from hatchet_manifest.ledger.redact import redact_url
from hatchet_manifest.ledger.url import open_ledger
from hatchet_manifest.ledger.values import (
    RUN_STATES,
    AdoptedRow,
    KeyTakenError,
    LedgerEntry,
    LedgerLockedError,
    LockHolder,
    PendingRow,
    RunState,
    Target,
    TransitionError,
)

__all__ = [
    "RUN_STATES",
    "AdoptedRow",
    "KeyTakenError",
    "Ledger",
    "LedgerEntry",
    "LedgerLockedError",
    "LockHolder",
    "PendingRow",
    "RunState",
    "Target",
    "TransitionError",
    "open_ledger",
    "redact_url",
]
