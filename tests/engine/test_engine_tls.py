"""The engine serving TLS and mTLS (gRPC and the REST listing), with certificates generated here."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hatchet_client._proto import workflows_pb2_grpc
from hatchet_client._proto.v1 import trigger_pb2
from hatchet_client.engine import Engine, EngineError, ServerTLS

from tests.pki import TLSFiles


def _trigger(engine: Engine, credentials: grpc.ChannelCredentials) -> str:
    with grpc.secure_channel(engine.address, credentials) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        resp = stub.TriggerWorkflow(
            trigger_pb2.TriggerWorkflowRequest(name="wf", input="{}"),
            metadata=(("authorization", f"bearer {engine.token()}"),),
            timeout=10,
        )
    return str(resp.workflow_run_id)


def _rest(engine: Engine, context: ssl.SSLContext) -> Any:
    url = f"{engine.server_url}/api/v1/stable/tenants/{engine.tenant_id}/workflow-runs/external-ids"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {engine.token()}"})
    with urllib.request.urlopen(request, context=context, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def tls_engine(tmp_path: Path, tls_files: TLSFiles) -> Iterator[Engine]:
    with Engine(tmp_path / "tls.db", port=0, tls=ServerTLS(tls_files.server_cert, tls_files.server_key)) as eng:
        yield eng


@pytest.fixture
def mtls_engine(tmp_path: Path, tls_files: TLSFiles) -> Iterator[Engine]:
    with Engine(
        tmp_path / "mtls.db", port=0, tls=ServerTLS(tls_files.server_cert, tls_files.server_key, tls_files.ca)
    ) as eng:
        yield eng


def test_tls_serves_grpc_and_https(tls_engine: Engine, tls_files: TLSFiles) -> None:
    assert tls_engine.server_url.startswith("https://127.0.0.1:")
    run_id = _trigger(tls_engine, grpc.ssl_channel_credentials(tls_files.ca.read_bytes()))
    assert _rest(tls_engine, ssl.create_default_context(cafile=str(tls_files.ca))) == [run_id]


def test_tls_refuses_plaintext_clients(tls_engine: Engine) -> None:
    with grpc.insecure_channel(tls_engine.address) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.TriggerWorkflow(trigger_pb2.TriggerWorkflowRequest(name="wf"), timeout=2)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert tls_engine.store.count() == 0


def test_mtls_requires_a_client_certificate(mtls_engine: Engine, tls_files: TLSFiles) -> None:
    with_cert = grpc.ssl_channel_credentials(
        tls_files.ca.read_bytes(), tls_files.client_key.read_bytes(), tls_files.client_cert.read_bytes()
    )
    run_id = _trigger(mtls_engine, with_cert)
    context = ssl.create_default_context(cafile=str(tls_files.ca))
    context.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
    assert _rest(mtls_engine, context) == [run_id]

    with pytest.raises(grpc.RpcError) as err:
        _trigger(mtls_engine, grpc.ssl_channel_credentials(tls_files.ca.read_bytes()))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _rest(mtls_engine, ssl.create_default_context(cafile=str(tls_files.ca)))
    assert mtls_engine.store.count() == 1


def test_unreadable_tls_files_are_a_clear_error(tmp_path: Path, tls_files: TLSFiles) -> None:
    eng = Engine(tmp_path / "x.db", port=0, tls=ServerTLS(tmp_path / "missing.crt", tls_files.server_key))
    with pytest.raises(EngineError, match="cannot read the engine's TLS files"):
        eng.start()
    assert not eng.running
