"""The gRPC channel to the engine, set up as the official SDK does (keepalive, message limits, TLS)."""

from __future__ import annotations

import importlib
import time
from typing import Any

import grpc

from hatchet_client.config import ClientConfig
from hatchet_client.errors import ConfigError

# Reconnection backoff: gRPC's default grows to 120 s, far too long for a launch waiting on a restarting engine.
MAX_RECONNECT_BACKOFF_MS = 5_000


def auth_metadata(config: ClientConfig) -> tuple[tuple[str, str]]:
    """The per-call metadata that authenticates to Hatchet."""
    return (("authorization", f"bearer {config.token}"),)


def channel_options(config: ClientConfig) -> list[tuple[str, int | str]]:
    options: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", config.grpc_max_send_message_length),
        ("grpc.max_receive_message_length", config.grpc_max_recv_message_length),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 60_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
    ]
    if config.grpc_compression == "gzip":
        options.append(("grpc.default_compression_algorithm", grpc.Compression.Gzip))
    if config.tls.strategy != "none":
        options.append(("grpc.ssl_target_name_override", config.tls.server_name))
    return options


def channel_credentials(config: ClientConfig) -> grpc.ChannelCredentials | None:
    """TLS credentials for `tls`/`mtls`, None for `none`."""
    tls = config.tls
    if tls.strategy == "none":
        return None
    try:
        root = tls.root_ca_file.read_bytes() if tls.root_ca_file else None
        if tls.strategy == "tls":
            return grpc.ssl_channel_credentials(root_certificates=root)
        assert tls.cert_file is not None and tls.key_file is not None  # ClientConfig enforces it for mtls
        return grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=tls.key_file.read_bytes(),
            certificate_chain=tls.cert_file.read_bytes(),
        )
    except OSError as exc:
        raise ConfigError(f"cannot read a TLS file: {exc.filename}: {exc.strerror}") from None


def open_channel(config: ClientConfig) -> grpc.Channel:
    """A new (lazily connecting) channel to `config.host_port`. The caller closes it."""
    credentials = channel_credentials(config)
    if credentials is None:
        return grpc.insecure_channel(config.host_port, options=channel_options(config))
    return grpc.secure_channel(config.host_port, credentials, options=channel_options(config))


def wait_ready(channel: grpc.Channel, timeout: float) -> bool:
    """Block until `channel` is READY (True) or `timeout` seconds pass (False), connecting if needed.

    grpc's public `channel_ready_future` runs a polling thread that can outlive the wait and then touch the
    channel after it was closed ("Cannot invoke RPC: Channel closed!" in a background thread). This waits in the
    calling thread with the same two cygrpc calls that thread makes, and falls back to the public API if a
    future grpcio lacks them. Wakes at least every 0.25 s, so Ctrl-C interrupts it."""
    raw: Any = getattr(channel, "_channel", None)
    ready: Any = _cygrpc_ready()
    if ready is None or not hasattr(raw, "watch_connectivity_state") or not hasattr(raw, "check_connectivity_state"):
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
        return True
    deadline = time.monotonic() + timeout
    try:
        state = raw.check_connectivity_state(True)
        while state != ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            raw.watch_connectivity_state(state, time.time() + min(remaining, 0.25))
            state = raw.check_connectivity_state(True)
    except ValueError:  # the channel was closed meanwhile
        return False
    return True


def _cygrpc_ready() -> object | None:
    try:
        cygrpc = importlib.import_module("grpc._cython.cygrpc")
    except ImportError:
        return None
    state_enum = getattr(cygrpc, "ConnectivityState", None)
    return getattr(state_enum, "ready", None)
