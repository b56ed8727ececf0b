"""Client settings: keyword arguments, then `HATCHET_CLIENT_*` environment variables, then the token's claims.

Every setting `name` is read, when not passed as `ClientConfig(name=...)`, from the environment variable
`HATCHET_CLIENT_<NAME>` (an empty variable counts as unset):

    token                          required; a JWT (see hatchet_client.token)
    host_port                      default: the token's grpc_broadcast_address
    server_url                     default: the token's server_url (REST base URL)
    tenant_id                      default: the token's `sub`
    namespace                      default "" (see apply_namespace)
    tls_strategy                   tls (default) | mtls | none
    tls_root_ca_file               PEM CA bundle; default: the system roots
    tls_cert_file, tls_key_file    the client certificate and key, required for mtls
    tls_server_name                name expected in the server certificate; default: the host of host_port
    grpc_max_send_message_length   default 4194304 (also the size limit of one bulk chunk)
    grpc_max_recv_message_length   default 4194304
    grpc_compression               gzip (default, as the official SDK) | none; gzip costs ~10% client CPU
    call_timeout                   seconds allowed to each trigger call; default: none, like the official SDK
    connect_timeout                seconds to wait for a connection before a call is given up unsent; default 30
    rest_timeout                   total seconds allowed to each REST request, answer included; default 30
    rest_max_response_bytes        the largest REST answer accepted; default 33554432 (32 MiB)

Unlike the official SDK, `.env` files are not read.
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from hatchet_client.errors import ConfigError
from hatchet_client.rest import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, RestLimits
from hatchet_client.token import decode_token

ENV_PREFIX = "HATCHET_CLIENT_"
DEFAULT_MAX_MESSAGE_LENGTH = 4 * 1024 * 1024
DEFAULT_CONNECT_TIMEOUT = 30.0

TLSStrategy = Literal["tls", "mtls", "none"]
Compression = Literal["gzip", "none"]


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """How the gRPC channel is secured. Paths are checked to exist when the config is built."""

    strategy: TLSStrategy
    server_name: str
    root_ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


def apply_namespace(name: str, namespace: str) -> str:
    """The workflow name sent on the wire: `namespace` (already normalised) + `name`, unless `name` already
    starts with the namespace."""
    if not namespace or name.startswith(namespace):
        return name
    return namespace + name


def normalize_namespace(namespace: str) -> str:
    """`Bench` -> `bench_`; `` -> ``. Lowercased, with `_` appended when missing, as the official SDK does."""
    if not namespace:
        return ""
    if not namespace.endswith("_"):
        namespace += "_"
    return namespace.lower()


def split_host_port(host_port: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); ConfigError when malformed."""
    host, sep, port = host_port.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"host_port {host_port!r} is not of the form host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class ClientConfig:
    """Resolved client settings (see the module docstring for each one and its environment variable).

    `environ` replaces `os.environ` as the source of `HATCHET_CLIENT_*` variables (pass `{}` to ignore the
    environment). The token is kept but never shown: not in repr, not in errors.
    """

    __slots__ = (
        "call_timeout",
        "connect_timeout",
        "grpc_compression",
        "grpc_max_recv_message_length",
        "grpc_max_send_message_length",
        "host_port",
        "namespace",
        "rest_limits",
        "server_url",
        "tenant_id",
        "tls",
        "token",
    )

    token: str
    host_port: str
    server_url: str
    tenant_id: str
    namespace: str
    tls: TLSSettings
    grpc_max_send_message_length: int
    grpc_max_recv_message_length: int
    grpc_compression: Compression
    call_timeout: float | None
    connect_timeout: float
    rest_limits: RestLimits

    def __init__(
        self,
        *,
        token: str | None = None,
        host_port: str | None = None,
        server_url: str | None = None,
        tenant_id: str | None = None,
        namespace: str | None = None,
        tls_strategy: str | None = None,
        tls_root_ca_file: str | Path | None = None,
        tls_cert_file: str | Path | None = None,
        tls_key_file: str | Path | None = None,
        tls_server_name: str | None = None,
        grpc_max_send_message_length: int | None = None,
        grpc_max_recv_message_length: int | None = None,
        grpc_compression: str | None = None,
        call_timeout: float | None = None,
        connect_timeout: float | None = None,
        rest_timeout: float | None = None,
        rest_max_response_bytes: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ

        def setting(name: str, value: object) -> str | None:
            if value is not None:
                return str(value)
            raw = env.get(ENV_PREFIX + name.upper(), "")
            return raw or None

        tok = setting("token", token)
        if tok is None:
            raise ConfigError(f"no API token: set {ENV_PREFIX}TOKEN or pass ClientConfig(token=...)")
        claims = decode_token(tok)
        self.token = tok
        self.host_port = setting("host_port", host_port) or claims.grpc_broadcast_address
        host, _ = split_host_port(self.host_port)
        self.server_url = (setting("server_url", server_url) or claims.server_url).rstrip("/")
        self.tenant_id = setting("tenant_id", tenant_id) or claims.tenant_id
        self.namespace = normalize_namespace(setting("namespace", namespace) or "")

        strategy = (setting("tls_strategy", tls_strategy) or "tls").lower()
        if strategy not in ("tls", "mtls", "none"):
            raise ConfigError(f"{ENV_PREFIX}TLS_STRATEGY must be tls, mtls or none, not {strategy!r}")
        used = {"tls": ("tls_root_ca_file",), "mtls": ("tls_root_ca_file", "tls_cert_file", "tls_key_file")}
        files = {
            name: _existing_file(name, setting(name, value)) if name in used.get(strategy, ()) else None
            for name, value in (
                ("tls_root_ca_file", tls_root_ca_file),
                ("tls_cert_file", tls_cert_file),
                ("tls_key_file", tls_key_file),
            )
        }
        if strategy == "mtls" and (files["tls_cert_file"] is None or files["tls_key_file"] is None):
            raise ConfigError(f"tls_strategy mtls needs {ENV_PREFIX}TLS_CERT_FILE and {ENV_PREFIX}TLS_KEY_FILE")
        self.tls = TLSSettings(
            strategy=cast(TLSStrategy, strategy),
            server_name=setting("tls_server_name", tls_server_name) or host or "localhost",
            root_ca_file=files["tls_root_ca_file"],
            cert_file=files["tls_cert_file"],
            key_file=files["tls_key_file"],
        )
        self.grpc_max_send_message_length = _positive_int(
            "grpc_max_send_message_length", setting("grpc_max_send_message_length", grpc_max_send_message_length)
        )
        self.grpc_max_recv_message_length = _positive_int(
            "grpc_max_recv_message_length", setting("grpc_max_recv_message_length", grpc_max_recv_message_length)
        )
        compression = (setting("grpc_compression", grpc_compression) or "gzip").lower()
        if compression not in ("gzip", "none"):
            raise ConfigError(f"{ENV_PREFIX}GRPC_COMPRESSION must be gzip or none, not {compression!r}")
        self.grpc_compression = cast(Compression, compression)
        self.call_timeout = _seconds("call_timeout", setting("call_timeout", call_timeout))
        connect = _seconds("connect_timeout", setting("connect_timeout", connect_timeout))
        self.connect_timeout = DEFAULT_CONNECT_TIMEOUT if connect is None else connect
        rest_seconds = _seconds("rest_timeout", setting("rest_timeout", rest_timeout))
        rest_bytes = setting("rest_max_response_bytes", rest_max_response_bytes)
        self.rest_limits = RestLimits(
            timeout=DEFAULT_TIMEOUT if rest_seconds is None else rest_seconds,
            max_response_bytes=(
                DEFAULT_MAX_RESPONSE_BYTES
                if rest_bytes is None
                else _positive_int("rest_max_response_bytes", rest_bytes)
            ),
        )

    def rest_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS settings for the REST API (server_url): the same root CA and, with mtls, the same client
        certificate as the gRPC channel; None (the system's trust store) when no root CA is configured."""
        if self.tls.strategy == "none" or (self.tls.root_ca_file is None and self.tls.cert_file is None):
            return None
        context = ssl.create_default_context(cafile=str(self.tls.root_ca_file) if self.tls.root_ca_file else None)
        if self.tls.cert_file is not None and self.tls.key_file is not None:
            context.load_cert_chain(str(self.tls.cert_file), str(self.tls.key_file))
        return context

    def apply_namespace(self, name: str) -> str:
        """The full workflow name sent on the wire (see `apply_namespace`)."""
        return apply_namespace(name, self.namespace)

    def __repr__(self) -> str:
        return (
            f"ClientConfig(host_port={self.host_port!r}, server_url={self.server_url!r}, "
            f"tenant_id={self.tenant_id!r}, namespace={self.namespace!r}, tls_strategy={self.tls.strategy!r}, "
            f"token=<hidden>)"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientConfig):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


def _existing_file(name: str, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}: no such file: {path}")
    return path


def _positive_int(name: str, value: str | None) -> int:
    if value is None:
        return DEFAULT_MAX_MESSAGE_LENGTH
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be an integer, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive, not {number}")
    return number


def _seconds(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a positive number of seconds, not {value!r}")
    return seconds
