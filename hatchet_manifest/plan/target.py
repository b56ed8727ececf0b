"""Which engine runs go to: a remote Hatchet (HATCHET_CLIENT_* settings) or the embedded engine, in process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hatchet_client import ClientConfig
from hatchet_client.errors import HatchetClientError

from hatchet_manifest.errors import ConfigError
from hatchet_manifest.ledger import Target
from hatchet_manifest.text import quote, unsafe_char_problem

if TYPE_CHECKING:  # imported when used: a diff of unchanged manifests needs neither gRPC nor the embedded engine
    from hatchet_client import Hatchet
    from hatchet_client.engine import Engine

EngineMode = Literal["auto", "embedded", "remote"]
EMBEDDED_ADDRESS = "embedded"
CLOSE_WAIT = 5.0  # seconds the gRPC channel gets to close before the command exits anyway


@dataclass
class Connection:
    """A resolved target with a client for it (and the embedded engine when that is the target)."""

    mode: Literal["embedded", "remote"]
    target: Target
    config: ClientConfig
    engine: Engine | None = None
    _hatchet: Hatchet | None = field(default=None, repr=False)

    @property
    def hatchet(self) -> Hatchet:
        if self._hatchet is None:
            from hatchet_client import Hatchet

            self._hatchet = Hatchet(self.config)
        return self._hatchet

    def describe(self) -> str:
        if self.engine is not None:
            return f"the embedded engine ({self.engine.db_path})"
        return f"Hatchet at {self.config.host_port} (tenant {self.config.tenant_id})"

    def close(self) -> None:
        if self._hatchet is not None:
            self._hatchet.admin.close(wait=CLOSE_WAIT)
        if self.engine is not None:
            self.engine.stop()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def choose_mode(mode: EngineMode, environ: Mapping[str, str]) -> Literal["embedded", "remote"]:
    if mode != "auto":
        return mode
    if environ.get("HATCHET_CLIENT_TOKEN"):
        return "remote"
    if is_ci(environ):
        raise ConfigError(
            "CI is set but HATCHET_CLIENT_TOKEN is not: refusing to fall back to the embedded engine "
            "(set the token, or pass --engine embedded on purpose)"
        )
    return "embedded"


def is_ci(environ: Mapping[str, str]) -> bool:
    """CI is set to something other than a false value (`CI=false`, `CI=0` and an empty CI are not CI)."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def embedded_db(state_dir: Path) -> Path:
    return state_dir / "engine.db"


def remote_config(environ: Mapping[str, str] | None = None) -> ClientConfig:
    try:
        config = ClientConfig(environ=environ)
    except HatchetClientError as exc:  # a bad token or setting: its message never carries the token
        raise ConfigError(str(exc)) from None
    check_namespace(config.namespace)
    return config


def check_namespace(namespace: str) -> None:
    """Refuse a namespace with control, bidi or invisible characters: it prefixes every workflow name shown."""
    problem = unsafe_char_problem(namespace)
    if problem is not None:
        raise ConfigError(f"HATCHET_CLIENT_NAMESPACE {problem}, got {quote(namespace)}")


def connect(mode: EngineMode, state_dir: Path, environ: Mapping[str, str] | None = None) -> Connection:
    """Resolve the target; for the embedded engine, start it on a free loopback port (real gRPC)."""
    env = os.environ if environ is None else environ
    chosen = choose_mode(mode, env)
    if chosen == "remote":
        config = remote_config(env)
        return Connection("remote", Target(config.tenant_id, config.host_port), config)
    state_dir.mkdir(parents=True, exist_ok=True)
    from hatchet_client.engine import Engine

    engine = Engine(embedded_db(state_dir), port=0).start()
    try:
        config = ClientConfig(
            token=engine.token(),
            host_port=engine.address,
            server_url=engine.server_url,
            tls_strategy="none",
            environ={},
        )
    except BaseException:
        engine.stop()
        raise
    # The engine's identity is its tenant, made when its database was created: the same wherever the state dir
    # is moved or mounted, and different for another database.
    return Connection("embedded", Target(engine.tenant_id, EMBEDDED_ADDRESS), config, engine)
