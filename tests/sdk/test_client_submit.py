"""The lower-level bulk interface against the embedded engine: chunking, outcomes, faults, no duplicates."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hatchet_client import (
    BulkSubmitError,
    BulkSubmitInterrupted,
    Chunk,
    ChunkOutcome,
    ClientConfig,
    Hatchet,
    Pacer,
    SubmissionStopped,
)
from hatchet_client.encode import RunEncoder, varint

Stored = Callable[..., list[Any]]


def runs(n: int, produced: list[int] | None = None) -> Iterator[tuple[str, Any]]:
    """(tag, run) pairs made on demand; `produced[0]` counts how many were taken."""
    for i in range(n):
        if produced is not None:
            produced[0] += 1
        yield f"k{i}", {"workflow_name": "W", "input": {"n": i}, "options": {"additional_metadata": {"key": f"k{i}"}}}


def fault(**kw: Any) -> Any:
    from hatchet_client.engine import Fault

    return Fault(**kw)


def keys(stored: Stored) -> list[str]:
    return sorted((r.additional_metadata["key"] for r in stored()), key=lambda k: int(k[1:]))


def test_every_run_gets_its_run_id_by_tag(hatchet: Hatchet, stored: Stored) -> None:
    outcomes = list(hatchet.admin.submit(runs(2500), batch_size=1000, concurrency=2))
    assert sorted(len(o.chunk) for o in outcomes) == [500, 1000, 1000]
    assert all(o.state == "submitted" and o.sent and o.code is None for o in outcomes)
    in_order = sorted(outcomes, key=lambda o: o.seq)
    assert [t for o in in_order for t in o.tags] == [f"k{i}" for i in range(2500)]
    assert [o.chunk.first_index for o in in_order] == [0, 1000, 2000]
    by_id = {r.run_id: r.additional_metadata["key"] for r in stored()}
    assert {rid: tag for o in outcomes for tag, rid in zip(o.tags, o.run_ids, strict=True)} == by_id


def test_before_send_runs_before_each_call_and_input_is_read_lazily(hatchet: Hatchet, stored: Stored) -> None:
    produced = [0]
    seen: list[tuple[int, int, int]] = []

    def before_send(chunk: Chunk[str]) -> None:
        seen.append((chunk.seq, produced[0], len(stored())))

    outcomes = list(hatchet.admin.submit(runs(35, produced), batch_size=10, concurrency=1, before_send=before_send))
    assert [o.state for o in outcomes] == ["submitted"] * 4
    # Chunk k is announced when the engine holds exactly the k chunks before it, and before any run past
    # it was read from the input.
    assert seen == [(0, 10, 0), (1, 20, 10), (2, 30, 20), (3, 35, 30)]


def test_chunks_count_the_framing_bytes(engine: Any, stored: Stored) -> None:
    run = {"workflow_name": "W", "input": {"s": ""}}
    item = RunEncoder("", 1 << 22).encode_item(run, 0)
    body = len(item) - 1 - len(varint(len(item) - 2))
    pad = 98 - body  # make each message 98 bytes: 100 with its framing
    run = {"workflow_name": "W", "input": {"s": "x" * pad}}
    assert len(RunEncoder("", 1 << 22).encode_item(run, 0)) == 100
    limit = 98 * 11  # eleven messages fit if the framing is forgotten; only ten once it is counted
    config = ClientConfig(token=engine.token(), tls_strategy="none", grpc_max_send_message_length=limit, environ={})
    with Hatchet(config) as hatchet:
        outcomes = list(hatchet.admin.submit(((i, run) for i in range(25)), concurrency=1))
    assert [(len(o.chunk), o.chunk.size) for o in sorted(outcomes, key=lambda o: o.seq)] == [
        (10, 1000),
        (10, 1000),
        (5, 500),
    ]
    assert all(o.state == "submitted" for o in outcomes)
    assert len(stored()) == 25


def test_a_refused_chunk_failed_and_the_others_went_on(engine: Any, hatchet: Hatchet, stored: Stored) -> None:
    engine.inject(fault(kind="refuse", on_call=2, code="INVALID_ARGUMENT"))
    outcomes = list(hatchet.admin.submit(runs(30), batch_size=10, concurrency=1))
    assert [(o.seq, o.state, o.code, o.fatal, o.sent) for o in outcomes] == [
        (0, "submitted", None, False, True),
        (1, "failed", "INVALID_ARGUMENT", False, True),
        (2, "submitted", None, False, True),
    ]
    assert keys(stored) == [f"k{i}" for i in [*range(10), *range(20, 30)]]


@pytest.mark.parametrize("kind", ["refuse", "fail_after_commit"])
def test_unavailable_is_unknown_and_never_resent(engine: Any, hatchet: Hatchet, stored: Stored, kind: str) -> None:
    engine.inject(fault(kind=kind, on_call=2, code="UNAVAILABLE"))
    outcomes = list(hatchet.admin.submit(runs(30), batch_size=10, concurrency=1))
    assert [(o.seq, o.state, o.code) for o in outcomes] == [
        (0, "submitted", None),
        (1, "unknown", "UNAVAILABLE"),
        (2, "submitted", None),
    ]
    assert outcomes[1].run_ids == ()
    # Refused: the chunk is absent. Committed then failed: it is there ONCE - the client did not resend it.
    expected = [*range(10), *range(20, 30)] if kind == "refuse" else list(range(30))
    assert keys(stored) == [f"k{i}" for i in expected]


def test_a_deadline_expiry_is_unknown(engine: Any, hatchet: Hatchet, stored: Stored) -> None:
    engine.inject(fault(kind="stall", on_call=1, seconds=1.0))
    outcomes = list(hatchet.admin.submit(runs(20), batch_size=10, concurrency=2, timeout=0.3))
    # Both chunks are in flight at once, so either may reach the engine first and be the stalled call.
    by_seq = {o.seq: (o.state, o.code) for o in outcomes}
    assert set(by_seq) == {0, 1}
    assert sorted(by_seq.values(), key=str) == [("submitted", None), ("unknown", "DEADLINE_EXCEEDED")]
    # The stalled call was handled after the client gave up: "unknown" was the truth, and nothing is doubled.
    deadline = time.monotonic() + 5
    while len(stored()) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keys(stored) == [f"k{i}" for i in range(20)]


@pytest.mark.parametrize("code", ["RESOURCE_EXHAUSTED", "UNAUTHENTICATED", "PERMISSION_DENIED"])
def test_a_fatal_failure_stops_the_submission(engine: Any, hatchet: Hatchet, stored: Stored, code: str) -> None:
    engine.inject(fault(kind="refuse", on_call=2, code=code))
    produced = [0]
    submission = hatchet.admin.submit(runs(100, produced), batch_size=10, concurrency=1)
    got: list[ChunkOutcome[str]] = []
    with pytest.raises(SubmissionStopped) as info:
        got.extend(submission)
    assert [(o.seq, o.state) for o in got] == [(0, "submitted"), (1, "failed")]
    assert got[1].fatal and got[1].code == code
    assert info.value.outcome is got[1]
    assert submission.sent_runs == 20
    assert produced[0] <= 31  # stopped reading the input
    assert len(stored()) == 10


def test_stop_on_unknown(engine: Any, hatchet: Hatchet) -> None:
    engine.inject(fault(kind="fail_after_commit", on_call=1))
    submission = hatchet.admin.submit(runs(50), batch_size=10, concurrency=1, stop_on_unknown=True)
    got: list[ChunkOutcome[str]] = []
    with pytest.raises(SubmissionStopped):
        got.extend(submission)
    assert [(o.seq, o.state) for o in got] == [(0, "unknown")]
    assert submission.sent_runs == 10


def test_an_unauthenticated_token_stops_at_the_first_chunk(
    engine: Any, make_token: Callable[..., str], stored: Stored
) -> None:
    with Hatchet(token=make_token(grpc_broadcast_address=engine.address), tls_strategy="none", environ={}) as h:
        submission = h.admin.submit(runs(3000), concurrency=1)
        with pytest.raises(SubmissionStopped, match=r"^submission stopped: chunk 0: UNAUTHENTICATED: "):
            list(submission)
        assert submission.sent_runs == 1000
    assert stored() == []


def test_run_workflows_partial_failure_keeps_every_run_id(engine: Any, hatchet: Hatchet, stored: Stored) -> None:
    engine.inject(fault(kind="refuse", on_call=2, code="INVALID_ARGUMENT"))
    engine.inject(fault(kind="fail_after_commit", on_call=3, code="INTERNAL"))
    runs_ = [{"workflow_name": "W", "input": {"n": i}} for i in range(50)]
    with pytest.raises(BulkSubmitError) as info:
        hatchet.admin.run_workflows(runs_, batch_size=10, concurrency=1)
    err = info.value
    assert sorted(err.run_ids) == [*range(10), *range(30, 50)]
    assert err.failed == list(range(10, 20))
    assert err.unknown == list(range(20, 30))
    assert err.not_sent_from is None
    assert [err.fate(i) for i in (0, 15, 25, 49)] == ["submitted", "failed", "unknown", "submitted"]
    assert str(err).startswith(
        "bulk submission incomplete: 30 runs submitted, 10 failed, 10 with unknown fate (may have been created): "
        "runs 10..19: INVALID_ARGUMENT: "
    )
    inputs = {r.run_id: r.input["n"] for r in stored()}
    assert all(inputs[run_id] == i for i, run_id in err.run_ids.items())
    assert len(inputs) == 40  # the unknown chunk was in fact committed, once


def test_close_repeats_the_unacknowledged_outcome(hatchet: Hatchet) -> None:
    submission = hatchet.admin.submit(runs(40), batch_size=10, concurrency=1)
    first = next(submission)
    # The caller may have been interrupted before recording `first`: close() hands it back.
    assert submission.close() == [first]
    assert next(submission, None) is None
    assert submission.close() == []


def test_close_cancels_calls_in_flight_as_unknown(engine: Any, hatchet: Hatchet, stored: Stored) -> None:
    engine.inject(fault(kind="stall", on_call=2, seconds=1.0))
    submission = hatchet.admin.submit(runs(40), batch_size=10, concurrency=1)
    assert next(submission).state == "submitted"
    with pytest.raises(TimeoutError):
        _next_within(submission, 0.2)  # interrupted while chunk 1 is in flight
    [outcome] = submission.close(wait=0.0)
    assert (outcome.seq, outcome.state, outcome.code, outcome.sent) == (1, "unknown", "CANCELLED", True)
    # The engine may well have applied it: that is why it is "unknown".
    deadline = time.monotonic() + 3
    while len(stored()) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keys(stored) == [f"k{i}" for i in range(20)]


def test_close_can_wait_for_the_true_outcome(engine: Any, hatchet: Hatchet) -> None:
    engine.inject(fault(kind="stall", on_call=1, seconds=0.5))
    submission = hatchet.admin.submit(runs(10), batch_size=10)
    with pytest.raises(TimeoutError):
        _next_within(submission, 0.1)
    [outcome] = submission.close(wait=5.0)
    assert (outcome.seq, outcome.state) == (0, "submitted")


def _next_within(submission: Any, seconds: float) -> Any:
    """next(submission), interrupted after `seconds` by a signal whose handler raises TimeoutError."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGUSR1))
    previous = signal.signal(signal.SIGUSR1, _raise_timeout)
    timer.start()
    try:
        return next(submission)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)


