"""The engine serving TLS and mTLS (gRPC and the REST listing), with certificates generated here."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from hatchet_client._proto import workflows_pb2_grpc
from hatchet_client._proto.v1 import trigger_pb2
from hatchet_client.engine import Engine, EngineError, ServerTLS

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _issue(name: str, key: Any, issuer: Any, issuer_key: Any, *, ca: bool = False, ip: str | None = None) -> Any:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)), x509.DNSName("localhost")]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")

    def write(name: str, cert: Any, key: Any) -> tuple[Path, Path]:
        cert_path, key_path = root / f"{name}.crt", root / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    ca_cert = _issue("test ca", ca_key, ca_name, ca_key, ca=True)
    ca_path, _ = write("ca", ca_cert, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = write("server", _issue("127.0.0.1", server_key, ca_name, ca_key, ip="127.0.0.1"), server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = write("client", _issue("client", client_key, ca_name, ca_key), client_key)
    return Pki(ca_path, server[0], server[1], client[0], client[1])


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
def tls_engine(tmp_path: Path, pki: Pki) -> Iterator[Engine]:
    with Engine(tmp_path / "tls.db", port=0, tls=ServerTLS(pki.server_cert, pki.server_key)) as eng:
        yield eng


@pytest.fixture
def mtls_engine(tmp_path: Path, pki: Pki) -> Iterator[Engine]:
    with Engine(tmp_path / "mtls.db", port=0, tls=ServerTLS(pki.server_cert, pki.server_key, pki.ca)) as eng:
        yield eng


def test_tls_serves_grpc_and_https(tls_engine: Engine, pki: Pki) -> None:
    assert tls_engine.server_url.startswith("https://127.0.0.1:")
    run_id = _trigger(tls_engine, grpc.ssl_channel_credentials(pki.ca.read_bytes()))
    assert _rest(tls_engine, ssl.create_default_context(cafile=str(pki.ca))) == [run_id]


def test_tls_refuses_plaintext_clients(tls_engine: Engine) -> None:
    with grpc.insecure_channel(tls_engine.address) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.TriggerWorkflow(trigger_pb2.TriggerWorkflowRequest(name="wf"), timeout=2)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert tls_engine.store.count() == 0


def test_mtls_requires_a_client_certificate(mtls_engine: Engine, pki: Pki) -> None:
    with_cert = grpc.ssl_channel_credentials(
        pki.ca.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
    )
    run_id = _trigger(mtls_engine, with_cert)
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    assert _rest(mtls_engine, context) == [run_id]

    with pytest.raises(grpc.RpcError) as err:
        _trigger(mtls_engine, grpc.ssl_channel_credentials(pki.ca.read_bytes()))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _rest(mtls_engine, ssl.create_default_context(cafile=str(pki.ca)))
    assert mtls_engine.store.count() == 1


def test_unreadable_tls_files_are_a_clear_error(tmp_path: Path, pki: Pki) -> None:
    eng = Engine(tmp_path / "x.db", port=0, tls=ServerTLS(tmp_path / "missing.crt", pki.server_key))
    with pytest.raises(EngineError, match="cannot read the engine's TLS files"):
        eng.start()
    assert not eng.running
