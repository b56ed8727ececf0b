"""What `status` and `retry` read from and write to the ledger: per-manifest totals and replay attempts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hatchet_manifest.ledger import Ledger, PendingRow, Target, migrations, open_ledger
from tests.ledger.conftest import FakeClock, OpenLedger
from tests.ledger.test_ledger_schema import open_backend, raw, schema_for

T = Target("tenant", "addr")
OTHER = Target("tenant", "elsewhere")


def submit(ledger: Ledger, target: Target, manifest: str, keys: list[str]) -> None:
    ledger.record_pending(target, [PendingRow(k, "d", manifest, f"{manifest}.yaml") for k in keys])
    ledger.record_submitted(target, [(k, f"run-{target.address}-{k}") for k in keys])


def test_manifest_totals_count_submitted_rows_per_manifest_and_the_oldest(ledger: Ledger, clock: FakeClock) -> None:
    first = clock.now
    submit(ledger, T, "a", ["a1", "a2"])
    clock.now += timedelta(hours=1)
    submit(ledger, T, "a", ["a3"])
    submit(ledger, T, "b", ["b1"])
    ledger.record_pending(T, [PendingRow("a4", "d", "a", "a.yaml")])  # not submitted: not counted
    submit(ledger, OTHER, "a", ["x"])  # another target
    totals = ledger.manifest_totals(T, ["a", "b", "c"])
    assert {name: (t.submitted, t.oldest) for name, t in totals.items()} == {
        "a": (3, first),
        "b": (1, clock.now),
    }
    assert ledger.manifest_totals(T, []) == {}
    assert ledger.manifest_totals(Target("nobody", "x"), ["a"]) == {}


def test_replays_count_up_per_key_and_forget_removes_them(ledger: Ledger) -> None:
    submit(ledger, T, "a", ["k1", "k2", "k3"])
    assert ledger.replays(T, ["k1", "k2"]) == {}
    ledger.record_replays(T, ["k1", "k2"])
    ledger.record_replays(T, ["k1"])
    ledger.record_replays(OTHER, ["k1"])
    assert ledger.replays(T, ["k1", "k2", "k3"]) == {"k1": 2, "k2": 1}
    assert ledger.replays(OTHER, ["k1"]) == {"k1": 1}
    assert ledger.forget(T, ["k1"]) == 1
    submit(ledger, T, "a", ["k1"])
    assert ledger.replays(T, ["k1", "k2"]) == {"k2": 1}  # a forgotten key starts again from no replays


def test_many_keys_are_read_in_batches(ledger: Ledger) -> None:
    keys = [f"k{i:05}" for i in range(2500)]
    submit(ledger, T, "a", keys)
    ledger.record_replays(T, keys[::2])
    assert ledger.replays(T, keys) == dict.fromkeys(keys[::2], 1)


def test_a_reader_of_a_ledger_from_before_replays_reads_none(
    ledger_url: str, tmp_path: Path, open_store: OpenLedger
) -> None:
    """diff and status open the ledger read-only and migrate nothing: a ledger written by the version before
    replays existed (schema 1) is still read, as having no replays."""
    with open_backend(ledger_url, schema_for(ledger_url)[:1], FakeClock()) as old:
        submit(old, T, "a", ["k"])
        assert old.schema_version() == 1
    with open_ledger(ledger_url, tmp_path / "state", readonly=True) as reader:
        assert reader.manifest_totals(T, ["a"])["a"].submitted == 1
        assert reader.replays(T, ["k"]) == {}
    assert raw(ledger_url, f"SELECT max(version) FROM {migrations.VERSION_TABLE}") == [(1,)]
    with open_ledger(ledger_url, tmp_path / "state") as writer:  # a writer migrates it
        writer.record_replays(T, ["k"])
        assert writer.replays(T, ["k"]) == {"k": 1}
