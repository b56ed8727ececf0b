"""The ledger: what was applied, per target. One interface, two backends (SQLite, PostgreSQL)."""

from hatchet_manifest.ledger.base import (
    RUN_STATES,
    AdoptedRow,
    KeyTakenError,
    Ledger,
    LedgerEntry,
    LedgerLockedError,
    LockHolder,
    PendingRow,
    RunState,
    Target,
    TransitionError,
)
from hatchet_manifest.ledger.url import open_ledger, redact_url

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
