"""What each ledger method records, on both backends."""

from __future__ import annotations

import pytest

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import (
    AdoptedRow,
    KeyTakenError,
    Ledger,
    LedgerEntry,
    PendingRow,
    Target,
    TransitionError,
)
from tests.ledger.conftest import FakeClock

T = Target("tenant-a", "127.0.0.1:7070")
OTHER = Target("tenant-a", "hatchet.example.com:443")


def pending(*keys: str, digest: str = "d1", manifest: str = "m", file: str = "m.yaml") -> list[PendingRow]:
    return [PendingRow(k, digest, manifest, file) for k in keys]


def states(ledger: Ledger, target: Target = T) -> dict[str, tuple[str, str | None]]:
    return {e.key: (e.state, e.run_id) for e in ledger.entries(target)}


def test_target_id_names_tenant_and_address() -> None:
    assert T.id == "tenant-a@127.0.0.1:7070" and str(T) == T.id


def test_record_pending_writes_complete_rows(ledger: Ledger, clock: FakeClock) -> None:
    ledger.record_pending(T, [PendingRow("k1", "sha256:aa", "nightly", "manifests/nightly.yaml")])
    assert ledger.lookup(T, ["k1", "absent"]) == {
        "k1": LedgerEntry(
            "k1", "sha256:aa", None, "nightly", "manifests/nightly.yaml", "pending", None, clock.now, clock.now
        )
    }
    assert ledger.count(T) == 1 and ledger.count(OTHER) == 0


def test_record_pending_refuses_pending_and_submitted_keys_and_writes_nothing(ledger: Ledger) -> None:
    ledger.record_pending(T, pending("a", "b"))
    ledger.record_submitted(T, [("b", "run-b")])
    with pytest.raises(KeyTakenError) as caught:
        ledger.record_pending(T, pending("c", "b", "a", "d", digest="d2"))
    assert caught.value.keys == ("a", "b") and caught.value.target == T
    assert str(caught.value) == (
        "2 run(s) for target tenant-a@127.0.0.1:7070 are already pending or submitted "
        "(another apply may be sending them): a, b"
    )
    assert states(ledger) == {"a": ("pending", None), "b": ("submitted", "run-b")}
    assert ledger.lookup(T, ["a"])["a"].digest == "d1"
    assert isinstance(caught.value, LedgerError)


def test_record_pending_overwrites_failed_and_unknown_keeping_created_at(ledger: Ledger, clock: FakeClock) -> None:
    created = clock.now
    ledger.record_pending(T, pending("f", "u"))
    ledger.record_failed(T, ["f"], "quota")
    ledger.record_unknown(T, ["u"], "timeout")
    later = clock.advance(60)
    ledger.record_pending(T, pending("f", "u", digest="d2", manifest="m2", file="m2.yaml"))
    for key in ("f", "u"):
        assert ledger.lookup(T, [key])[key] == LedgerEntry(
            key, "d2", None, "m2", "m2.yaml", "pending", None, created, later
        )


def test_record_pending_rejects_a_key_twice_in_one_call(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="record_pending: the same key appears more than once in one call: x"):
        ledger.record_pending(T, pending("x", "y", "x"))
    assert ledger.count(T) == 0


def test_record_submitted_moves_pending_and_is_idempotent(ledger: Ledger, clock: FakeClock) -> None:
    ledger.record_pending(T, pending("a", "b"))
    later = clock.advance(5)
    ledger.record_submitted(T, [("a", "run-a"), ("b", "run-b")])
    ledger.record_submitted(T, [("a", "run-a")])
    entry = ledger.lookup(T, ["a"])["a"]
    assert (entry.state, entry.run_id, entry.error, entry.updated_at) == ("submitted", "run-a", None, later)
    assert states(ledger) == {"a": ("submitted", "run-a"), "b": ("submitted", "run-b")}


def test_record_submitted_settles_failed_and_unknown(ledger: Ledger) -> None:
    ledger.record_pending(T, pending("f", "u"))
    ledger.record_failed(T, ["f"], "refused")
    ledger.record_unknown(T, ["u"], "timeout")
    ledger.record_submitted(T, [("f", "run-f"), ("u", "run-u")])
    assert {e.key: (e.state, e.run_id, e.error) for e in ledger.entries(T)} == {
        "f": ("submitted", "run-f", None),
        "u": ("submitted", "run-u", None),
    }


