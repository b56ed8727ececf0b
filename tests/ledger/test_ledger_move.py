"""Export and import: the same rows whichever backend holds them, and SQLite -> PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import AdoptedRow, Ledger, PendingRow, Target, open_ledger
from hatchet_manifest.ledger.rows import RowError
from tests.ledger.conftest import FakeClock, OpenLedger

STAGING = Target("tenant-1", "staging.example.com:443")
PROD = Target("tenant-1", "prod.example.com:443")


def fill(ledger: Ledger, clock: FakeClock, n: int = 1500) -> list[str]:
    """Rows in every state, two targets, more than one page, non-ASCII keys."""
    keys = [f"run-{i:05d}" for i in range(n)] + ["é-accent", "Zulu", "日本"]
    ledger.record_pending(
        STAGING, [PendingRow(k, f"sha256:{i}", f"m{i % 4}", f"m{i % 4}.yaml") for i, k in enumerate(keys)]
    )
    clock.advance(1.5)
    ledger.record_submitted(STAGING, [(k, f"id-{k}") for k in keys[: n // 2]])
    ledger.record_failed(STAGING, keys[n // 2 : n // 2 + 10], "RESOURCE_EXHAUSTED: quota")
    ledger.record_unknown(STAGING, keys[n // 2 + 10 : n // 2 + 20], "DEADLINE_EXCEEDED")
    clock.advance(0.000001)
    ledger.adopt(PROD, [AdoptedRow("only-in-prod", "sha256:p", "m0", "m0.yaml", "id-prod")])
    return keys


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant_id": "t",
        "address": "a:1",
        "key": "k",
        "digest": "d",
        "run_id": None,
        "manifest": "m",
        "file": "m.yaml",
        "state": "pending",
        "error": None,
        "created_at": "2024-05-01T12:00:00.000000+00:00",
        "updated_at": "2024-05-01T12:00:01.000000+00:00",
    }
    base.update(changes)
    return base


def test_export_rows_are_complete_sorted_and_json_ready(ledger: Ledger, clock: FakeClock) -> None:
    ledger.record_pending(STAGING, [PendingRow("b", "d", "m", "m.yaml"), PendingRow("a", "d", "m", "m.yaml")])
    clock.advance(1)
    ledger.record_submitted(STAGING, [("a", "id-a")])
    ledger.adopt(PROD, [AdoptedRow("z", "dz", "mz", "mz.yaml", "id-z")])
    assert list(ledger.export_rows()) == [
        row(tenant_id="tenant-1", address="prod.example.com:443", key="z", digest="dz", run_id="id-z", manifest="mz",
            file="mz.yaml", state="submitted", created_at="2024-05-01T12:00:01.123456+00:00",
            updated_at="2024-05-01T12:00:01.123456+00:00"),
        row(tenant_id="tenant-1", address="staging.example.com:443", key="a", run_id="id-a", state="submitted",
            created_at="2024-05-01T12:00:00.123456+00:00", updated_at="2024-05-01T12:00:01.123456+00:00"),
        row(tenant_id="tenant-1", address="staging.example.com:443", key="b",
            created_at="2024-05-01T12:00:00.123456+00:00", updated_at="2024-05-01T12:00:00.123456+00:00"),
    ]  # fmt: skip


def test_import_into_an_empty_ledger_reproduces_the_export(
    ledger: Ledger, open_store: OpenLedger, clock: FakeClock, another_url: str
) -> None:
    fill(ledger, clock)
    exported = list(ledger.export_rows())
    copy = open_store(another_url)
    assert copy.import_rows(iter(exported)) == len(exported) == 1504
    assert list(copy.export_rows()) == exported
    assert copy.import_rows(exported) == 1504  # again: same rows, nothing changes
    assert list(copy.export_rows()) == exported
    copy.close()


def test_import_refuses_to_change_a_submitted_run_and_imports_nothing(ledger: Ledger) -> None:
    ledger.import_rows([row(key="s", state="submitted", run_id="id-1")])
    before = list(ledger.export_rows())
    rows = [row(key="new"), row(key="s", state="pending"), row(key="s2", state="submitted", run_id="id-2")]
    with pytest.raises(LedgerError) as caught:
        ledger.import_rows(rows)
    assert str(caught.value) == (
        "import refused, nothing imported: 1 row(s) would change submitted runs: "
        "t@a:1 s: submitted as run id-1 in the ledger; the import has it pending"
    )
    with pytest.raises(LedgerError, match="the import has it submitted as run id-9"):
        ledger.import_rows([row(key="s", state="submitted", run_id="id-9")])
    assert list(ledger.export_rows()) == before


def test_import_settles_and_overwrites_unsubmitted_rows(ledger: Ledger) -> None:
    ledger.import_rows([row(key="p"), row(key="u", state="unknown", error="timeout")])
    ledger.import_rows([row(key="p", state="submitted", run_id="id-p"), row(key="u", digest="d2")])
    assert [(r["key"], r["state"], r["run_id"], r["digest"], r["error"]) for r in ledger.export_rows()] == [
        ("p", "submitted", "id-p", "d", None),
        ("u", "pending", None, "d2", None),
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([1], "row 1: expected a JSON object, got 1"),
        ([None], "row 1: expected a JSON object, got null"),
        ([[[["deep"]]]], 'row 1: expected a JSON object, got [[["deep"]]]'),
        ([row(), row(extra=1)], 'row 2: unknown field(s): "extra"'),
        ([{k: v for k, v in row().items() if k != "digest"}], "row 1: missing field(s): digest"),
        ([row(key="")], 'row 1: key: expected a non-empty string, got ""'),
        ([row(tenant_id=None)], "row 1: tenant_id: expected a non-empty string, got null"),
        ([row(error=["x"])], 'row 1: error: expected a string or null, got ["x"]'),
        (
            [row(state="x" * 500)],
            f'row 1: state: expected one of pending, submitted, failed, unknown, got "{"x" * 76}...',
        ),
        ([row(file=3)], "row 1: file: expected a string, got 3"),
        ([row(key="a\x1b[2Kb")], "row 1: key: contains the "),
        ([row(manifest="m\u202e")], "row 1: manifest: contains the "),
        ([row(state="done")], 'row 1: state: expected one of pending, submitted, failed, unknown, got "done"'),
        ([row(state="submitted")], "row 1: run_id: a run id is required for state submitted and only for it"),
        ([row(run_id="id")], "row 1: run_id: a run id is required for state submitted and only for it"),
        ([row(created_at="yesterday")], 'row 1: created_at: not an ISO 8601 time: "yesterday"'),
        (
            [row(updated_at="2024-05-01T12:00:00")],
            'row 1: updated_at: the time has no UTC offset: "2024-05-01T12:00:00"',
        ),
        (
            [row(created_at="0001-01-01T00:00:00+01:00")],
            'row 1: created_at: the time is out of range: "0001-01-01T00:00:00+01:00"',
        ),
        ([row(), row(key="x"), row()], "row 3: the same target and key as row 1"),
    ],
)
def test_import_validates_every_row_and_imports_nothing_on_error(ledger: Ledger, bad: list[Any], message: str) -> None:
    with pytest.raises(RowError) as caught:
        ledger.import_rows(bad)
    assert str(caught.value).startswith(message) and len(str(caught.value)) < 200
    assert str(caught.value).isprintable()  # control characters are shown escaped
    assert ledger.targets() == [] and list(ledger.export_rows()) == []


def test_an_error_after_the_first_chunk_still_imports_nothing(ledger: Ledger) -> None:
    rows = [row(key=f"k{i:04d}") for i in range(1500)] + [row(key="bad", state="?")]
    with pytest.raises(RowError, match="row 1501: state"):
        ledger.import_rows(iter(rows))
    assert ledger.targets() == [] and list(ledger.export_rows()) == []
    assert ledger.import_rows(rows[:-1]) == 1500


def test_import_accepts_other_utc_offsets_and_z(ledger: Ledger) -> None:
    ledger.import_rows([row(created_at="2024-05-01T14:00:00+02:00", updated_at="2024-05-01T12:00:00Z")])
    (exported,) = ledger.export_rows()
    assert (exported["created_at"], exported["updated_at"]) == (
        "2024-05-01T12:00:00.000000+00:00",
        "2024-05-01T12:00:00.000000+00:00",
    )


def test_sqlite_to_postgresql_gives_identical_exports_and_digests(
    tmp_path: Path, pg_url: str, clock: FakeClock
) -> None:
    with (
        open_ledger(tmp_path / "ledger.db", tmp_path, clock=clock) as sqlite_ledger,
        open_ledger(pg_url, tmp_path, clock=clock) as pg_ledger,
    ):
        keys = fill(sqlite_ledger, clock)
        exported = list(sqlite_ledger.export_rows())
        assert pg_ledger.import_rows(exported) == len(exported)
        assert list(pg_ledger.export_rows()) == exported
        probe = [*keys, "never-recorded"]
        assert pg_ledger.state_digest(STAGING, probe) == sqlite_ledger.state_digest(STAGING, probe)
        assert list(pg_ledger.entries(STAGING, ["m1"])) == list(sqlite_ledger.entries(STAGING, ["m1"]))
        assert pg_ledger.targets() == sqlite_ledger.targets() == [PROD, STAGING]

        # The same calls on both backends keep them identical.
        for ledger in (sqlite_ledger, pg_ledger):
            ledger.record_submitted(STAGING, [(keys[-1], "id-last")])
            ledger.forget(STAGING, keys[:3])
        assert list(pg_ledger.export_rows()) == list(sqlite_ledger.export_rows())
        assert pg_ledger.state_digest(STAGING, probe) == sqlite_ledger.state_digest(STAGING, probe)
