"""Triggering runs on the embedded engine with the raw generated stubs, over real gRPC on loopback."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from hatchet_client._proto.v1 import admin_pb2
from hatchet_client.engine import Engine, RunStore

from tests.engine.traceparent import user_metadata


def test_single_trigger_stores_the_run_and_returns_a_uuid4(stubs: Any, auth: Any, req: Any, store: RunStore) -> None:
    before = datetime.now(UTC)
    resp = stubs.workflows.TriggerWorkflow(
        req("ManualTriggerWorkflow", {"test": "test"}, {"hello": "moon"}), metadata=auth
    )

    run_id = resp.workflow_run_id
    assert uuid.UUID(run_id).version == 4 and str(uuid.UUID(run_id)) == run_id
    [run] = store.list_runs()
    assert (run.run_id, run.workflow_name, run.input, user_metadata(run.additional_metadata), run.priority) == (
        run_id,
        "ManualTriggerWorkflow",
        {"test": "test"},
        {"hello": "moon"},
        None,
    )
    assert before - timedelta(seconds=1) <= run.received_at <= datetime.now(UTC)


def test_bulk_trigger_answers_ids_in_request_order(stubs: Any, auth: Any, req: Any, bulk: Any, store: RunStore) -> None:
    items = [req(f"wf-{i % 3}", {"i": i}, {"i": str(i)}, priority=1 + i % 3) for i in range(250)]

    ids = list(stubs.workflows.BulkTriggerWorkflow(bulk(items), metadata=auth).workflow_run_ids)

    assert len(ids) == len(set(ids)) == 250
    by_id = {run.run_id: run for run in store.list_runs()}
    for i, run_id in enumerate(ids):
        run = by_id[run_id]
        assert (run.workflow_name, run.input, user_metadata(run.additional_metadata), run.priority) == (
            f"wf-{i % 3}",
            {"i": i},
            {"i": str(i)},
            1 + i % 3,
        )
    assert [r.run_id for r in store.list_runs()] == ids  # stored in arrival order


def test_a_bulk_call_of_exactly_1000_runs_is_accepted(
    stubs: Any, auth: Any, req: Any, bulk: Any, store: RunStore
) -> None:
    resp = stubs.workflows.BulkTriggerWorkflow(bulk([req(input={"i": i}) for i in range(1000)]), metadata=auth)
    assert len(resp.workflow_run_ids) == 1000
    assert store.count() == 1000


def test_input_and_metadata_are_stored_as_sent(stubs: Any, auth: Any, req: Any, store: RunStore) -> None:
    cases = [
        ("", None, {}, {}),  # empty input is allowed, no metadata
        ('  {"a": [1, 2.5, null, true]}\n', '{"k": "v"}', {"a": [1, 2.5, None, True]}, {"k": "v"}),
        ('{"text": "caf\\u00e9 \\ud83d\\ude00"}', None, {"text": "café 😀"}, {}),
        ("{}", '{"n": 5, "nested": {"a": "b"}}', {}, {"n": 5, "nested": {"a": "b"}}),
    ]
    for input_text, meta_text, _, _ in cases:
        stubs.workflows.TriggerWorkflow(req(input=input_text, metadata=meta_text), metadata=auth)
    stored = [(r.input, user_metadata(r.additional_metadata)) for r in store.list_runs()]
    assert stored == [(i, m) for _, _, i, m in cases]


@pytest.mark.parametrize("metadata", ["[1, 2]", "5", '"text"', "null"])
def test_metadata_that_is_not_an_object_is_replaced_by_an_empty_one(
    stubs: Any, auth: Any, req: Any, store: RunStore, metadata: str
) -> None:
    stubs.workflows.TriggerWorkflow(req(input={"a": 1}, metadata=metadata), metadata=auth)
    [run] = store.list_runs()
    assert user_metadata(run.additional_metadata) == {}


def test_gzip_compressed_requests_are_accepted(engine: Engine, auth: Any, req: Any, bulk: Any) -> None:
    from hatchet_client._proto import workflows_pb2_grpc

    with grpc.insecure_channel(engine.address, compression=grpc.Compression.Gzip) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        resp = stub.BulkTriggerWorkflow(
            bulk([req(input={"pad": "x" * 500, "i": i}) for i in range(100)]), metadata=auth
        )
    assert len(resp.workflow_run_ids) == 100
    assert [r.input["i"] for r in engine.store.list_runs()] == list(range(100))


def test_runs_are_committed_before_the_call_returns_and_survive_a_restart(db_path: Any, req: Any, bulk: Any) -> None:
    with Engine(db_path, port=0) as eng:
        token = eng.token()
        tenant = eng.tenant_id
        from hatchet_client._proto import workflows_pb2_grpc

        with grpc.insecure_channel(eng.address) as channel:
            stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
            ids = list(
                stub.BulkTriggerWorkflow(
                    bulk([req(input={"i": i}) for i in range(20)]), metadata=(("authorization", f"bearer {token}"),)
                ).workflow_run_ids
            )
            # A second connection, opened only after the answer: the runs are already committed.
            with RunStore(db_path) as reader:
                assert [r.run_id for r in reader.list_runs()] == ids

    with Engine(db_path, port=0) as again:
        assert again.tenant_id == tenant
        assert [r.run_id for r in again.store.list_runs()] == ids
        with grpc.insecure_channel(again.address) as channel:
            stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
            # The token issued before the restart is still valid (same secret, same token id on record).
            more = stub.TriggerWorkflow(req(input={"i": 20}), metadata=(("authorization", f"bearer {token}"),))
        assert again.store.count() == 21
        assert again.store.get_run(more.workflow_run_id) is not None


@pytest.mark.parametrize("indexed", [False, True])
def test_get_run_details_reports_queued_and_not_done(
    engine: Engine, stubs: Any, auth: Any, req: Any, indexed: bool
) -> None:
    run_id = stubs.workflows.TriggerWorkflow(req(input={"x": 1}, metadata={"k": "v"}), metadata=auth).workflow_run_id
    if indexed:
        engine.index_now()

    details = stubs.admin.GetRunDetails(admin_pb2.GetRunDetailsRequest(external_id=run_id), metadata=auth)

    assert details.status == admin_pb2.QUEUED
    assert details.done is False
    assert json.loads(details.input) == {"x": 1}
    assert user_metadata(json.loads(details.additional_metadata)) == {"k": "v"}
    assert dict(details.task_runs) == {}


def test_get_run_details_returns_the_json_texts_as_received(stubs: Any, auth: Any, req: Any) -> None:
    text = '{"big": 1e400, "b": 1.50, "a": [ ]}'
    run_id = stubs.workflows.TriggerWorkflow(req(input=text, metadata='{"k" : "v"}'), metadata=auth).workflow_run_id
    details = stubs.admin.GetRunDetails(admin_pb2.GetRunDetailsRequest(external_id=run_id), metadata=auth)
    assert details.input == text.encode()
    # The engine's traceparent comes first; the caller's text follows as sent.
    assert re.fullmatch(rb'\{"traceparent":"00-[0-9a-f]{32}-[0-9a-f]{16}-01","k" : "v"\}', details.additional_metadata)


@pytest.mark.parametrize("external_id", ["6f1e2d3c-0000-4000-8000-00000000abcd", "not-a-uuid", ""])
def test_get_run_details_of_an_unknown_run_is_not_found(stubs: Any, auth: Any, external_id: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stubs.admin.GetRunDetails(admin_pb2.GetRunDetailsRequest(external_id=external_id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_keepalive_pings_without_calls_in_flight_are_accepted(engine: Engine, auth: Any, req: Any) -> None:
    """The official client pings every 10 s even when idle; a default gRPC server counts such pings as strikes
    and drops the connection (GOAWAY too_many_pings) at the third. gRPC clamps a client's ping interval to 1 s,
    so 5 s of idle pinging is the shortest test that a default server fails (it does so after about 4.5 s)."""
    from hatchet_client._proto import workflows_pb2_grpc

    options = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_timeout_ms", 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_time_between_pings_ms", 100),
    ]
    states: list[grpc.ChannelConnectivity] = []
    with grpc.insecure_channel(engine.address, options=options) as channel:
        channel.subscribe(states.append, try_to_connect=True)
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        stub.TriggerWorkflow(req(input={"i": 1}), metadata=auth)
        time.sleep(5.0)
        stub.TriggerWorkflow(req(input={"i": 2}), metadata=auth)
        channel.unsubscribe(states.append)
    assert grpc.ChannelConnectivity.READY in states
    after_ready = states[states.index(grpc.ChannelConnectivity.READY) :]
    assert after_ready == [grpc.ChannelConnectivity.READY], f"connection dropped: {after_ready}"
    assert engine.store.count() == 2
