"""Fixtures for the client tests: tokens, TLS certificates, and the embedded engine on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MakeToken = Callable[..., str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def make_token() -> MakeToken:
    """An unsigned JWT-shaped token with the given claims (defaults: a full set). `None` drops a claim."""

    def make(**claims: Any) -> str:
        body: dict[str, Any] = {
            "sub": "707d0855-80ab-4e1f-a156-f1c4546cbf52",
            "server_url": "http://127.0.0.1:8080",
            "grpc_broadcast_address": "127.0.0.1:7077",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        return f"{header}.{_b64(json.dumps(body).encode())}.c2lnbmF0dXJlLXNlY3JldA"

    return make


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, generated with cryptography."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def write_key(path: Path, k: ec.EllipticCurvePrivateKey) -> Path:
        path.write_bytes(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return path

    def write_cert(path: Path, cert: x509.Certificate) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(k, hashes.SHA256())
        )
        return k, cert

    def leaf(
        ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, cn: str, server: bool
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        k = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return k, builder.sign(ca_key, hashes.SHA256())

    ca_key, ca = make_ca("hatchet-manifest test CA")
    server_key, server = leaf(ca_key, ca, "localhost", server=True)
    client_key, client = leaf(ca_key, ca, "test-client", server=False)
    _, other = make_ca("unrelated CA")
    return TLSFiles(
        ca=write_cert(out / "ca.pem", ca),
        server_cert=write_cert(out / "server.pem", server),
        server_key=write_key(out / "server.key", server_key),
        client_cert=write_cert(out / "client.pem", client),
        client_key=write_key(out / "client.key", client_key),
        other_ca=write_cert(out / "other-ca.pem", other),
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No HATCHET_CLIENT_* variable from the outer environment leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("HATCHET_CLIENT_"):
            monkeypatch.delenv(name)
    yield monkeypatch


@pytest.fixture
def engine_db(tmp_path: Path) -> Path:
    return tmp_path / "engine.db"


@pytest.fixture
def engine(engine_db: Path) -> Iterator[Any]:
    """The embedded engine on a free loopback port, with a fresh database."""
    from hatchet_client.engine import Engine

    with Engine(engine_db, port=0) as eng:
        yield eng


@pytest.fixture
def hatchet(engine: Any) -> Iterator[Any]:
    """Our client for `engine`, configured explicitly (the outer environment is ignored)."""
    from hatchet_client import Hatchet

    client = Hatchet(token=engine.token(), tls_strategy="none", connect_timeout=5, environ={})
    yield client
    client.close()


@pytest.fixture
def stored(engine: Any, engine_db: Path) -> Callable[..., list[Any]]:
    """The runs the engine stored, read back from its database: stored(metadata={...}, workflow=...)."""
    from hatchet_client.engine import RunStore

    def read(**filters: Any) -> list[Any]:
        return list(RunStore(engine_db).list_runs(**filters))

    return read
