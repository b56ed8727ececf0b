"""Fixtures for the client tests: tokens, TLS certificates, and the embedded engine on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
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
