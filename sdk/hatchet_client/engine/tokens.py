"""HS256 JSON Web Tokens signed with a secret kept beside the engine's database.

Only the standard library: the signature is HMAC-SHA256 over `base64url(header).base64url(claims)`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hatchet_client.engine.errors import EngineError, TokenError

ISSUER = "hatchet-manifest-engine"
AUDIENCE = "hatchet-manifest-engine"
CLOCK_LEEWAY_SECONDS = 60
_HEADER = {"alg": "HS256", "typ": "JWT"}
_SECRET_BYTES = 32


def secret_path(db_path: Path) -> Path:
    """The secret lives beside the database: `engine.db` -> `engine.db.secret`."""
    return db_path.with_name(db_path.name + ".secret")


def load_or_create_secret(path: Path) -> bytes:
    """Read the signing secret, creating it (mode 0600) on first use; refuse one others can read."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(_SECRET_BYTES).hex())
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise EngineError(f"the engine secret {path} is accessible by other users; run: chmod 600 {path}")
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise EngineError(f"the engine secret {path} is not hex text; delete it to create a new one") from None
    if len(secret) < 16:
        raise EngineError(f"the engine secret {path} is too short; delete it to create a new one")
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: dict[str, Any], secret: bytes) -> str:
    signing_input = _b64(json.dumps(_HEADER, separators=(",", ":")).encode()) + "."
    signing_input += _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def new_claims(
    tenant_id: str, server_url: str, grpc_address: str, ttl_seconds: float, now: float | None = None
) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    return {
        "sub": tenant_id,
        "server_url": server_url,
        "grpc_broadcast_address": grpc_address,
        "token_id": str(uuid.uuid4()),
        "iat": issued,
        "exp": issued + int(ttl_seconds),
        "aud": [AUDIENCE],
        "iss": ISSUER,
    }


def verify(token: str, secret: bytes, tenant_id: str, now: float) -> dict[str, Any]:
    """Check the signature and the claims; return the claims or raise TokenError."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token is not a JWT (expected 3 dot-separated parts)")
    try:
        header = json.loads(_unb64(parts[0]))
        signature = _unb64(parts[2])
    except ValueError:
        raise TokenError("token is not a JWT (undecodable header or signature)") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("token is not signed with HS256")
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise TokenError("token signature is invalid (not issued by this engine)")
    try:
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        raise TokenError("token claims are not JSON") from None
    if not isinstance(claims, dict):
        raise TokenError("token claims are not a JSON object")
    _check_claims(claims, tenant_id, now)
    return claims


def _check_claims(claims: dict[str, Any], tenant_id: str, now: float) -> None:
    aud = claims.get("aud")
    if not (aud == AUDIENCE or (isinstance(aud, list) and AUDIENCE in aud)):
        raise TokenError("token audience is not this engine")
    if claims.get("iss") != ISSUER:
        raise TokenError("token issuer is not this engine")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenError("token has no expiry (exp)")
    if exp <= now:
        raise TokenError("token has expired")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + CLOCK_LEEWAY_SECONDS:
        raise TokenError("token issue time (iat) is missing or in the future")
    if claims.get("sub") != tenant_id:
        raise TokenError("token is for another tenant")
    for claim in ("server_url", "grpc_broadcast_address", "token_id"):
        if not isinstance(claims.get(claim), str) or not claims[claim]:
            raise TokenError(f"token lacks the {claim} claim")


class TokenVerifier:
    """Verifies tokens for one engine; remembers good ones until they expire (verification is per RPC)."""

    _MAX_CACHED = 1024

    def __init__(
        self,
        secret: bytes,
        tenant_id: str,
        token_known: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._tenant_id = tenant_id
        self._token_known = token_known
        self._clock = clock
        self._cache: dict[str, float] = {}  # token -> exp
        self._lock = threading.Lock()

    def verify(self, token: str) -> None:
        now = self._clock()
        exp = self._cache.get(token)
        if exp is not None:
            if exp > now:
                return
            with self._lock:
                self._cache.pop(token, None)
            raise TokenError("token has expired")
        claims = verify(token, self._secret, self._tenant_id, now)
        if not self._token_known(claims["token_id"]):
            raise TokenError("token id is unknown to this engine (revoked or from another database)")
        with self._lock:
            if len(self._cache) >= self._MAX_CACHED:
                self._cache.clear()
            self._cache[token] = float(claims["exp"])

    def verify_header(self, value: str | None) -> None:
        """Check an `authorization` value: `bearer <token>`, the scheme matched case-insensitively."""
        if not value:
            raise TokenError("missing authorization (expected 'bearer <token>')")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError("authorization is not of the form 'bearer <token>'")
        self.verify(token.strip())
