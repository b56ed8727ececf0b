"""run_workflow / run_workflows against the embedded engine over loopback."""

from __future__ import annotations

import contextlib
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
from hatchet_client.encode import RunEncoder

from tests.engine.traceparent import user_metadata

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
    assert user_metadata(run.additional_metadata) == {"hello": "moon", "n": "5", "ok": "true"}
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
    assert all(
        user_metadata(by_id[ref.workflow_run_id].additional_metadata) == {"i": str(i)} for i, ref in enumerate(refs)
    )


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


def test_uncompressed_calls_are_accepted(engine: Any, stored: Stored) -> None:
    with Hatchet(ClientConfig(token=engine.token(), tls_strategy="none", grpc_compression="none", environ={})) as h:
        refs = h.admin.run_workflows([{"workflow_name": "W", "input": {"s": "x" * 1000, "i": i}} for i in range(50)])
    assert sorted(r.run_id for r in stored()) == sorted(r.workflow_run_id for r in refs)


def test_result_waits_and_times_out_on_a_queued_run(hatchet: Hatchet) -> None:
    ref = hatchet.admin.run_workflow("W", {"a": 1}, options={"additional_metadata": {"k": "v"}})
    details = ref.details()
    assert (details.status, details.done, details.input) == ("QUEUED", False, {"a": 1})
    assert user_metadata(details.additional_metadata) == {"k": "v"}
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


class CountingRelay:
    """A TCP relay to the engine that counts the bytes the client sends."""

    def __init__(self, target: tuple[str, int]) -> None:
        import socket
        import threading

        self.target = target
        self.sent = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = [self._server]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for src, dst, counted in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pipe, args=(src, dst, counted), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pipe(self, src: Any, dst: Any, counted: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    return
                dst.sendall(data)
            except OSError:
                return
            if counted:
                with self._lock:
                    self.sent += len(data)

    def close(self) -> None:
        import socket

        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked in recv/accept
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_gzip_shrinks_what_goes_on_the_wire(engine: Any, compression: str, stored: Stored) -> None:
    host, port = engine.address.rsplit(":", 1)
    relay = CountingRelay((host, int(port)))
    runs = [{"workflow_name": "W", "input": {"text": "the same words again " * 20, "i": i}} for i in range(1000)]
    encoder = RunEncoder("", 4 * 1024 * 1024)
    raw = sum(len(encoder.encode_item(r, i)) for i, r in enumerate(runs))
    try:
        with Hatchet(
            token=engine.token(),
            host_port=f"127.0.0.1:{relay.port}",
            tls_strategy="none",
            grpc_compression=compression,
            environ={},
        ) as hatchet:
            hatchet.admin.run_workflows(runs)
    finally:
        relay.close()
    assert len(stored()) == 1000
    if compression == "gzip":
        assert relay.sent < raw / 5
    else:
        assert relay.sent > raw
