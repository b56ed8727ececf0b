"""Events on the embedded engine, over real gRPC: a push (ours and the official hatchet-sdk's) stores the event and
starts a run of every workflow whose `on_events` matches its key (`*` a wildcard), with the payload as input and
the event's metadata plus `hatchet__event_id` / `hatchet__event_key`; an official worker (a real process)
completes them. Keys that match nothing start nothing; Hatchet's limits and checks refuse a call whole.

One engine and one worker serve the whole module (tests/engine/trigger_worker_app.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hatchet_client import EventPushError, Hatchet
from hatchet_client._proto import events_pb2, events_pb2_grpc
from hatchet_client.engine import Engine
from hatchet_client.engine.store import StoredRun

from tests.engine.dispatch_helpers import run_sdk, sdk_env, settled, wait_for, wait_listening

pytest.importorskip("hatchet_sdk")

WORKER_APP = Path(__file__).with_name("trigger_worker_app.py")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with Engine(tmp_path_factory.mktemp("events") / "engine.db", port=0, worker_timeout=10) as eng:
        yield eng


@pytest.fixture(scope="module")
def worker(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER_APP), "w-events"],
            env=sdk_env(engine),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_listening(engine, "w-events")
            yield
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def hatchet(engine: Engine, worker: None) -> Iterator[Hatchet]:
    client = Hatchet(token=engine.token(), tls_strategy="none", connect_timeout=5, environ={})
    yield client
    client.close()


@pytest.fixture(scope="module")
def events_stub(engine: Engine) -> Iterator[events_pb2_grpc.EventsServiceStub]:
    with grpc.insecure_channel(engine.address) as channel:
        yield events_pb2_grpc.EventsServiceStub(channel)


def event_runs(engine: Engine, event_id: str) -> dict[str, StoredRun]:
    """The runs an event started, by workflow name."""
    runs = list(engine.store.list_runs(metadata={"hatchet__event_id": event_id}))
    assert len({run.workflow_name for run in runs}) == len(runs)
    return {run.workflow_name: run for run in runs}


def stored_events(engine: Engine) -> int:
    return int(engine.store.read(lambda conn: conn.execute("SELECT count(*) FROM events").fetchone()[0]))


def test_a_push_starts_the_workflows_whose_events_match(engine: Engine, hatchet: Hatchet) -> None:
    metadata = {"suite": "push", "hatchet__event_id": "forged", "hatchet__source_step_run_id": "kept"}
    event = hatchet.event.push("user:created", {"id": 41, "note": "hello"}, metadata, priority=2)
    assert (event.key, event.payload, event.additional_metadata) == (
        "user:created",
        {"id": 41, "note": "hello"},
        metadata,
    )
    assert event.tenant_id == engine.tenant_id
    runs = event_runs(engine, event.event_id)  # started in the push's own transaction
    assert sorted(runs) == ["UserAny", "UserCreated"]  # `user:*` matches; `order:paid` does not
    for run in runs.values():
        assert run.input == {"id": 41, "note": "hello"}
        assert run.priority == 2
        meta = dict(run.additional_metadata)
        meta.pop("traceparent")
        assert meta == {
            "suite": "push",
            "hatchet__source_step_run_id": "kept",
            "hatchet__event_id": event.event_id,
            "hatchet__event_key": "user:created",
        }
    for run in runs.values():
        assert wait_for("the run to settle", lambda r=run: settled(engine, r.run_id), timeout=60) == "COMPLETED"
    assert engine.store.get_run(runs["UserCreated"].run_id) is not None


def test_keys_that_match_nothing_start_nothing(engine: Engine, hatchet: Hatchet) -> None:
    event = hatchet.event.push("invoice:paid", {"id": 1})
    assert event_runs(engine, event.event_id) == {}
    namespaced = Hatchet(token=engine.token(), tls_strategy="none", namespace="ns", environ={})
    try:
        other = namespaced.event.push("user:created", {"id": 2})  # the namespace is applied, as the SDK does
    finally:
        namespaced.close()
    assert other.key == "ns_user:created"
    assert event_runs(engine, other.event_id) == {}


def test_bulk_push_is_sent_in_calls_of_1000(engine: Engine, hatchet: Hatchet) -> None:
    before = stored_events(engine)
    events = [{"key": "bulk:nothing", "payload": {"i": i}} for i in range(1001)]
    events.append({"key": "order:refunded", "payload": {"id": 9}, "additional_metadata": {"suite": "bulk"}})
    pushed = hatchet.event.bulk_push(events)
    assert [e.payload for e in pushed] == [e["payload"] for e in events]
    assert stored_events(engine) == before + 1002
    assert sorted(event_runs(engine, pushed[-1].event_id)) == ["OrderPaid"]
    assert all(event_runs(engine, e.event_id) == {} for e in pushed[:3])


def test_refused_calls_store_nothing(engine: Engine, events_stub: events_pb2_grpc.EventsServiceStub) -> None:
    auth = (("authorization", f"bearer {engine.token()}"),)
    before = stored_events(engine)

    def refused(call: object, request: object) -> str:
        with pytest.raises(grpc.RpcError) as info:
            call(request, metadata=auth)  # type: ignore[operator]
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return str(info.value.details())

    good = events_pb2.PushEventRequest(key="user:created", payload="{}")
    too_many = events_pb2.BulkPushEventRequest(events=[good] * 1001)
    assert refused(events_stub.BulkPush, too_many) == "Invalid request: too many events - 1001 is over maximum (1000)"
    assert refused(events_stub.BulkPush, events_pb2.BulkPushEventRequest()) == "No events to ingest"
    bad_json = events_pb2.BulkPushEventRequest(events=[good, events_pb2.PushEventRequest(key="k", payload="{")])
    assert refused(events_stub.BulkPush, bad_json) == "Invalid request: events[1]: invalid json in field `payload`"
    assert (
        refused(events_stub.Push, events_pb2.PushEventRequest(key="", payload="{}"))
        == "Invalid request: key is required"
    )
    assert refused(events_stub.Push, events_pb2.PushEventRequest(key="k", payload="{}", priority=4)) == (
        "priority must be between 1 and 3, got 4"
    )
    assert refused(events_stub.Push, events_pb2.PushEventRequest(key="k", payload="[1]")).startswith(
        "Invalid request: payload must be a JSON object"
    )
    assert stored_events(engine) == before


def test_our_client_refuses_before_sending(hatchet: Hatchet) -> None:
    with pytest.raises(EventPushError, match=r"events\[1\]: key must be a non-empty string") as info:
        hatchet.event.bulk_push([{"key": "a", "payload": {}}, {"key": "", "payload": {}}])
    assert (info.value.code, info.value.applied) == (None, False)
    with pytest.raises(EventPushError, match="priority must be 1, 2 or 3"):
        hatchet.event.push("a", {}, priority=5)
    with pytest.raises(EventPushError, match="payload cannot be sent as JSON"):
        hatchet.event.push("a", {"x": float("nan")})


def test_the_official_sdk_pushes_events(engine: Engine, hatchet: Hatchet) -> None:
    code = textwrap.dedent(
        """
        import json
        from hatchet_sdk import Hatchet
        from hatchet_sdk.clients.events import BulkPushEventWithMetadata

        h = Hatchet()
        one = h.event.push("order:paid", {"id": 5}, additional_metadata={"suite": "official"})
        many = h.event.bulk_push([
            BulkPushEventWithMetadata(key="user:signed-in", payload={"id": 6}, additional_metadata={"suite": "official"}),
            BulkPushEventWithMetadata(key="nothing:here", payload={"id": 7}),
        ])
        print("RESULT " + json.dumps({
            "one": [one.event_id, one.key, json.loads(one.payload), json.loads(one.additional_metadata)],
            "many": [[e.event_id, e.key] for e in many],
        }))
        """
    )
    result = run_sdk(engine, code)
    one_id, key, payload, metadata = result["one"]
    assert (key, payload, metadata) == ("order:paid", {"id": 5}, {"suite": "official"})
    assert sorted(event_runs(engine, one_id)) == ["OrderPaid"]
    (signed_in, k1), (nothing, k2) = result["many"]
    assert (k1, k2) == ("user:signed-in", "nothing:here")
    runs = event_runs(engine, signed_in)
    assert sorted(runs) == ["UserAny"]
    assert event_runs(engine, nothing) == {}
    assert wait_for("the run to settle", lambda: settled(engine, runs["UserAny"].run_id), timeout=60) == "COMPLETED"
    assert json.loads(json.dumps(runs["UserAny"].input)) == {"id": 6}
