"""What only the PostgreSQL ledger has: query plans that stay linear, sessions that die, locks held by sessions."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import LedgerLockedError, PendingRow, Target, open_ledger
from hatchet_manifest.ledger.postgres import PostgresLedger
from hatchet_manifest.ledger.postgres_sql import COLUMNS, LOOKUP, PIN_PLANS, text_array

with contextlib.suppress(ModuleNotFoundError):  # then the pg_server fixture skips these tests (or fails them)
    import psycopg

BIG = Target("tenant", "big:443")
FRESH = Target("tenant", "fresh:443")


@pytest.mark.parametrize(
    "values",
    [[], ["a"], ["a", "b"], ['x","y'], ['x","y', "z"], ['"'], ["a\\"], [""], ["", ""], [None], ["a", None], ["NULL"]],
)
def test_text_array_literals_round_trip(pg_url: str, values: list[str | None]) -> None:
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT %s::text[]", [text_array(values)]).fetchone() == (values,)


def test_a_fresh_target_is_probed_by_primary_key_not_scanned(pg_url: str, tmp_path: Path) -> None:
    """With statistics that know only a big target, lookups and pages of a new one still walk the primary key."""
    with open_ledger(pg_url, tmp_path) as ledger:
        assert isinstance(ledger, PostgresLedger)
        for start in range(0, 20000, 1000):
            ledger.record_pending(BIG, [PendingRow(f"k{i:06d}", "d", "m", "f") for i in range(start, start + 1000)])
        ledger.record_pending(FRESH, [PendingRow(f"k{i:06d}", "d", "m", "f") for i in range(10)])
        fresh_id = ledger._target_ids[FRESH]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ANALYZE ledger_runs")
        keys = text_array([f"k{i:06d}" for i in range(1000)])
        plan = "\n".join(
            row[0]
            for row in conn.execute("EXPLAIN " + LOOKUP.format(columns="key"), {"keys": keys, "target": fresh_id})
        )
        assert "Nested Loop" in plan and f"Index Cond: ((target_id = '{fresh_id}'::" in plan
        assert "(key = v.key))" in plan and "Hash" not in plan and "Seq Scan" not in plan
        with conn.transaction():
            conn.execute(PIN_PLANS)
            plan = "\n".join(
                row[0]
                for row in conn.execute(
                    f"EXPLAIN SELECT {COLUMNS} FROM ledger_runs WHERE target_id = %s AND key > %s ORDER BY key LIMIT 1000",
                    (fresh_id, "k000005"),
                )
            )
        assert "Index Scan using ledger_runs_pkey" in plan and "AND (key > 'k000005'::text))" in plan
        assert "Sort" not in plan and "Bitmap" not in plan


def kill_sessions(admin: psycopg.Connection[object], application: str) -> None:
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
        (application,),
    )


def test_reads_survive_a_dropped_session_and_writes_report_it(pg_url: str, tmp_path: Path) -> None:
    with open_ledger(pg_url, tmp_path) as ledger, psycopg.connect(pg_url, autocommit=True) as admin:
        ledger.record_pending(BIG, [PendingRow("a", "d", "m", "f")])
        kill_sessions(admin, "hatchet-manifest")
        assert ledger.count(BIG) == 1  # a read is simply run again on a new session
        kill_sessions(admin, "hatchet-manifest")
        with pytest.raises(LedgerError, match=r"terminat|closed"):  # a write may have committed: the caller must know
            ledger.record_submitted(BIG, [("a", "run-a")])
        ledger.record_submitted(BIG, [("a", "run-a")])  # the next call opens a new session
        assert ledger.lookup(BIG, ["a"])["a"].run_id == "run-a"


def test_a_lock_dies_with_its_session(pg_url: str, tmp_path: Path) -> None:
    with (
        open_ledger(pg_url, tmp_path) as first,
        open_ledger(pg_url, tmp_path) as second,
        psycopg.connect(pg_url, autocommit=True) as admin,
    ):
        with first.lock(BIG):
            with pytest.raises(LedgerLockedError), second.lock(BIG):
                pass
            kill_sessions(admin, "hatchet-manifest lock")
            with second.lock(BIG, wait=10):
                pass
        # The holder row left by the killed session is not trusted: no holder is named for a free lock.
        with second.lock(BIG):
            pass
