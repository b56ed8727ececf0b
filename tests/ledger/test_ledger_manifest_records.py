"""Per-manifest records (`seal`, `records`, `generations`), on both backends: a record holds only while no write
that may change its manifest's rows happened since, whoever made it; a writer's own writes between reading the
generations and sealing are allowed, another's are not; an older ledger opened read-only has none."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatchet_manifest.ledger import AdoptedRow, Ledger, PendingRow, Target, open_ledger
from hatchet_manifest.ledger.values import ManifestRecord
from tests.ledger.conftest import FakeClock, OpenLedger
from tests.ledger.test_ledger_schema import open_backend, raw, schema_for

T = Target("tenant", "127.0.0.1:7070")
OTHER = Target("tenant", "127.0.0.1:7071")


def record(manifest: str, runs: int = 2, fingerprint: str = "f1") -> ManifestRecord:
    return ManifestRecord(manifest, fingerprint, runs, "00" * 16, '{"v":1}')


def submit(ledger: Ledger, target: Target, manifest: str, keys: list[str], digest: str = "d") -> None:
    ledger.record_pending(target, [PendingRow(k, digest, manifest, f"{manifest}.yaml") for k in keys])
    ledger.record_submitted(target, [(k, f"run-{k}") for k in keys])


def sealed(ledger: Ledger, target: Target, *manifests: str) -> list[str]:
    """Apply-like: read the generations, write the rows, seal."""
    since = ledger.generations(target, manifests)
    return ledger.seal(target, [record(m) for m in manifests], since)


def test_a_record_holds_until_a_write_to_its_manifests_rows(ledger: Ledger, open_store: OpenLedger) -> None:
    assert ledger.records(T, ["a"]) == {}
    since = ledger.generations(T, ["a", "b"])
    assert since == {}
    submit(ledger, T, "a", ["a1", "a2"])  # this instance's own writes, after reading the generations
    submit(ledger, T, "b", ["b1"])
    assert ledger.seal(T, [record("a"), record("b", runs=1)], since) == ["a", "b"]
    assert ledger.records(T, ["a", "b", "c"]) == {"a": record("a"), "b": record("b", runs=1)}
    assert ledger.records(OTHER, ["a"]) == {}  # per target

    other = open_store()  # another process (or machine) writes a row of manifest b
    other.record_pending(T, [PendingRow("b2", "d", "b", "b.yaml")])
    assert ledger.records(T, ["a", "b"]) == {"a": record("a")}
    assert other.records(T, ["a", "b"]) == {"a": record("a")}

    assert sealed(ledger, T, "b") == ["b"]  # a new apply records it again
    assert set(ledger.records(T, ["a", "b"])) == {"a", "b"}


def test_a_write_by_another_between_planning_and_sealing_prevents_the_record(
    ledger: Ledger, open_store: OpenLedger
) -> None:
    submit(ledger, T, "a", ["a1"])
    since = ledger.generations(T, ["a"])
    open_store().forget(T, ["a1"])  # meanwhile, elsewhere
    assert ledger.seal(T, [record("a")], since) == []
    assert ledger.records(T, ["a"]) == {}
    # the same instance's writes do not count against it
    since = ledger.generations(T, ["a"])
    submit(ledger, T, "a", ["a1"])
    assert ledger.seal(T, [record("a")], since) == ["a"]


def test_a_manifest_without_rows_is_recorded_from_generation_zero(ledger: Ledger, open_store: OpenLedger) -> None:
    since = ledger.generations(T, ["empty"])
    assert ledger.seal(T, [record("empty", runs=0)], since) == ["empty"]
    assert ledger.records(T, ["empty"])["empty"].runs == 0
    other = open_store()
    stale = other.generations(T, ["late"])
    ledger.record_pending(T, [PendingRow("l1", "d", "late", "late.yaml")])  # another instance wrote first
    assert other.seal(T, [record("late")], stale) == []


@pytest.mark.parametrize(
    "write",
    [
        "pending",  # a new row of the manifest
        "replace",  # a submitted row of it taken by another manifest (apply --resubmit-changed)
        "adopt",  # a row of it taken over by an adoption into another manifest
        "adopt-digest",  # a submitted row of it adopted again with another digest (the same run id)
        "forget",
        "import",  # an import writes rows of the target: any record of the target may be stale
    ],
)
def test_every_write_that_may_change_a_manifests_rows_ends_its_record(
    write: str, ledger: Ledger, open_store: OpenLedger
) -> None:
    submit(ledger, T, "a", ["a1", "a2"])
    submit(ledger, T, "b", ["b1"])
    assert sealed(ledger, T, "a", "b") == ["a", "b"]
    other = open_store()
    if write == "pending":
        other.record_pending(T, [PendingRow("a3", "d", "a", "a.yaml")])
    elif write == "replace":
        other.record_pending(T, [PendingRow("a1", "d2", "c", "c.yaml")], replace_submitted=True)
    elif write == "adopt":
        other.adopt(T, [AdoptedRow("a1", "d", "c", "c.yaml", "run-a1")])
    elif write == "adopt-digest":
        other.adopt(T, [AdoptedRow("a1", "d-engine", "a", "a.yaml", "run-a1")])
    elif write == "forget":
        assert other.forget(T, ["a2"]) == 1
    else:  # a row of another manifest only
        row = next(r for r in ledger.export_rows() if r["key"] == "b1")
        assert other.import_rows([{**row, "key": "z1", "manifest": "z", "run_id": "run-z1"}]) == 1
    held = ledger.records(T, ["a", "b"])
    assert "a" not in held
    assert ("b" in held) == (write not in ("import",))  # an import ends every record of the target


def test_outcomes_of_a_writers_own_rows_do_not_end_a_record(ledger: Ledger) -> None:
    """From a recorded state a row changes only through a pending row or an adoption first: outcomes add nothing
    (the hot path of an apply pays no more than a statement per chunk)."""
    submit(ledger, T, "a", ["a1"])
    assert sealed(ledger, T, "a") == ["a"]
    ledger.record_submitted(T, [("a1", "run-a1")])  # the same outcome again (idempotent)
    ledger.record_replays(T, ["a1"])
    assert "a" in ledger.records(T, ["a"])


def test_a_reader_of_a_ledger_from_before_records_has_none(ledger_url: str, tmp_path: Path) -> None:
    """diff opens the ledger read-only and migrates nothing: a ledger of schema 2 (records did not exist) is read
    as recording nothing, and its writers keep writing without counting; a writer of this version migrates it."""
    with open_backend(ledger_url, schema_for(ledger_url)[:2], FakeClock()) as old:
        submit(old, T, "a", ["k"])
        assert old.schema_version() == 2
        assert old.seal(T, [record("a")], {}) == []
        assert old.records(T, ["a"]) == {}
    with open_ledger(ledger_url, tmp_path / "state", readonly=True) as reader:
        assert reader.records(T, ["a"]) == {}
        assert reader.generations(T, ["a"]) == {}
        assert reader.count(T) == 1
    assert raw(ledger_url, "SELECT max(version) FROM ledger_schema_version") == [(2,)]
    with open_ledger(ledger_url, tmp_path / "state") as writer:
        assert sealed(writer, T, "a") == ["a"]
        assert writer.schema_version() == 3