def test_record_submitted_never_changes_a_run_id_and_records_the_rest(ledger: Ledger) -> None:
    ledger.record_pending(T, pending("a", "b"))
    ledger.record_submitted(T, [("a", "run-a")])
    with pytest.raises(TransitionError) as caught:
        ledger.record_submitted(T, [("a", "run-other"), ("b", "run-b"), ("ghost", "run-g")])
    assert caught.value.problems == {
        "a": "already submitted as run run-a; now reported as run run-other",
        "ghost": "not in the ledger; the engine accepted it as run run-g",
    }
    assert str(caught.value).startswith("cannot record as submitted 2 run(s) for target tenant-a@127.0.0.1:7070: a (")
    assert states(ledger) == {"a": ("submitted", "run-a"), "b": ("submitted", "run-b")}


def test_record_submitted_on_an_unknown_target(ledger: Ledger) -> None:
    with pytest.raises(TransitionError, match="not in the ledger"):
        ledger.record_submitted(T, [("a", "run-a")])


@pytest.mark.parametrize("state", ["failed", "unknown"])
def test_outcomes_record_error_and_never_touch_submitted_runs(ledger: Ledger, clock: FakeClock, state: str) -> None:
    ledger.record_pending(T, pending("p", "s"))
    ledger.record_submitted(T, [("s", "run-s")])
    later = clock.advance(3)
    record = ledger.record_failed if state == "failed" else ledger.record_unknown
    with pytest.raises(TransitionError) as caught:
        record(T, ["p", "s", "ghost"], "deadline exceeded")
    assert caught.value.problems == {"s": "already submitted as run run-s", "ghost": "not in the ledger"}
    entry = ledger.lookup(T, ["p"])["p"]
    assert (entry.state, entry.run_id, entry.error, entry.updated_at) == (state, None, "deadline exceeded", later)
    assert states(ledger)["s"] == ("submitted", "run-s")
    record(T, ["p"], "again")  # failed -> failed, unknown -> unknown: fine
    assert ledger.lookup(T, ["p"])["p"].error == "again"


def test_unknown_may_become_failed_and_back(ledger: Ledger) -> None:
    ledger.record_pending(T, pending("k"))
    ledger.record_unknown(T, ["k"], "timeout")
    ledger.record_failed(T, ["k"], "not found")
    assert states(ledger) == {"k": ("failed", None)}
    ledger.record_unknown(T, ["k"], "again")
    assert states(ledger) == {"k": ("unknown", None)}


def test_adopt_creates_and_settles_rows(ledger: Ledger, clock: FakeClock) -> None:
    created = clock.now
    ledger.record_pending(T, pending("p", "u"))
    ledger.record_unknown(T, ["u"], "timeout")
    later = clock.advance(9)
    ledger.adopt(
        T,
        [
            AdoptedRow("p", "d9", "m9", "m9.yaml", "run-p"),
            AdoptedRow("u", "d1", "m", "m.yaml", "run-u"),
            AdoptedRow("new", "dn", "mn", "mn.yaml", "run-n"),
        ],
    )
    found = ledger.lookup(T, ["p", "u", "new"])
    assert found["p"] == LedgerEntry("p", "d9", "run-p", "m9", "m9.yaml", "submitted", None, created, later)
    assert (found["u"].state, found["u"].run_id, found["u"].error) == ("submitted", "run-u", None)
    assert found["new"] == LedgerEntry("new", "dn", "run-n", "mn", "mn.yaml", "submitted", None, later, later)


def test_adopt_with_the_same_run_id_refreshes_and_another_run_id_is_refused(ledger: Ledger) -> None:
    ledger.adopt(T, [AdoptedRow("a", "d1", "m", "m.yaml", "run-a"), AdoptedRow("b", "d1", "m", "m.yaml", "run-b")])
    with pytest.raises(TransitionError) as caught:
        ledger.adopt(
            T, [AdoptedRow("a", "d2", "m2", "m2.yaml", "run-a"), AdoptedRow("b", "d2", "m", "m.yaml", "run-x")]
        )
    assert caught.value.problems == {"b": "already submitted as run run-b; the engine also has run run-x"}
    found = ledger.lookup(T, ["a", "b"])
    assert (found["a"].digest, found["a"].manifest, found["a"].run_id) == ("d2", "m2", "run-a")
    assert (found["b"].digest, found["b"].run_id) == ("d1", "run-b")


