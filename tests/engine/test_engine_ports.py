"""Ports the engine is asked to serve on are checked before anything is created."""

from __future__ import annotations

from pathlib import Path

import pytest
from hatchet_client.engine import Engine, EngineError

from tests.conftest import RunCli


@pytest.mark.parametrize(
    ("port", "rest_port", "message"),
    [
        (65535, None, "port 65535 leaves no next port for REST: choose --rest-port"),
        (70000, None, "port 70000 is not a TCP port (0..65535)"),
        (-1, None, "port -1 is not a TCP port"),
        (7077, 65536, "REST port 65536 is not a TCP port"),
    ],
)
def test_bad_ports_are_refused_before_the_database_exists(
    tmp_path: Path, port: int, rest_port: int | None, message: str
) -> None:
    with pytest.raises(EngineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Engine(tmp_path / "e.db", port=port, rest_port=rest_port)
    assert not (tmp_path / "e.db").exists()


def test_serve_on_the_last_port_is_a_clear_error(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("engine", "serve", "--port", "65535", "--db", str(tmp_path / "e.db"))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr == "error: port 65535 leaves no next port for REST: choose --rest-port\n"
    assert not (tmp_path / "e.db").exists()


def test_serve_declares_workflows_and_apply_checks_them(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import time

    from tests.apply.conftest import cli_args
    from tests.net import free_port

    db = tmp_path / "engine.db"
    port, rest = free_port(), free_port()
    proc = subprocess.Popen(
        cli_args(
            "engine",
            "serve",
            "--port",
            str(port),
            "--rest-port",
            str(rest),
            "--db",
            str(db),
            "--workflow",
            "BulkParent",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        token = subprocess.run(
            cli_args("engine", "token", "--db", str(db), "--port", str(port), "--rest-port", str(rest)),
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_", "CI"))}
        env.update(HATCHET_CLIENT_TOKEN=token, HATCHET_CLIENT_TLS_STRATEGY="none")
        from tests.conftest import ROOT

        applied = subprocess.run(
            cli_args(
                "apply", str(ROOT / "manifests"), "--yes", "--engine", "remote", "--state-dir", str(tmp_path / "s")
            ),
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert applied.returncode == 1
        assert "workflow 'ManualTriggerWorkflow' does not exist in the target tenant" in applied.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_the_engine_database_is_private(tmp_path: Path) -> None:
    """It stores run inputs, secret values included: owner only, and so are SQLite's -wal and -shm files."""
    import stat

    from hatchet_client import ClientConfig, Hatchet

    db = tmp_path / "engine.db"
    engine = Engine(db, port=0).start()
    try:
        config = ClientConfig(
            token=engine.token(), host_port=engine.address, server_url=engine.server_url, tls_strategy="none"
        )
        with Hatchet(config) as hatchet:
            hatchet.admin.run_workflows([{"workflow_name": "W", "input": {"password": "hunter2"}}])
        for path in (db, db.with_name("engine.db-wal"), db.with_name("engine.db-shm")):
            if path.exists():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        engine.stop()
    db.chmod(0o644)  # a database made by an earlier version is made private when it is opened again
    Engine(db, port=0)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
