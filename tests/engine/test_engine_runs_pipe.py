"""`engine runs ... | head -1`: a reader that goes away ends the listing quietly (exit 141, nothing on stderr)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hatchet_client import ClientConfig, Hatchet
from hatchet_client.engine import Engine

from tests.apply.conftest import cli_args


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runs-pipe") / "engine.db"
    engine = Engine(path, port=0).start()
    try:
        config = ClientConfig(
            token=engine.token(), host_port=engine.address, server_url=engine.server_url, tls_strategy="none"
        )
        with Hatchet(config) as hatchet:
            hatchet.admin.run_workflows(
                [{"workflow_name": "W", "input": {"i": i, "pad": "x" * 200}} for i in range(3000)]
            )
    finally:
        engine.stop()
    return path


@pytest.mark.parametrize("output", ["jsonl", "table", "json"])
def test_a_closed_pipe_is_quiet(db: Path, output: str) -> None:
    proc = subprocess.Popen(
        cli_args("engine", "runs", "--db", str(db), "-o", output), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert err == ""