def test_forget_removes_rows_so_they_can_be_sent_again(ledger: Ledger) -> None:
    ledger.record_pending(T, pending("a", "b", "c"))
    ledger.record_submitted(T, [("a", "run-a")])
    assert ledger.forget(T, ["a", "b", "ghost"]) == 2
    assert states(ledger) == {"c": ("pending", None)}
    ledger.record_pending(T, pending("a"))
    assert ledger.forget(OTHER, ["c"]) == 0
    assert ledger.count(T) == 2


def test_targets_never_mix(ledger: Ledger) -> None:
    ledger.record_pending(T, pending("k"))
    ledger.record_pending(OTHER, pending("k", digest="other"))
    ledger.record_submitted(T, [("k", "run-staging")])
    assert states(ledger, T) == {"k": ("submitted", "run-staging")}
    assert states(ledger, OTHER) == {"k": ("pending", None)}
    assert ledger.targets() == [T, OTHER]
    assert ledger.lookup(Target("tenant-b", "127.0.0.1:7070"), ["k"]) == {}


def test_empty_calls_do_nothing(ledger: Ledger) -> None:
    ledger.record_pending(T, [])
    ledger.record_submitted(T, [])
    ledger.record_failed(T, [], "x")
    ledger.record_unknown(T, [], "x")
    ledger.adopt(T, [])
    assert ledger.forget(T, []) == 0
    assert ledger.lookup(T, []) == {}
    assert list(ledger.entries(T)) == [] and ledger.count(T) == 0


def test_lookup_takes_more_keys_than_one_batch(ledger: Ledger) -> None:
    keys = [f"key-{i:05d}" for i in range(2500)]
    ledger.record_pending(T, pending(*keys))
    found = ledger.lookup(T, [*keys[::2], "absent"])
    assert sorted(found) == keys[::2]


def test_entries_stream_in_byte_order_across_pages(ledger: Ledger) -> None:
    keys = [f"k{i:05d}" for i in range(2300)] + ["B", "a", "Z", "é", "z", "ß", "_", "0", "日本"]
    ledger.record_pending(T, pending(*keys))
    listed = [e.key for e in ledger.entries(T)]
    assert listed == sorted(keys, key=lambda k: k.encode())
    assert listed[:6] == ["0", "B", "Z", "_", "a", "k00000"]


def test_entries_filter_by_manifest(ledger: Ledger) -> None:
    ledger.record_pending(T, [PendingRow(f"k{i:04d}", "d", f"m{i % 3}", "f.yaml") for i in range(1200)])
    listed = list(ledger.entries(T, ["m1", "m2"]))
    assert len(listed) == 800 and {e.manifest for e in listed} == {"m1", "m2"}
    assert [e.key for e in listed] == sorted(e.key for e in listed)
    assert list(ledger.entries(T, [])) == []
    assert list(ledger.entries(T, ["nothing"])) == []


def test_entries_may_be_written_while_iterating(ledger: Ledger) -> None:
    ledger.record_pending(T, pending(*(f"k{i:04d}" for i in range(2100))))
    seen = 0
    for entry in ledger.entries(T):
        if entry.key.endswith("0"):
            ledger.record_submitted(T, [(entry.key, "run-" + entry.key)])
        seen += 1
    assert seen == 2100
    assert sum(1 for e in ledger.entries(T) if e.state == "submitted") == 210


ODD = ["a,b", 'q"uote', 'x","y', "back\\slash", "{braces}", "NULL", " spaced ", "new\nline", "tab\t", "日本", "'"]


