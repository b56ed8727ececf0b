"""The engine runs real workers: an official hatchet-sdk worker process registers, takes tasks, reports outcomes,
and the official client reads them with result() and aio_result(); REST, GetRunDetails and `engine runs` agree."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hatchet_client._proto.v1 import admin_pb2
from hatchet_client.engine import Engine

from tests.engine.dispatch_helpers import (
    WorkerProcess,
    run_sdk,
    sdk_env,
    settled,
    wait_for,
    wait_listening,
)

pytest.importorskip("hatchet_sdk")

CLIENT = textwrap.dedent(
    """
    import asyncio, json
    from hatchet_sdk import Hatchet

    hatchet = Hatchet()
    admin = hatchet._client.admin

    def failure(ref, exc):
        return {"run_id": ref.workflow_run_id, "error": type(exc).__name__, "message": str(exc),
                "causes": [str(e) for e in getattr(exc, "exceptions", [])]}

    def result(ref):
        try:
            return {"run_id": ref.workflow_run_id, "ok": ref.result()}
        except Exception as exc:
            return failure(ref, exc)

    async def aio_result(ref):
        try:
            return {"run_id": ref.workflow_run_id, "ok": await ref.aio_result()}
        except Exception as exc:
            return failure(ref, exc)

    trigger = lambda name, **input: admin.run_workflow(name, json.dumps(input))
    sync = {
        "echo": trigger("Echo", n=7),
        "diamond": trigger("Diamond", n=1),
        "retried": trigger("Flaky", n=1, fail_times=1),
        "fatal": trigger("Flaky", n=3, fatal=True),
        "timeout": trigger("Slow", seconds=30),
    }
    aio = {
        "echo_aio": trigger("Echo", n=8),
        "diamond_aio": trigger("Diamond", n=2),
        "exhausted": trigger("Flaky", n=2, fail_times=9),
    }
    out = {k: result(r) for k, r in sync.items()}

    async def main():
        values = await asyncio.wait_for(asyncio.gather(*(aio_result(r) for r in aio.values())), 60)
        return dict(zip(aio, values))

    out.update(asyncio.run(main()))
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with Engine(tmp_path_factory.mktemp("dispatch") / "engine.db", port=0, worker_timeout=10) as eng:
        yield eng


@pytest.fixture(scope="module")
def markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("markers")


