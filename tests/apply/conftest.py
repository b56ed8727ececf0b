"""Fixtures for diff/apply: a clean environment, a project directory with manifests, and ledger/engine readers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hatchet_client.engine import RunStore

from tests.conftest import ROOT
from tests.net import free_port


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CI",
        "HATCHET_CLIENT_TOKEN",
        "HATCHET_CLIENT_NAMESPACE",
        "HATCHET_MANIFEST_LEDGER",
        "HATCHET_MANIFEST_STATE_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped manifests and schemas in a fresh directory, which is the working directory."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def engine_runs(state_dir: Path) -> list[dict[str, object]]:
    store = RunStore(state_dir / "engine.db")
    try:
        return [
            {"workflow_name": r.workflow_name, "input": r.input, "metadata": r.additional_metadata, "run_id": r.run_id}
            for r in store.list_runs()
        ]
    finally:
        store.close()


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "hatchet_manifest", *args]


@pytest.fixture
def engine(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A served engine; yields the environment an apply needs to use it as a remote Hatchet.
    `@pytest.mark.engine_faults(JSON)` arms faults in it (HATCHET_ENGINE_FAULTS)."""
    db = tmp_path / "engine" / "engine.db"
    port, rest = free_port(), free_port()
    log = (tmp_path / "engine.log").open("wb")
    serve_env = {k: v for k, v in os.environ.items() if k != "HATCHET_ENGINE_FAULTS"}
    marker = request.node.get_closest_marker("engine_faults")
    if marker is not None:
        serve_env["HATCHET_ENGINE_FAULTS"] = marker.args[0]
    proc = subprocess.Popen(
        cli_args("engine", "serve", "--port", str(port), "--rest-port", str(rest), "--db", str(db)),
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=serve_env,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"engine did not start: {(tmp_path / 'engine.log').read_text()}") from None
                time.sleep(0.05)
        token = subprocess.run(
            cli_args("engine", "token", "--db", str(db), "--port", str(port), "--rest-port", str(rest)),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_", "CI"))}
        env.update(HATCHET_CLIENT_TOKEN=token, HATCHET_CLIENT_TLS_STRATEGY="none", ENGINE_DB=str(db))
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()