def test_any_characters_round_trip_through_every_method(ledger: Ledger) -> None:
    ledger.record_pending(T, [PendingRow(k, "d" + k, "m" + k, "f" + k) for k in ODD])
    assert {k: (e.digest, e.manifest, e.file) for k, e in ledger.lookup(T, ODD).items()} == {
        k: ("d" + k, "m" + k, "f" + k) for k in ODD
    }
    ledger.record_submitted(T, [(k, "run" + k) for k in ODD[:4]])
    ledger.record_failed(T, ODD[4:7], 'err "x"')
    ledger.record_unknown(T, ODD[7:], "err\\y")
    assert {e.key: (e.state, e.run_id) for e in ledger.entries(T, ["m" + k for k in ODD])} == {
        **{k: ("submitted", "run" + k) for k in ODD[:4]},
        **{k: ("failed", None) for k in ODD[4:7]},
        **{k: ("unknown", None) for k in ODD[7:]},
    }
    ledger.adopt(T, [AdoptedRow(k, "d" + k, "m" + k, "f" + k, "run" + k) for k in ODD[4:]])
    with pytest.raises(KeyTakenError) as caught:
        ledger.record_pending(T, [PendingRow(k, "d", "m", "f") for k in ODD])
    assert sorted(caught.value.keys) == sorted(ODD)
    assert ledger.forget(T, ODD) == len(ODD)


def test_state_digest_follows_what_a_plan_depends_on(ledger: Ledger, clock: FakeClock) -> None:
    keys = ["a", "b", "c"]
    empty = ledger.state_digest(T, keys)
    assert empty.startswith("sha256:") and len(empty) == 71
    ledger.record_pending(T, pending("a", "b"))
    first = ledger.state_digest(T, keys)
    assert first != empty
    assert ledger.state_digest(T, ["c", "b", "a"]) == first  # order does not matter
    assert ledger.state_digest(T, ["a", "b"]) != first
    assert ledger.state_digest(OTHER, keys) == empty
    clock.advance(10)
    ledger.record_unknown(T, ["a"], "x")
    ledger.record_pending(T, pending("a"))
    assert ledger.state_digest(T, keys) == first  # times and errors are not part of it
    ledger.record_submitted(T, [("a", "run-a")])
    submitted = ledger.state_digest(T, keys)
    assert submitted != first
    ledger.record_pending(T, pending("c"))
    assert ledger.state_digest(T, keys) not in (first, submitted)


def test_state_digest_streams_many_keys(ledger: Ledger) -> None:
    keys = [f"k{i:05d}" for i in range(2500)]
    ledger.record_pending(T, pending(*keys[:1000]))
    assert ledger.state_digest(T, iter(keys)) == ledger.state_digest(T, list(reversed(keys)))


def test_a_closed_ledger_refuses_calls(ledger: Ledger) -> None:
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError, match="is closed"):
        ledger.count(T)


def test_repr_names_the_location(ledger: Ledger, ledger_url: str) -> None:
    assert ledger.location in repr(ledger)


def test_record_pending_replaces_submitted_rows_only_when_asked(ledger: Ledger) -> None:
    ledger.record_pending(T, pending("a", "b"))
    ledger.record_submitted(T, [("a", "run-a1"), ("b", "run-b1")])
    with pytest.raises(KeyTakenError):
        ledger.record_pending(T, pending("a", digest="d2"))
    ledger.record_pending(T, pending("a", digest="d2"), replace_submitted=True)
    assert ledger.lookup(T, ["a"])["a"].digest == "d2"
    assert states(ledger) == {"a": ("pending", None), "b": ("submitted", "run-b1")}
    with pytest.raises(KeyTakenError):  # a pending row is never taken, not even when replacing
        ledger.record_pending(T, pending("a", digest="d3"), replace_submitted=True)
    ledger.record_submitted(T, [("a", "run-a2")])
    assert states(ledger)["a"] == ("submitted", "run-a2")


def test_entries_filter_by_state_in_the_database(ledger: Ledger) -> None:
    ledger.record_pending(T, pending("a", "b", "c", "d", manifest="m1") + pending("e", manifest="m2"))
    ledger.record_submitted(T, [("a", "run-a")])
    ledger.record_failed(T, ["b"], "refused")
    ledger.record_unknown(T, ["c", "e"], "timeout")
    assert [e.key for e in ledger.entries(T, states=("pending", "unknown"))] == ["c", "d", "e"]
    assert [e.key for e in ledger.entries(T, ["m1"], states=("pending", "unknown"))] == ["c", "d"]
    assert [e.key for e in ledger.entries(T, states=("submitted",))] == ["a"]
    assert list(ledger.entries(T, states=())) == []