@pytest.fixture(scope="module")
def worker(engine: Engine, markers: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(engine, "w-main", 20, markers, tmp_path_factory.mktemp("logs") / "worker.log")
    try:
        wait_listening(engine, "w-main")
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def outcomes(engine: Engine, worker: WorkerProcess) -> dict[str, Any]:
    return run_sdk(engine, CLIENT)


def test_a_single_task_returns_its_result(outcomes: dict[str, Any]) -> None:
    assert outcomes["echo"]["ok"] == {"echo": {"n": 7, "worker": "w-main"}}
    assert outcomes["echo_aio"]["ok"] == {"echo": {"n": 8, "worker": "w-main"}}


def test_a_dag_runs_in_order_with_its_parents_outputs(outcomes: dict[str, Any]) -> None:
    assert outcomes["diamond"]["ok"] == {"top": {"v": 2}, "left": {"v": 4}, "right": {"v": 6}, "bottom": {"sum": 10}}
    assert outcomes["diamond_aio"]["ok"]["bottom"] == {"sum": 15}


def test_a_failing_task_is_retried_then_reported_failed(
    engine: Engine, outcomes: dict[str, Any], markers: Path
) -> None:
    retried = outcomes["retried"]
    assert retried["ok"] == {"attempt": {"attempts": 2}}  # failed once, succeeded on its first retry
    exhausted = outcomes["exhausted"]
    assert exhausted["error"] == "FailedTaskRunExceptionGroup"
    assert any("boom 2 for n=2" in cause for cause in exhausted["causes"])
    run = engine.store.get_run(exhausted["run_id"])
    assert run is not None and run.status == "FAILED" and run.retry_count == 2
    assert run.error is not None and "ValueError: boom 2 for n=2" in run.error
    ran = sorted(p.name for p in markers.glob(f"attempt-{exhausted['run_id']}-*.ran"))
    assert ran == [f"attempt-{exhausted['run_id']}-{i}.ran" for i in range(3)]  # 1 + retries=2
    # the on-failure task ran once, with the failed task's error
    [cleanup] = markers.glob(f"cleanup-{exhausted['run_id']}-*.ran")
    assert "boom 2 for n=2" in cleanup.read_text()


def test_a_non_retryable_failure_is_not_retried(engine: Engine, outcomes: dict[str, Any], markers: Path) -> None:
    fatal = outcomes["fatal"]
    assert any("fatal error for n=3" in cause for cause in fatal["causes"])
    assert len(list(markers.glob(f"attempt-{fatal['run_id']}-*.ran"))) == 1
    run = engine.store.get_run(fatal["run_id"])
    assert run is not None and (run.status, run.retry_count) == ("FAILED", 0)


def test_an_execution_timeout_cancels_the_task_and_fails_the_run(
    engine: Engine, outcomes: dict[str, Any], markers: Path
) -> None:
    timeout = outcomes["timeout"]
    assert any("Task exceeded timeout of 2s" in cause for cause in timeout["causes"]), timeout
    run_id = timeout["run_id"]
    wait_for("the worker to get the cancel", lambda: list(markers.glob(f"slow-{run_id}-0.cancelled")), 30)


def test_a_cancel_reaches_the_worker(engine: Engine, worker: WorkerProcess, markers: Path) -> None:
    code = (
        "import json\nfrom hatchet_sdk import Hatchet\nh = Hatchet()\n"
        "r = h._client.admin.run_workflow('Sleeper', json.dumps({'seconds': 60}))\n"
        "print('RESULT ' + json.dumps({'run_id': r.workflow_run_id}))\n"
    )
    run_id = run_sdk(engine, code)["run_id"]
    wait_for("the sleeper to start", lambda: list(markers.glob(f"sleeper-{run_id}-0.started")), 30)
    assert engine.cancel([run_id]) == [run_id]
    wait_for("the worker to see the cancel", lambda: list(markers.glob(f"sleeper-{run_id}-0.cancelled")), 30)
    assert settled(engine, run_id) == "CANCELLED"
    assert engine.cancel([run_id]) == []  # nothing left to cancel


def test_rest_and_run_details_report_real_outcomes(engine: Engine, outcomes: dict[str, Any]) -> None:
    url = (
        f"{engine.server_url}/api/v1/stable/tenants/{engine.tenant_id}/workflow-runs"
        "?since=2000-01-01T00:00:00Z&only_tasks=false&statuses=FAILED&limit=100"
    )
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {engine.token()}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        rows = {row["workflowRunExternalId"]: row for row in json.load(response)["rows"]}
    exhausted = rows[outcomes["exhausted"]["run_id"]]
    assert exhausted["status"] == "FAILED" and exhausted["retryCount"] == 2
    assert "boom 2 for n=2" in exhausted["errorMessage"]
    assert exhausted["duration"] >= 0 and exhausted["startedAt"] <= exhausted["finishedAt"]
    assert outcomes["echo"]["run_id"] not in rows  # COMPLETED, filtered out
    with urllib.request.urlopen(
        urllib.request.Request(url.replace("FAILED", "COMPLETED"), headers=request.headers), timeout=10
    ) as response:
        completed = {row["workflowRunExternalId"]: row for row in json.load(response)["rows"]}
    assert completed[outcomes["diamond"]["run_id"]]["output"]["bottom"] == {"sum": 10}
    details = engine.store.read(lambda conn: conn.execute("SELECT count(*) FROM task_logs").fetchone()[0])
    assert details >= 0
    run = engine.store.get_raw_run(outcomes["diamond"]["run_id"])
    assert run is not None


@pytest.mark.slow  # a soak: random kill points / 500 runs through a worker
def test_apply_runs_500_runs_to_the_outcomes_their_inputs_dictate(
    engine: Engine, worker: WorkerProcess, tmp_path: Path
) -> None:
    manifest = tmp_path / "outcomes.yaml"
    manifest.write_text(
        textwrap.dedent(
            """\
            apiVersion: hatchet-manifest/v1
            kind: TriggerManifest
            metadata:
              name: outcomes
            runs:
              - workflow_name: Outcome
                for_each: "{{ range(500) }}"
                as: i
                key: "outcome-{{ i }}"
                input:
                  n: "{{ i }}"
            """
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hatchet_manifest",
            "apply",
            str(manifest),
            "--yes",
            "--engine",
            "remote",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        env=sdk_env(engine),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    def all_settled() -> list[Any] | None:
        runs = list(engine.store.list_runs(workflow="Outcome"))
        return runs if len(runs) == 500 and all(r.status in ("COMPLETED", "FAILED") for r in runs) else None

    runs = wait_for("500 runs to settle", all_settled, 90, every=0.5)
    for run in runs:
        n = run.input["n"]
        if n % 5 == 0:
            assert run.status == "FAILED" and run.error is not None and f"multiple of five: {n}" in run.error
        else:
            assert run.status == "COMPLETED", (n, run.error)
    outputs = engine.store.read(
        lambda conn: conn.execute(
            "SELECT r.input, t.output FROM tasks t JOIN runs r ON r.seq = t.run_seq WHERE r.workflow_name = 'Outcome'"
            " AND t.status = 'COMPLETED'"
        ).fetchall()
    )
    assert len(outputs) == 400
    assert all(json.loads(out) == {"double": 2 * json.loads(inp)["n"]} for inp, out in outputs)


def test_get_run_details_of_a_finished_dag(engine: Engine, outcomes: dict[str, Any]) -> None:
    from hatchet_client.engine.dispatch import results

    raw = engine.store.get_raw_run(outcomes["diamond"]["run_id"])
    assert raw is not None
    response = engine.store.read(lambda conn: results.details(conn, raw.seq, raw.input, raw.additional_metadata))
    assert response.done and response.status == admin_pb2.COMPLETED
    assert {k: json.loads(v.output) for k, v in response.task_runs.items()}["bottom"] == {"sum": 10}
