"""The ledger's threads during a launch: the write-ahead one chunk ahead of the sending, outcomes recorded in
order, and what an apply that stops early leaves in the ledger (real threads, a real ledger and engine)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hatchet_client.engine import Fault

import hatchet_manifest as hm
from hatchet_manifest.apply.recorder import OutcomeRecorder, WriteAhead
from hatchet_manifest.apply.spool import Spool
from hatchet_manifest.ledger import Ledger
from hatchet_manifest.plan.target import Connection
from tests.conftest import ROOT


def _chunks(n: int, read: list[int] | None = None) -> Iterator[tuple[list[str], bytes]]:
    for i in range(n):
        if read is not None:
            read.append(i)
        yield [f"k{i}"], f"payload-{i}".encode()


def test_write_ahead_records_each_chunk_before_handing_it_over_and_stays_one_ahead() -> None:
    recorded: list[int] = []
    ahead = WriteAhead(_chunks(5), lambda seq, tags: recorded.append(seq))
    taken = []
    for tags, payload in ahead:
        time.sleep(0.05)  # a slow sender: the thread must wait, not run through the input
        taken.append((tags, payload))
        assert len(recorded) <= len(taken) + 2  # the chunk taken, one in hand-over, one being recorded
        assert recorded[: len(taken)] == list(range(len(taken)))
    assert taken == [([f"k{i}"], f"payload-{i}".encode()) for i in range(5)]
    assert recorded == [0, 1, 2, 3, 4]
    ahead.stop()


def test_a_failed_record_is_raised_in_place_of_its_chunk_and_ends_the_stream() -> None:
    def record(seq: int, tags: list[str]) -> None:
        if seq == 2:
            raise hm.LedgerError("disk full")

    ahead = WriteAhead(_chunks(10), record)
    taken = [seq for seq, _ in enumerate(ahead)]
    assert taken == [0, 1, 2]  # chunk 2 is handed over: sending it must raise its error
    assert ahead.failed(0) is None and ahead.failed(1) is None
    assert str(ahead.failed(2)) == "disk full"
    ahead.stop()


def test_an_error_reading_the_chunks_is_raised_by_the_iteration() -> None:
    def broken() -> Iterator[tuple[list[str], bytes]]:
        yield ["a"], b"a"
        raise OSError("spool unreadable")

    ahead = WriteAhead(broken(), lambda seq, tags: None)
    got = []
    with pytest.raises(OSError, match="spool unreadable"):
        for item in ahead:
            got.append(item)
    assert got == [(["a"], b"a")]
    ahead.stop()


def test_stop_ends_a_thread_waiting_to_hand_over_and_reads_no_further() -> None:
    read: list[int] = []
    ahead = WriteAhead(_chunks(1000, read), lambda seq, tags: None)
    it = iter(ahead)
    next(it)
    deadline = time.monotonic() + 2
    while len(read) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    ahead.stop()
    assert not any(t.name == "hatchet-manifest-write-ahead" for t in threading.enumerate())
    assert len(read) <= 4  # it stopped reading the input


def test_outcome_recorder_keeps_order_and_hands_errors_to_the_caller() -> None:
    seen: list[int] = []

    def record(n: int) -> None:
        if n == 3:
            raise hm.LedgerError("ledger locked")
        seen.append(n)

    recorder: OutcomeRecorder[int] = OutcomeRecorder(record)
    for n in range(6):
        recorder.put(n)
    recorder.close()
    assert seen == [0, 1, 2, 4, 5]  # the outcomes after the error are still recorded
    assert [str(e) for e in recorder.errors] == ["ledger locked"]
    with pytest.raises(hm.LedgerError, match="ledger locked"):
        recorder.check()


def test_an_apply_stopped_by_a_fatal_refusal_leaves_nothing_pending(tmp_path: Path) -> None:
    """Chunks recorded ahead but never sent are recorded failed (never applied): the next apply sends them,
    without --resubmit-unknown, and every run reaches the engine once."""
    manifests = hm.load([ROOT / "manifests" / "bulk-parent.yaml"])
    options = hm.ApplyOptions(batch_size=10, concurrency=1)

    def apply(ledger: Ledger, conn: Connection) -> hm.ApplyResult:
        renderer = hm.Renderer(manifests, hm.Values(set=["count=100"]), reveal_secrets=True)
        plan = hm.Plan(renderer.runs(), hm.LedgerBaseline(ledger, conn.target), ["bulk-parent"])
        result = hm.ApplyResult()
        with Spool(conn.hatchet.admin.encoder(), tmp_path, batch_size=10) as spool:
            spool.write(hm.select(plan, options, result))
            return hm.Executor(ledger, conn.target, conn.hatchet.admin, options, result=result).run(spool)

    with hm.open_ledger(None, tmp_path) as ledger, hm.connect("embedded", tmp_path) as conn:
        assert conn.engine is not None
        conn.engine.inject(Fault(kind="refuse", on_call=3, code="PERMISSION_DENIED"))
        first = apply(ledger, conn)
        assert (first.submitted, first.failed, first.exit_code) == (20, 10, 3)
        states = Counter(e.state for e in ledger.entries(conn.target))
        assert states["submitted"] == 20
        assert set(states) <= {"submitted", "failed"}  # nothing pending: the unsent chunks are failed
        assert 20 <= states["failed"] <= 40  # the refused chunk, and the ones recorded ahead of the sending

        second = apply(ledger, conn)
        assert (second.submitted, second.exit_code) == (80, 0)
        keys = Counter(r.additional_metadata["hatchet-manifest/key"] for r in conn.engine.store.list_runs())
        assert len(keys) == 100 and set(keys.values()) == {1}
