"""Read the claims of a Hatchet API token (a JWT) without verifying its signature, as the official SDK does.

Only the engine can verify the signature; the client needs the claims to find the engine and the tenant.
Errors describe what is wrong with the token and never include any part of it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from hatchet_client.errors import TokenError

REQUIRED_CLAIMS = ("sub", "server_url", "grpc_broadcast_address")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The claims a client uses. `tenant_id` is the `sub` claim; `expires_at` is `exp` (seconds since the epoch)."""

    tenant_id: str
    server_url: str
    grpc_broadcast_address: str
    expires_at: int | None = None


def decode_token(token: str) -> TokenClaims:
    """Decode the token's payload, applying the official SDK's checks: it starts with `ey`, has three
    dot-separated parts, and its payload is a JSON object with string claims `sub`, `server_url` and
    `grpc_broadcast_address`."""
    if not isinstance(token, str) or not token:
        raise TokenError("the API token is empty")
    if not token.startswith("ey"):
        raise TokenError("the API token is not a JWT (it must start with 'ey')")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError(f"the API token is not a JWT (it has {len(parts)} dot-separated parts, not 3)")
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        raise TokenError("the API token's payload is not base64url-encoded JSON") from None
    if not isinstance(claims, dict):
        raise TokenError("the API token's payload is not a JSON object")
    missing = [c for c in REQUIRED_CLAIMS if not isinstance(claims.get(c), str) or not claims[c]]
    if missing:
        raise TokenError("the API token lacks the claim(s) " + ", ".join(missing))
    exp = claims.get("exp")
    return TokenClaims(
        tenant_id=claims["sub"],
        server_url=claims["server_url"],
        grpc_broadcast_address=claims["grpc_broadcast_address"],
        expires_at=exp if isinstance(exp, int) and not isinstance(exp, bool) else None,
    )