def _raise_timeout(signum: int, frame: Any) -> None:
    raise TimeoutError


def test_ctrl_c_loses_no_outcome(engine: Any, hatchet: Hatchet, stored: Stored) -> None:
    engine.inject(fault(kind="stall", on_call=3, seconds=1.0))
    recorded: dict[int, ChunkOutcome[str]] = {}
    pending: set[int] = set()
    submission = hatchet.admin.submit(
        runs(60), batch_size=10, concurrency=2, before_send=lambda chunk: pending.add(chunk.seq)
    )
    timer = threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            for outcome in submission:
                recorded[outcome.seq] = outcome
        for outcome in submission.close(wait=0.0):
            recorded[outcome.seq] = outcome  # idempotent by seq
    finally:
        timer.cancel()
    # Every chunk announced by before_send has an outcome; the stalled one is unknown, not lost.
    assert set(recorded) == pending
    states = sorted(o.state for o in recorded.values())
    assert states.count("unknown") == 1 and states.count("submitted") == len(states) - 1
    submitted = {rid for o in recorded.values() for rid in o.run_ids}
    assert submitted <= {r.run_id for r in stored()}


def test_bad_arguments_raise_before_anything_is_sent(hatchet: Hatchet, stored: Stored) -> None:
    with pytest.raises(ValueError, match=r"^batch_size must be in 1\.\.1000, not 1001$"):
        hatchet.admin.submit(runs(5), batch_size=1001)
    with pytest.raises(ValueError, match=r"^batch_size must be in 1\.\.1000, not 0$"):
        hatchet.admin.run_workflows(iter([]), batch_size=0)
    with pytest.raises(ValueError, match=r"^concurrency must be at least 1, not 0$"):
        hatchet.admin.run_workflows([{"workflow_name": "W", "input": {}}], concurrency=0)
    assert stored() == []


