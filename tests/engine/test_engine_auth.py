"""Authentication: every RPC needs `authorization: bearer <token>` with a token this engine issued."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from hatchet_client._proto.v1 import admin_pb2
from hatchet_client.engine import Engine, EngineError, TokenError, tokens


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _secret(engine: Engine) -> bytes:
    return tokens.load_or_create_secret(tokens.secret_path(engine.db_path))


def _refused(stubs: Any, req: Any, metadata: Any) -> str:
    with pytest.raises(grpc.RpcError) as err:
        stubs.workflows.TriggerWorkflow(req(input="{}"), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return str(err.value.details())


def test_the_token_carries_the_claims_clients_need(engine: Engine) -> None:
    token = engine.token()
    claims = _claims(token)
    assert token.startswith("ey") and token.count(".") == 2
    assert claims["sub"] == engine.tenant_id
    assert claims["grpc_broadcast_address"] == engine.address == f"127.0.0.1:{engine.port}"
    assert claims["server_url"] == engine.server_url == f"http://127.0.0.1:{engine.rest_port}"
    assert uuid.UUID(claims["token_id"])
    assert claims["iat"] <= time.time() < claims["exp"]
    assert claims["aud"] == [tokens.AUDIENCE] and claims["iss"] == tokens.ISSUER


@pytest.mark.parametrize("scheme", ["bearer", "Bearer", "BEARER"])
def test_the_scheme_is_matched_case_insensitively(engine: Engine, stubs: Any, req: Any, scheme: str) -> None:
    token = engine.token()
    stubs.workflows.TriggerWorkflow(req(input="{}"), metadata=(("authorization", f"{scheme} {token}"),))
    assert engine.store.count() == 1


def test_a_call_without_a_token_is_unauthenticated(engine: Engine, stubs: Any, req: Any) -> None:
    assert "missing authorization" in _refused(stubs, req, None)
    assert engine.store.count() == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("token abc.def.ghi", "not of the form 'bearer <token>'"),
        ("bearer", "not of the form"),
        ("bearer not-a-jwt", "not a JWT"),
        ("bearer a.b.c", "not a JWT"),
    ],
)
def test_malformed_authorization_is_unauthenticated(stubs: Any, req: Any, value: str, message: str) -> None:
    assert message in _refused(stubs, req, (("authorization", value),))


def test_a_token_from_another_engine_is_unauthenticated(
    engine: Engine, stubs: Any, req: Any, tmp_path: Path, as_auth: Any
) -> None:
    with Engine(tmp_path / "other.db", port=0) as other:
        foreign = other.token()
    details = _refused(stubs, req, as_auth(foreign))
    assert "signature is invalid" in details
    assert foreign not in details and foreign.split(".")[2] not in details


def test_an_expired_token_is_unauthenticated(engine: Engine, stubs: Any, req: Any, as_auth: Any) -> None:
    assert "expired" in _refused(stubs, req, as_auth(engine.token(ttl=timedelta(seconds=-1))))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sub": str(uuid.uuid4())}, "another tenant"),
        ({"aud": ["somebody-else"]}, "audience"),
        ({"iss": "https://cloud.onhatchet.run"}, "issuer"),
        ({"token_id": str(uuid.uuid4())}, "token id is unknown"),
        ({"token_id": None}, "lacks the token_id claim"),
        ({"server_url": None}, "lacks the server_url claim"),
        ({"iat": time.time() + 3600}, "issue time"),
        ({"exp": None}, "no expiry"),
    ],
)
def test_a_signed_token_with_wrong_claims_is_unauthenticated(
    engine: Engine, stubs: Any, req: Any, as_auth: Any, change: dict[str, Any], message: str
) -> None:
    claims = {**_claims(engine.token()), **change}
    forged = tokens.sign({k: v for k, v in claims.items() if v is not None}, _secret(engine))
    assert message in _refused(stubs, req, as_auth(forged))


def test_an_unsigned_token_is_unauthenticated(engine: Engine, stubs: Any, req: Any, as_auth: Any) -> None:
    header, payload, _ = engine.token().split(".")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    assert "HS256" in _refused(stubs, req, as_auth(f"{none_header}.{payload}."))
    assert "signature is invalid" in _refused(stubs, req, as_auth(f"{header}.{payload}.AAAA"))


def test_get_run_details_requires_a_token_too(stubs: Any) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stubs.admin.GetRunDetails(admin_pb2.GetRunDetailsRequest(external_id=str(uuid.uuid4())))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_verified_token_expires_even_when_remembered() -> None:
    now = [1_000_000.0]
    secret = os.urandom(32)
    claims = tokens.new_claims("tenant", "http://x", "x:1", ttl_seconds=60, now=now[0])
    verifier = tokens.TokenVerifier(secret, "tenant", lambda token_id: True, clock=lambda: now[0])
    token = tokens.sign(claims, secret)
    verifier.verify(token)
    now[0] += 59
    verifier.verify(token)  # remembered
    now[0] += 2
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token)


def test_the_secret_is_private_to_its_owner(engine: Engine) -> None:
    path = tokens.secret_path(engine.db_path)
    assert path.parent == engine.db_path.parent
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    with pytest.raises(EngineError, match="accessible by other users"):
        Engine(engine.db_path, port=0)
