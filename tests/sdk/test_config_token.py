"""Token decoding: the official SDK's checks, and errors that never show the token."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hatchet_client import TokenError, decode_token

MakeToken = Callable[..., str]


def test_claims_are_read_without_verifying_the_signature(make_token: MakeToken) -> None:
    claims = decode_token(make_token(exp=1_900_000_000))
    assert claims.tenant_id == "707d0855-80ab-4e1f-a156-f1c4546cbf52"
    assert claims.server_url == "http://127.0.0.1:8080"
    assert claims.grpc_broadcast_address == "127.0.0.1:7077"
    assert claims.expires_at == 1_900_000_000


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda t: "", "the API token is empty"),
        (lambda t: "x" + t, "the API token is not a JWT (it must start with 'ey')"),
        (lambda t: t + ".extra", "the API token is not a JWT (it has 4 dot-separated parts, not 3)"),
        (lambda t: t.rsplit(".", 1)[0], "the API token is not a JWT (it has 2 dot-separated parts, not 3)"),
        (lambda t: t.split(".")[0] + ".!!!notbase64.sig", "the API token's payload is not base64url-encoded JSON"),
        (
            lambda t: t.split(".")[0] + "." + base64.urlsafe_b64encode(b"[1]").decode().rstrip("=") + ".sig",
            "the API token's payload is not a JSON object",
        ),
    ],
)
def test_malformed_tokens_are_refused_without_quoting_them(make_token: MakeToken, mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    token = mangle(make_token())
    with pytest.raises(TokenError) as info:
        decode_token(token)
    assert str(info.value) == message
    if token:
        for part in token.split("."):
            if len(part) > 3:
                assert part not in str(info.value)


@pytest.mark.parametrize("claim", ["sub", "server_url", "grpc_broadcast_address"])
def test_each_required_claim_is_checked(make_token: MakeToken, claim: str) -> None:
    with pytest.raises(TokenError, match=rf"^the API token lacks the claim\(s\) {claim}$"):
        decode_token(make_token(**{claim: None}))
    with pytest.raises(TokenError, match=claim):
        decode_token(make_token(**{claim: 42}))


def test_a_non_integer_exp_is_ignored(make_token: MakeToken) -> None:
    assert decode_token(make_token(exp="soon")).expires_at is None
