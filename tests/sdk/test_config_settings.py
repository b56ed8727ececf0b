"""ClientConfig: keyword arguments, then HATCHET_CLIENT_* variables, then the token's claims."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hatchet_client import ClientConfig, ConfigError, Hatchet, TokenError
from hatchet_client.config import apply_namespace, normalize_namespace, split_host_port

MakeToken = Callable[..., str]


def test_defaults_come_from_the_token(make_token: MakeToken) -> None:
    config = ClientConfig(token=make_token(), environ={})
    assert config.host_port == "127.0.0.1:7077"
    assert config.server_url == "http://127.0.0.1:8080"
    assert config.tenant_id == "707d0855-80ab-4e1f-a156-f1c4546cbf52"
    assert config.namespace == ""
    assert config.tls.strategy == "tls"
    assert config.tls.server_name == "127.0.0.1"
    assert config.grpc_max_send_message_length == 4194304
    assert config.grpc_max_recv_message_length == 4194304
    assert config.grpc_compression == "gzip"
    assert config.call_timeout is None
    assert config.connect_timeout == 30.0


def test_environment_overrides_the_token_and_keywords_override_the_environment(
    make_token: MakeToken, tmp_path: Path
) -> None:
    env = {
        "HATCHET_CLIENT_TOKEN": make_token(),
        "HATCHET_CLIENT_HOST_PORT": "engine.example:443",
        "HATCHET_CLIENT_SERVER_URL": "https://engine.example/",
        "HATCHET_CLIENT_TENANT_ID": "t-env",
        "HATCHET_CLIENT_NAMESPACE": "Bench",
        "HATCHET_CLIENT_TLS_STRATEGY": "NONE",
        "HATCHET_CLIENT_GRPC_MAX_SEND_MESSAGE_LENGTH": "1000000",
        "HATCHET_CLIENT_GRPC_MAX_RECV_MESSAGE_LENGTH": "2000000",
        "HATCHET_CLIENT_GRPC_COMPRESSION": "none",
        "HATCHET_CLIENT_CALL_TIMEOUT": "2.5",
        "HATCHET_CLIENT_CONNECT_TIMEOUT": "4",
    }
    config = ClientConfig(environ=env)
    assert (config.host_port, config.server_url, config.tenant_id) == (
        "engine.example:443",
        "https://engine.example",
        "t-env",
    )
    assert config.namespace == "bench_"
    assert config.tls.strategy == "none"
    assert config.tls.server_name == "engine.example"
    assert (config.grpc_max_send_message_length, config.grpc_max_recv_message_length) == (1000000, 2000000)
    assert (config.grpc_compression, config.call_timeout, config.connect_timeout) == ("none", 2.5, 4.0)

    config = ClientConfig(environ=env, host_port="127.0.0.1:9", namespace="", tenant_id="t-kw")
    assert (config.host_port, config.tenant_id) == ("127.0.0.1:9", "t-kw")
    assert config.namespace == ""  # an explicit keyword wins, even an empty one


def test_os_environ_is_the_default_source(make_token: MakeToken, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HATCHET_CLIENT_TOKEN", make_token())
    clean_env.setenv("HATCHET_CLIENT_NAMESPACE", "Prod")
    clean_env.setenv("HATCHET_CLIENT_TLS_STRATEGY", "none")
    hatchet = Hatchet()
    assert hatchet.config.namespace == "prod_"
    assert hatchet.admin is hatchet.client.admin
    hatchet.close()


def test_the_token_is_never_shown(make_token: MakeToken) -> None:
    token = make_token()
    config = ClientConfig(token=token, environ={})
    assert token not in repr(config)
    assert "token=<hidden>" in repr(config)
    assert token not in repr(Hatchet(config))


def test_missing_token_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ConfigError, match=r"^no API token: set HATCHET_CLIENT_TOKEN or pass ClientConfig\(token=\.\.\.\)$"
    ):
        ClientConfig()
    with pytest.raises(ConfigError, match="HATCHET_CLIENT_TOKEN"):
        Hatchet()


def test_a_malformed_token_in_the_environment_is_not_echoed() -> None:
    secret = "not-a-jwt-but-a-secret-value"
    with pytest.raises(TokenError) as info:
        ClientConfig(environ={"HATCHET_CLIENT_TOKEN": secret})
    assert secret not in str(info.value)
    assert secret[:5] not in str(info.value)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("tls_strategy", "ssl", "HATCHET_CLIENT_TLS_STRATEGY must be tls, mtls or none, not 'ssl'"),
        (
            "grpc_max_send_message_length",
            "4MB",
            "HATCHET_CLIENT_GRPC_MAX_SEND_MESSAGE_LENGTH must be an integer, not '4MB'",
        ),
        ("grpc_max_recv_message_length", "0", "HATCHET_CLIENT_GRPC_MAX_RECV_MESSAGE_LENGTH must be positive, not 0"),
        ("grpc_compression", "zstd", "HATCHET_CLIENT_GRPC_COMPRESSION must be gzip or none, not 'zstd'"),
        ("call_timeout", "-1", "HATCHET_CLIENT_CALL_TIMEOUT must be a positive number of seconds, not '-1'"),
        ("connect_timeout", "soon", "HATCHET_CLIENT_CONNECT_TIMEOUT must be a number of seconds, not 'soon'"),
        ("host_port", "localhost", "host_port 'localhost' is not of the form host:port"),
        ("host_port", "localhost:99999", "host_port 'localhost:99999' is not of the form host:port"),
    ],
)
def test_malformed_settings_are_named(make_token: MakeToken, setting: str, value: str, message: str) -> None:
    env = {"HATCHET_CLIENT_TOKEN": make_token(), "HATCHET_CLIENT_" + setting.upper(): value}
    with pytest.raises(ConfigError) as info:
        ClientConfig(environ=env)
    assert str(info.value) == message


def test_tls_files_are_checked_and_mtls_needs_a_client_certificate(
    make_token: MakeToken, tls_files: Any, tmp_path: Path
) -> None:
    token = make_token()
    missing = tmp_path / "nope.pem"
    with pytest.raises(
        ConfigError, match=f"^HATCHET_CLIENT_TLS_ROOT_CA_FILE: no such file: {re.escape(str(missing))}$"
    ):
        ClientConfig(token=token, tls_root_ca_file=missing, environ={})
    with pytest.raises(
        ConfigError, match=r"^tls_strategy mtls needs HATCHET_CLIENT_TLS_CERT_FILE and HATCHET_CLIENT_TLS_KEY_FILE$"
    ):
        ClientConfig(token=token, tls_strategy="mtls", tls_cert_file=tls_files.client_cert, environ={})
    config = ClientConfig(
        token=token,
        tls_strategy="mtls",
        environ={
            "HATCHET_CLIENT_TLS_ROOT_CA_FILE": str(tls_files.ca),
            "HATCHET_CLIENT_TLS_CERT_FILE": str(tls_files.client_cert),
            "HATCHET_CLIENT_TLS_KEY_FILE": str(tls_files.client_key),
            "HATCHET_CLIENT_TLS_SERVER_NAME": "localhost",
        },
    )
    assert config.tls.strategy == "mtls"
    assert config.tls.server_name == "localhost"
    assert (config.tls.root_ca_file, config.tls.cert_file, config.tls.key_file) == (
        tls_files.ca,
        tls_files.client_cert,
        tls_files.client_key,
    )
    # With TLS off, certificate settings are ignored (even missing files).
    off = ClientConfig(token=token, tls_strategy="none", tls_root_ca_file=missing, environ={})
    assert off.tls.root_ca_file is None
    # Plain TLS uses no client certificate: a stale one left in the environment is ignored, not an error.
    plain = ClientConfig(token=token, environ={"HATCHET_CLIENT_TLS_CERT_FILE": str(missing)})
    assert (plain.tls.strategy, plain.tls.cert_file, plain.tls.key_file) == ("tls", None, None)


@pytest.mark.parametrize(
    ("namespace", "normalised"), [("", ""), ("Bench", "bench_"), ("bench_", "bench_"), ("Team_A", "team_a_")]
)
def test_namespace_is_lowercased_with_an_underscore(namespace: str, normalised: str) -> None:
    assert normalize_namespace(namespace) == normalised


def test_namespace_prefixes_names_that_do_not_start_with_it(make_token: MakeToken) -> None:
    config = ClientConfig(token=make_token(), namespace="Bench", environ={})
    assert config.apply_namespace("BulkParent") == "bench_BulkParent"
    assert config.apply_namespace("bench_BulkParent") == "bench_BulkParent"
    assert apply_namespace("BulkParent", "") == "BulkParent"


def test_host_port_forms() -> None:
    assert split_host_port("127.0.0.1:7077") == ("127.0.0.1", 7077)
    assert split_host_port("[::1]:7077") == ("::1", 7077)
    assert split_host_port("engine.example:443") == ("engine.example", 443)


def test_hatchet_takes_a_config_or_settings_not_both(make_token: MakeToken) -> None:
    config = ClientConfig(token=make_token(), environ={})
    with pytest.raises(TypeError, match="either a ClientConfig or settings"):
        Hatchet(config, namespace="x")
    with Hatchet(token=make_token(), namespace="x", environ={}) as hatchet:
        assert hatchet.config.namespace == "x_"
    assert Hatchet(config).config is config
