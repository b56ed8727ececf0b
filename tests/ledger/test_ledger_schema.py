"""Persistence across reopen and versioned, idempotent, transactional migrations, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import Ledger, PendingRow, Target, migrations
from hatchet_manifest.ledger.postgres import PostgresLedger
from hatchet_manifest.ledger.sqlite import SqliteLedger
from tests.ledger.conftest import FakeClock, OpenLedger, run_together, spawn_worker

T = Target("tenant", "127.0.0.1:7070")


def raw(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL on the ledger's database directly, as another tool (or a newer hatchet-manifest) would."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(sql)  # type: ignore[call-overload]
            return list(cur.fetchall()) if cur.description else []
    import sqlite3

    conn = sqlite3.connect(url)
    try:
        with conn:
            return conn.execute(sql).fetchall()
    finally:
        conn.close()


def open_backend(url: str, schema: tuple[migrations.Migration, ...], clock: FakeClock) -> Ledger:
    if url.startswith("postgresql://"):
        return PostgresLedger(url, clock=clock, schema=schema)
    return SqliteLedger(Path(url), clock=clock, schema=schema)


def schema_for(url: str) -> tuple[migrations.Migration, ...]:
    return migrations.POSTGRES if url.startswith("postgresql://") else migrations.SQLITE


def test_rows_survive_reopening(open_store: OpenLedger, clock: FakeClock) -> None:
    first = open_store()
    first.record_pending(T, [PendingRow("a", "d", "m", "m.yaml"), PendingRow("b", "d", "m", "m.yaml")])
    first.record_submitted(T, [("a", "run-a")])
    before = list(first.export_rows())
    first.close()
    second = open_store()
    assert list(second.export_rows()) == before
    assert second.lookup(T, ["a"])["a"].created_at == clock.now


def test_a_fresh_ledger_is_at_the_latest_version_and_reopening_migrates_nothing(
    open_store: OpenLedger, ledger_url: str
) -> None:
    assert open_store().schema_version() == migrations.LATEST
    open_store()
    rows = raw(ledger_url, f"SELECT version FROM {migrations.VERSION_TABLE} ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, migrations.LATEST + 1))


def test_new_migrations_apply_once_in_order(ledger_url: str, open_store: OpenLedger, clock: FakeClock) -> None:
    open_store().record_pending(T, [PendingRow("a", "d", "m", "m.yaml")])
    extended = (
        *schema_for(ledger_url),
        (migrations.LATEST + 1, ("CREATE TABLE ledger_extra (n integer)", "INSERT INTO ledger_extra (n) VALUES (1)")),
        (migrations.LATEST + 2, ("INSERT INTO ledger_extra (n) VALUES (2)",)),
    )
    for _ in range(2):  # the second open must not run them again
        with open_backend(ledger_url, extended, clock) as ledger:
            assert ledger.schema_version() == migrations.LATEST + 2
            assert ledger.count(T) == 1
    assert raw(ledger_url, "SELECT n FROM ledger_extra ORDER BY n") == [(1,), (2,)]


def test_a_failing_migration_changes_nothing(ledger_url: str, open_store: OpenLedger, clock: FakeClock) -> None:
    open_store().close()
    broken = (
        *schema_for(ledger_url),
        (migrations.LATEST + 1, ("CREATE TABLE ledger_extra (n integer)", "THIS IS NOT SQL")),
    )
    with pytest.raises(LedgerError, match="syntax error"):
        open_backend(ledger_url, broken, clock)
    assert open_store().schema_version() == migrations.LATEST
    tables = (
        "SELECT tablename FROM pg_tables WHERE tablename = 'ledger_extra'"
        if ledger_url.startswith("postgresql://")
        else "SELECT name FROM sqlite_master WHERE name = 'ledger_extra'"
    )
    assert raw(ledger_url, tables) == []


def test_a_newer_schema_is_a_clear_error(ledger_url: str, open_store: OpenLedger) -> None:
    first = open_store()
    first.close()
    raw(ledger_url, f"INSERT INTO {migrations.VERSION_TABLE} (version, applied_at) VALUES (7, CURRENT_TIMESTAMP)")
    with pytest.raises(LedgerError) as caught:
        open_store()
    assert str(caught.value) == (
        f"the ledger {first.location} has schema version 7, newer than this hatchet-manifest knows "
        f"(up to {migrations.LATEST}): "
        "upgrade hatchet-manifest to use it"
    )


def test_processes_opening_a_fresh_ledger_at_once_all_succeed(ledger_url: str, tmp_path: Path) -> None:
    workers = [spawn_worker("migrate", ledger_url, str(tmp_path / "state")) for _ in range(3)]
    outputs = run_together(workers, timeout=60)
    assert [(w.returncode, out) for w, (out, _) in zip(workers, outputs, strict=True)] == [
        (0, f"{migrations.LATEST}\n")
    ] * 3, outputs
    rows = raw(ledger_url, f"SELECT version FROM {migrations.VERSION_TABLE}")
    assert sorted(rows) == [(v,) for v in range(1, migrations.LATEST + 1)]
