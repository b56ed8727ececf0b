"""The SQLite ledger's file, before and around SQLite: is the path a file SQLite can use, may it be created, and
what a SQLite error means for the user, in words (not "attempt to write a readonly database").

Checks made before connecting, so that a bad path is named for what it is and nothing is created by mistake: a
directory, a FIFO, a device or socket, a file that is not a SQLite database, a missing file where one must exist, a
missing directory (created only for the state dir's own ledger).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger.redact import SHOWN_LIMIT
from hatchet_manifest.ledger.values import NoLedgerError
from hatchet_manifest.text import escape, shorten

MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_SECONDS = 60.0

# SQLite result codes (sqlite3.Error.sqlite_errorcode; the primary code is the low byte)
PERM, BUSY, LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, AUTH, NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 23, 26
READONLY_DIRECTORY = READONLY | (6 << 8)

_KINDS = {
    stat.S_IFIFO: "FIFO (named pipe)",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


def shown(path: Path) -> str:
    """A path for messages: escaped, and bounded (a --ledger value can be of any length)."""
    return shorten(escape(str(path)), SHOWN_LIMIT)


def os_reason(exc: OSError) -> str:
    """An OSError as words: "permission denied", not "[Errno 13] Permission denied: 'x'"."""
    reason = exc.strerror or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def check_file(path: Path, *, must_exist: bool, make_dir: bool) -> bool:
    """Whether the ledger file exists (and is a SQLite file); if not, that it may be created there (making the
    directory when `make_dir`). LedgerError for anything else; NoLedgerError for a missing file that `must_exist`."""
    where = shown(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except OSError as exc:
        raise LedgerError(f"cannot open the ledger {where}: {os_reason(exc)}") from None
    if info is None:
        if must_exist:
            raise NoLedgerError(f"no ledger at {where}")
        _check_directory(path, make_dir)
        return False
    if stat.S_ISDIR(info.st_mode):
        raise LedgerError(f"the ledger {where} is a directory, not a SQLite file: give the path of a file in it")
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "special file")
        raise LedgerError(f"the ledger {where} is a {kind}, not a regular file: SQLite needs a regular file")
    try:
        with open(path, "rb") as file:
            header = file.read(len(MAGIC))
    except OSError as exc:
        raise LedgerError(f"cannot read the ledger {where}: {os_reason(exc)}") from None
    if header != MAGIC[: len(header)]:  # empty: a database SQLite has not written yet
        raise LedgerError(f"the ledger {where} is not a SQLite database (a file of another kind is there)")
    return True


def _check_directory(path: Path, make_dir: bool) -> None:
    parent = _parent(path)
    if make_dir:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the state directory {shown(parent)}: {os_reason(exc)}") from None
        return
    if parent.is_dir():
        if not os.access(parent, os.W_OK):
            raise LedgerError(f"cannot create the ledger {shown(path)}: the directory {shown(parent)} is read-only")
        return
    missing = not parent.exists() and not parent.is_symlink()
    raise LedgerError(
        f"cannot create the ledger {shown(path)}: "
        + (
            f"the directory {shown(parent)} does not exist: create it first (only the state dir is made when missing)"
            if missing
            else f"{shown(parent)} is not a directory"
        )
    )


def describe(exc: sqlite3.Error, path: Path) -> str:
    """A SQLite error on the ledger, as the user's problem (the file, its directory, the disk), not SQLite's."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    where = shown(path)
    parent = shown(_parent(path))
    if code == READONLY_DIRECTORY:
        return (
            f"the ledger {where} is read-only: its directory {parent} cannot be written, and SQLite keeps "
            f"{escape(path.name)}-wal and {escape(path.name)}-shm beside the file"
        )
    if primary == READONLY:
        return f"the ledger {where} is read-only (the file, or its -wal or -shm file, cannot be written)"
    if primary == CANTOPEN:
        return f"cannot open the ledger {where}: the file, or its -wal or -shm file in {parent}, cannot be opened"
    if primary == NOTADB:
        return f"the ledger {where} is not a SQLite database (a file of another kind is there)"
    if primary == CORRUPT:
        return f"the ledger {where} is damaged ({exc}): restore it from a backup or an export"
    if primary == FULL:
        return f"cannot write the ledger {where}: the disk is full"
    if primary == IOERR:
        return f"cannot read or write the ledger {where}: input/output error ({exc})"
    if primary in (BUSY, LOCKED):
        return f"the ledger {where} is locked by another process (gave up after {BUSY_TIMEOUT_SECONDS:g}s)"
    if primary in (PERM, AUTH):
        return f"cannot open the ledger {where}: permission denied"
    return f"ledger {where}: {exc}"
