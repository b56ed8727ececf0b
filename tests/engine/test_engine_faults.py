"""Faults injected on request: refuse a call, fail after committing, stall."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from hatchet_client.engine import Engine, EngineError, Fault, RunStore
from hatchet_client.engine.faults import FaultSchedule, faults_from_json


def _trigger(
    stubs: Any, auth: Any, req: Any, bulk: Any, tag: str, n: int = 3, timeout: float | None = None
) -> list[str]:
    items = [req(input={"tag": tag, "i": i}, metadata={"tag": tag}) for i in range(n)]
    return list(stubs.workflows.BulkTriggerWorkflow(bulk(items), metadata=auth, timeout=timeout).workflow_run_ids)


def _tags(engine: Engine) -> list[str]:
    return [run.input["tag"] for run in engine.store.list_runs()]


def test_refuse_aborts_the_nth_call_before_writing(engine: Engine, stubs: Any, auth: Any, req: Any, bulk: Any) -> None:
    _trigger(stubs, auth, req, bulk, "before")
    engine.inject(Fault(kind="refuse", on_call=2))  # counted from now: the 2nd call from here
    _trigger(stubs, auth, req, bulk, "first")
    with pytest.raises(grpc.RpcError) as err:
        _trigger(stubs, auth, req, bulk, "refused")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    _trigger(stubs, auth, req, bulk, "after")
    assert _tags(engine) == ["before"] * 3 + ["first"] * 3 + ["after"] * 3


def test_fail_after_commit_stores_the_runs_then_reports_an_error(
    engine: Engine, stubs: Any, auth: Any, req: Any, bulk: Any
) -> None:
    engine.inject(Fault(kind="fail_after_commit", code="INTERNAL"))
    with pytest.raises(grpc.RpcError) as err:
        _trigger(stubs, auth, req, bulk, "committed")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "committed" in err.value.details()
    assert _tags(engine) == ["committed"] * 3


def test_a_fault_can_hit_several_calls_in_a_row(engine: Engine, stubs: Any, auth: Any, req: Any, bulk: Any) -> None:
    engine.inject(Fault(kind="refuse", on_call=1, times=2, code="RESOURCE_EXHAUSTED"))
    for tag in ("a", "b"):
        with pytest.raises(grpc.RpcError) as err:
            _trigger(stubs, auth, req, bulk, tag)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _trigger(stubs, auth, req, bulk, "c")
    assert _tags(engine) == ["c"] * 3


def test_single_triggers_count_as_calls_too(engine: Engine, stubs: Any, auth: Any, req: Any) -> None:
    engine.inject(Fault(kind="refuse", on_call=1))
    with pytest.raises(grpc.RpcError):
        stubs.workflows.TriggerWorkflow(req(input={"tag": "x"}), metadata=auth)
    assert engine.store.count() == 0


def test_a_stalled_call_that_times_out_on_the_client_still_lands(
    engine: Engine, stubs: Any, auth: Any, req: Any, bulk: Any
) -> None:
    """The 'unknown fate' case: the client gives up, the engine commits anyway (so a blind retry duplicates)."""
    engine.inject(Fault(kind="stall", seconds=0.5))
    with pytest.raises(grpc.RpcError) as err:
        _trigger(stubs, auth, req, bulk, "late", timeout=0.1)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 10
    while engine.store.count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _tags(engine) == ["late"] * 3


def test_a_stall_delays_the_answer(engine: Engine, stubs: Any, auth: Any, req: Any, bulk: Any) -> None:
    engine.inject(Fault(kind="stall", seconds=0.3))
    started = time.monotonic()
    _trigger(stubs, auth, req, bulk, "slow")
    assert time.monotonic() - started >= 0.3
    assert _tags(engine) == ["slow"] * 3


def test_stopping_the_engine_ends_a_stall_and_the_call_completes(
    db_path: Path, req: Any, bulk: Any, as_auth: Any
) -> None:
    from hatchet_client._proto import workflows_pb2_grpc

    eng = Engine(db_path, port=0).start()
    eng.inject(Fault(kind="stall", seconds=60))
    with grpc.insecure_channel(eng.address) as channel:
        future = workflows_pb2_grpc.WorkflowServiceStub(channel).BulkTriggerWorkflow.future(
            bulk([req(input={})]), metadata=as_auth(eng.token())
        )
        time.sleep(0.2)
        started = time.monotonic()
        eng.stop(grace=0.5)
        assert time.monotonic() - started < 10
        [run_id] = future.result(timeout=10).workflow_run_ids
    with RunStore(db_path) as store:
        assert [r.run_id for r in store.list_runs()] == [run_id]


def test_faults_from_the_environment_are_armed_at_start(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, req: Any, bulk: Any, as_auth: Any
) -> None:
    from hatchet_client._proto import workflows_pb2_grpc

    monkeypatch.setenv("HATCHET_ENGINE_FAULTS", json.dumps([{"kind": "refuse", "on_call": 2, "code": "ABORTED"}]))
    with Engine(db_path, port=0) as eng, grpc.insecure_channel(eng.address) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        stub.BulkTriggerWorkflow(bulk([req(input={})]), metadata=as_auth(eng.token()))
        with pytest.raises(grpc.RpcError) as err:
            stub.BulkTriggerWorkflow(bulk([req(input={})]), metadata=as_auth(eng.token()))
        assert err.value.code() == grpc.StatusCode.ABORTED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"kind": "refuse"}', "JSON list of objects"),
        ('[{"kind": "explode"}]', "fault kind 'explode'"),
        ('[{"kind": "refuse", "code": "NOPE"}]', "not a gRPC status code"),
        ('[{"kind": "refuse", "on_call": 0}]', "at least 1"),
        ('[{"kind": "stall", "seconds": -1}]', "must not be negative"),
        ('[{"kind": "refuse", "when": 1}]', "unexpected keyword argument 'when'"),
    ],
)
def test_bad_fault_settings_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        faults_from_json(text)


def test_a_bad_fault_environment_stops_the_engine_from_starting(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATCHET_ENGINE_FAULTS", "[{")
    eng = Engine(db_path, port=0)
    with pytest.raises(EngineError, match="HATCHET_ENGINE_FAULTS"):
        eng.start()
    assert not eng.running


def test_the_schedule_counts_calls_from_each_injection() -> None:
    schedule = FaultSchedule()
    refuse = Fault(kind="refuse", on_call=2)
    schedule.next_call()  # call 1, before any fault
    schedule.inject(refuse)  # hits call 1 + 2 = 3
    stall = Fault(kind="stall", on_call=1, times=3, seconds=0.1)
    schedule.inject(stall)  # hits calls 2, 3, 4
    assert [schedule.next_call() for _ in range(5)] == [[stall], [refuse, stall], [stall], [], []]
