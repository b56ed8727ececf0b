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