def test_ctrl_c_in_run_workflows_keeps_what_was_submitted(engine: Any, hatchet: Hatchet, stored: Stored) -> None:
    engine.inject(fault(kind="stall", on_call=3, seconds=1.0))
    runs_ = [{"workflow_name": "W", "input": {"n": i}} for i in range(50)]
    timer = threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(BulkSubmitInterrupted) as info:
            hatchet.admin.run_workflows(runs_, batch_size=10, concurrency=1)
    finally:
        timer.cancel()
    assert isinstance(info.value, KeyboardInterrupt)
    partial = info.value.partial
    assert sorted(partial.run_ids) == list(range(20))
    assert partial.unknown == list(range(20, 30))
    assert partial.not_sent_from == 30
    inputs = {r.run_id: r.input["n"] for r in stored()}
    assert all(inputs[run_id] == i for i, run_id in partial.run_ids.items())


class FakeClock:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_pacer_spaces_calls_and_makes_up_no_lost_time() -> None:
    clock = FakeClock()
    pacer = Pacer(100, clock, clock.sleep)
    assert pacer.pause() == 0.0  # the first call goes at once
    pacer.sent(50)
    assert pacer.pause() == 0.5
    clock.now = 2.0  # the engine was slow: no burst to catch up
    assert pacer.pause() == 0.0
    pacer.sent(100)
    assert pacer.pause() == 1.0
    with pytest.raises(ValueError, match="above 0"):
        Pacer(0)


def test_runs_per_second_paces_the_calls(hatchet: Hatchet, stored: Stored) -> None:
    clock = FakeClock()
    sent_at: list[float] = []
    outcomes = list(
        hatchet.admin.submit(
            runs(40),
            batch_size=10,
            concurrency=1,
            before_send=lambda chunk: sent_at.append(clock()),
            runs_per_second=Pacer(20, clock, clock.sleep),  # 10 runs a call: one call every 0.5 s
        )
    )
    assert [o.state for o in outcomes] == ["submitted"] * 4
    assert sent_at == [0.0, 0.5, 1.0, 1.5]
    assert all(0 < s <= 0.25 for s in clock.slept)  # short sleeps: outcomes and Ctrl-C are not kept waiting
    assert len(stored()) == 40
