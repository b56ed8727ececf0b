"""The ledger's values and errors: what a row, a target and a lock holder are, and what a refused call raises.

A ledger row records one rendered run for one target: its key, digest, manifest, file, state and, once the
engine accepted it, its run id. States move `pending -> submitted | failed | unknown`; a `failed` or
`unknown` row may become `pending` again (a deliberate resubmission); a `submitted` row never leaves that
state, and keeps its run id, except through `forget`.

Imports nothing of the ledger package: every other ledger module may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple, get_args

from hatchet_manifest.errors import LedgerError

RunState = Literal["pending", "submitted", "failed", "unknown"]
RUN_STATES: tuple[RunState, ...] = get_args(RunState)

Clock = Callable[[], datetime]

StateRow = tuple[str, str | None, str]  # (digest, run_id, state): what a plan depends on for one key


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Target:
    """Where runs go: one tenant on one engine. Staging and production never share ledger rows."""

    tenant_id: str
    address: str

    @property
    def id(self) -> str:
        return f"{self.tenant_id}@{self.address}"

    def __str__(self) -> str:
        return self.id

    def to_dict(self) -> dict[str, str]:
        """As plans and JSON output show it."""
        return {"tenant_id": self.tenant_id, "address": self.address}


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One recorded run. `run_id` is set exactly when `state` is `submitted`; times are UTC."""

    key: str
    digest: str
    run_id: str | None
    manifest: str
    file: str
    state: RunState
    error: str | None
    created_at: datetime
    updated_at: datetime


class ManifestTotal(NamedTuple):
    """A manifest's submitted runs on a target: how many, and when the oldest was first recorded (UTC)."""

    submitted: int
    oldest: datetime


class PendingRow(NamedTuple):
    """A run about to be sent."""

    key: str
    digest: str
    manifest: str
    file: str


class AdoptedRow(NamedTuple):
    """A run found in the engine (by its stamps) that the ledger did not know as submitted."""

    key: str
    digest: str
    manifest: str
    file: str
    run_id: str


class ManifestRecord(NamedTuple):
    """What an apply that left a manifest's rows exactly as the manifest renders recorded of it, for a later command
    to trust instead of rendering it again while those rows stay unchanged. Opaque to the ledger but for `runs`."""

    manifest: str
    fingerprint: str  # a digest of everything the manifest's rendering read
    runs: int  # the runs it rendered (all of them recorded as submitted)
    salt: str  # what the fingerprint's digests of environment values are salted with
    detail: str  # what the fingerprint needs to be computed again (JSON, no secret)


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a target's lock, as far as the backend can tell."""

    host: str
    pid: int
    since: datetime

    def __str__(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.since.astimezone(UTC).isoformat(timespec='seconds')}"


def some(keys: Sequence[str], limit: int = 10) -> str:
    """The first `limit` of `keys` for a message, and how many more there are."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


class NoLedgerError(LedgerError):
    """The ledger asked for does not exist yet (no file; no ledger tables in the database), and was not created."""


class LedgerLockedError(LedgerError):
    """Another process holds the target's lock (another apply is running against the same target)."""

    def __init__(self, target: Target, holder: LockHolder | None, waited: float) -> None:
        self.target = target
        self.holder = holder
        self.waited = waited
        who = f"held by {holder}" if holder else "held by another process"
        super().__init__(
            f"the ledger for target {target.id} is locked ({who}): another apply is running against this target; "
            f"gave up after waiting {waited:g}s"
        )


class KeyTakenError(LedgerError):
    """`record_pending` refused keys that are already pending or submitted; nothing of that call was recorded."""

    def __init__(self, target: Target, keys: Sequence[str]) -> None:
        self.target = target
        self.keys: tuple[str, ...] = tuple(sorted(keys))
        super().__init__(
            f"{len(self.keys)} run(s) for target {target.id} are already pending or submitted "
            f"(another apply may be sending them): {some(self.keys)}"
        )


class TransitionError(LedgerError):
    """Keys whose state could not move as asked. The other keys of the same call were recorded."""

    def __init__(self, target: Target, action: str, problems: dict[str, str]) -> None:
        self.target = target
        self.problems = dict(sorted(problems.items()))
        items = [f"{key} ({why})" for key, why in self.problems.items()]
        super().__init__(f"cannot {action} {len(items)} run(s) for target {target.id}: {some(items)}")
