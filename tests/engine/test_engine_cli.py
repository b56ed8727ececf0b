"""`hatchet-manifest engine token|runs` through click's CliRunner, and `engine serve` as a real subprocess."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from hatchet_client._proto import workflows_pb2_grpc
from hatchet_client.engine import Engine, RunStore

from hatchet_manifest.cli import cli
from tests.engine.traceparent import user_metadata
from tests.net import free_port


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def filled(db_path: Path, req: Any, bulk: Any, as_auth: Any) -> list[str]:
    """A database holding 4 runs (the engine stopped again); returns their ids."""
    items = [
        req("nightly" if i < 3 else "hourly", {"i": i}, {"env": "prod" if i % 2 else "dev", "i": str(i)})
        for i in range(4)
    ]
    with Engine(db_path, port=0) as eng, grpc.insecure_channel(eng.address) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        return list(stub.BulkTriggerWorkflow(bulk(items), metadata=as_auth(eng.token())).workflow_run_ids)


def test_token_prints_only_a_token_for_that_port(db_path: Path) -> None:
    result = _invoke("engine", "token", "--db", str(db_path), "--port", "9123")
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1
    token = result.stdout.strip()
    claims = _claims(token)
    assert claims["grpc_broadcast_address"] == "127.0.0.1:9123"
    assert claims["server_url"] == "http://127.0.0.1:9124"
    with RunStore(db_path) as store:
        assert claims["sub"] == store.tenant_id


def test_a_token_from_the_cli_opens_the_engine_on_that_database(db_path: Path, req: Any, as_auth: Any) -> None:
    token = _invoke("engine", "token", "--db", str(db_path)).stdout.strip()
    with Engine(db_path, port=0) as eng, grpc.insecure_channel(eng.address) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        stub.TriggerWorkflow(req(input={"from": "cli"}), metadata=as_auth(token))
        assert [r.input for r in eng.store.list_runs()] == [{"from": "cli"}]


def test_runs_as_json_lists_every_field(db_path: Path, filled: list[str]) -> None:
    result = _invoke("engine", "runs", "--db", str(db_path), "-o", "json")
    assert result.exit_code == 0
    runs = json.loads(result.stdout)
    assert [r["run_id"] for r in runs] == filled
    first = runs[0]
    assert set(first) == {
        "run_id",
        "workflow_name",
        "input",
        "additional_metadata",
        "priority",
        "received_at",
        "status",
        "started_at",
        "finished_at",
        "error",
        "retry_count",
    }
    assert (first["status"], first["started_at"], first["error"]) == ("QUEUED", None, None)  # no worker: queued
    assert (first["workflow_name"], first["input"], user_metadata(first["additional_metadata"]), first["priority"]) == (
        "nightly",
        {"i": 0},
        {"env": "dev", "i": "0"},
        None,
    )


def test_runs_filters_by_workflow_and_metadata(db_path: Path, filled: list[str]) -> None:
    result = _invoke(
        "engine", "runs", "--db", str(db_path), "-o", "jsonl", "--workflow", "nightly", "--metadata", "env=prod"
    )
    assert [json.loads(line)["run_id"] for line in result.stdout.splitlines()] == [filled[1]]
    result = _invoke(
        "engine", "runs", "--db", str(db_path), "-o", "jsonl", "--metadata", "env=prod", "--metadata", "i=3"
    )
    assert [json.loads(line)["run_id"] for line in result.stdout.splitlines()] == [filled[3]]


def test_runs_as_a_table(db_path: Path, filled: list[str]) -> None:
    lines = _invoke("engine", "runs", "--db", str(db_path)).stdout.splitlines()
    assert lines[0].split() == [
        "RUN_ID",
        "WORKFLOW_NAME",
        "STATUS",
        "PRIORITY",
        "RECEIVED_AT",
        "FINISHED_AT",
        "ERROR",
        "ADDITIONAL_METADATA",
        "INPUT",
    ]
    assert [line.split()[0] for line in lines[1:]] == filled


def test_runs_with_a_bad_metadata_filter_is_a_usage_error(db_path: Path, filled: list[str]) -> None:
    result = CliRunner().invoke(cli, ["engine", "runs", "--db", str(db_path), "--metadata", "env"])
    assert result.exit_code == 2
    assert "'env' is not KEY=VALUE" in result.output


def test_runs_without_a_database_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["engine", "runs", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert "no engine database at" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_until_a_signal_stops_it(tmp_path: Path, req: Any, as_auth: Any, sig: signal.Signals) -> None:
    db = tmp_path / "served.db"
    port = free_port()
    rest_port = free_port()
    args = ["engine", "serve", "--db", str(db), "--port", str(port), "--rest-port", str(rest_port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hatchet_manifest", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HATCHET_ENGINE_FAULTS": ""},
    )
    try:
        assert proc.stderr is not None
        banner = [proc.stderr.readline() for _ in range(5)]
        assert banner[0] == f"engine listening on 127.0.0.1:{port} (gRPC), REST at http://127.0.0.1:{rest_port}\n"
        assert banner[2].startswith("get a token: hatchet-manifest engine token")
        token_args = banner[2].split("hatchet-manifest ", 1)[1].split()
        token = _invoke(*token_args).stdout.strip()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
            run_id = stub.TriggerWorkflow(req(input={"via": "serve"}), metadata=as_auth(token)).workflow_run_id
        time.sleep(0.1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == ""
    assert err.endswith("engine stopped\n")
    with RunStore(db) as store:
        assert [(r.run_id, r.input) for r in store.list_runs()] == [(run_id, {"via": "serve"})]
