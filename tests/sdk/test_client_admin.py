"""run_workflow / run_workflows against the embedded engine over loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hatchet_client import (
    BulkSubmitError,
    ClientConfig,
    Hatchet,
    ResultTimeoutError,
    RpcError,
    RunValidationError,
    WorkflowRunRef,
)

Stored = Callable[..., list[Any]]


def test_run_workflow_sends_the_contract_fields(hatchet: Hatchet, stored: Stored) -> None:
    ref = hatchet.client.admin.run_workflow(
        "ManualTriggerWorkflow",
        {"test": "test", "n": [1, 2.5, None]},
        options={"additional_metadata": {"hello": "moon", "n": 5, "ok": True}, "priority": 2},
    )
    assert isinstance(ref, WorkflowRunRef)
    [run] = stored()
    assert run.run_id == ref.workflow_run_id
    assert run.workflow_name == "ManualTriggerWorkflow"
    assert run.input == {"test": "test", "n": [1, 2.5, None]}
    assert run.additional_metadata == {"hello": "moon", "n": "5", "ok": "true"}
    assert run.priority == 2


def test_namespace_prefixes_the_workflow_name(engine: Any, stored: Stored) -> None:
    with Hatchet(token=engine.token(), tls_strategy="none", namespace="Bench", environ={}) as hatchet:
        hatchet.admin.run_workflow("BulkParent", {})
        hatchet.admin.run_workflows([{"workflow_name": "bench_Other", "input": {}}])
        hatchet.admin.run_workflow("BulkParent", {}, options={"namespace": "Team"})
    assert sorted(r.workflow_name for r in stored()) == ["bench_BulkParent", "bench_Other", "team_BulkParent"]


def test_run_workflows_returns_refs_in_input_order(hatchet: Hatchet, stored: Stored) -> None:
    runs = [
        {"workflow_name": "BulkParent", "input": {"n": i}, "options": {"additional_metadata": {"i": i}}}
        for i in range(2345)
    ]
    refs = hatchet.admin.run_workflows(runs, batch_size=100, concurrency=4)
    assert len(refs) == 2345
    by_id = {r.run_id: r for r in stored()}
    assert len(by_id) == 2345
    assert [by_id[ref.workflow_run_id].input["n"] for ref in refs] == list(range(2345))
    assert all(by_id[ref.workflow_run_id].additional_metadata == {"i": str(i)} for i, ref in enumerate(refs))


def test_an_empty_bulk_sends_nothing(hatchet: Hatchet, stored: Stored) -> None:
    assert hatchet.admin.run_workflows([]) == []
    assert hatchet.admin.run_workflows(iter([])) == []
    assert stored() == []


def test_an_invalid_run_in_a_list_stops_everything_before_sending(hatchet: Hatchet, stored: Stored) -> None:
    runs: list[Any] = [{"workflow_name": "W", "input": {"n": i}} for i in range(3000)]
    runs[2500]["options"] = {"additional_metadata": {"bad": None}}
    with pytest.raises(RunValidationError, match=r"^run 2500: options\.additional_metadata\.bad: "):
        hatchet.admin.run_workflows(runs)
    assert stored() == []


def test_an_invalid_run_in_a_stream_stops_at_its_chunk(hatchet: Hatchet, stored: Stored) -> None:
    def runs() -> Iterator[Any]:
        for i in range(3000):
            yield {"workflow_name": "W", "input": {"n": i} if i != 2500 else {"n": float("nan")}}

    with pytest.raises(BulkSubmitError) as info:
        hatchet.admin.run_workflows(runs(), batch_size=1000, concurrency=1)
    err = info.value
    assert isinstance(err.__cause__, RunValidationError)
    assert str(err.__cause__).startswith("run 2500: input: not JSON-serialisable")
    assert sorted(err.run_ids) == list(range(2000))
    assert err.failed == [] and err.unknown == []
    assert err.not_sent_from == 2000
    assert (err.fate(1999), err.fate(2000), err.fate(2999)) == ("submitted", "not_sent", "not_sent")
    assert {r.run_id for r in stored()} == set(err.run_ids.values())


def test_run_workflow_reports_a_rejected_call_as_not_applied(engine: Any, make_token: Callable[..., str]) -> None:
    forged = make_token(grpc_broadcast_address=engine.address)
    with Hatchet(token=forged, tls_strategy="none", environ={}) as hatchet, pytest.raises(RpcError) as info:
        hatchet.admin.run_workflow("W", {})
    assert info.value.code == "UNAUTHENTICATED"
    assert info.value.applied is False
    assert str(info.value).startswith("TriggerWorkflow failed: UNAUTHENTICATED: ")
    assert str(info.value).endswith("(nothing was applied)")
    assert forged not in str(info.value)


def test_no_engine_listening_is_a_clear_not_sent_error(make_token: Callable[..., str], unused_port: int) -> None:
    token = make_token(grpc_broadcast_address=f"127.0.0.1:{unused_port}")
    with Hatchet(token=token, tls_strategy="none", connect_timeout=0.3, environ={}) as hatchet:
        with pytest.raises(RpcError) as info:
            hatchet.admin.run_workflow("W", {})
        assert str(info.value) == f"cannot connect to 127.0.0.1:{unused_port} within 0.3s; nothing was sent"
        assert info.value.applied is False
        with pytest.raises(BulkSubmitError) as bulk:
            hatchet.admin.run_workflows([{"workflow_name": "W", "input": {}}] * 1500)
    assert bulk.value.run_ids == {}
    assert bulk.value.failed == list(range(1000))
    assert bulk.value.not_sent_from == 1000
    assert (bulk.value.fate(0), bulk.value.fate(1200)) == ("failed", "not_sent")


def test_gzip_compression_is_accepted(engine: Any, stored: Stored) -> None:
    with Hatchet(ClientConfig(token=engine.token(), tls_strategy="none", grpc_compression="gzip", environ={})) as h:
        refs = h.admin.run_workflows([{"workflow_name": "W", "input": {"s": "x" * 1000, "i": i}} for i in range(50)])
    assert sorted(r.run_id for r in stored()) == sorted(r.workflow_run_id for r in refs)


def test_result_waits_and_times_out_on_a_queued_run(hatchet: Hatchet) -> None:
    ref = hatchet.admin.run_workflow("W", {"a": 1}, options={"additional_metadata": {"k": "v"}})
    details = ref.details()
    assert (details.status, details.done, details.input) == ("QUEUED", False, {"a": 1})
    assert details.additional_metadata == {"k": "v"}
    with pytest.raises(
        ResultTimeoutError, match=rf"^run {ref.workflow_run_id} not done after 0.3s \(last status QUEUED\)$"
    ):
        ref.result(timeout=0.3)


def test_hatchet_from_the_environment(engine: Any, clean_env: pytest.MonkeyPatch, stored: Stored) -> None:
    clean_env.setenv("HATCHET_CLIENT_TOKEN", engine.token())
    clean_env.setenv("HATCHET_CLIENT_TLS_STRATEGY", "none")
    with Hatchet() as hatchet:
        ref = hatchet.admin.run_workflow("W", {})
    assert [r.run_id for r in stored()] == [ref.workflow_run_id]


@pytest.fixture
def unused_port(tmp_path: Path) -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
