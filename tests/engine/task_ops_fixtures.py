"""Fixtures for the engine's REST task-operation tests: one engine, an official hatchet-sdk worker in a real
process, gRPC stubs to trigger runs, a REST caller, and helpers to read counts and task states.

The worker's `Order` task does what its input says (complete, fail, sleep until cancelled, or fail while a gate
file exists); `Backlog` is a workflow with a version that no worker serves (its runs have queued tasks, forever);
`Parked` is known but has no version (its runs have no tasks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hatchet_client._proto import workflows_pb2, workflows_pb2_grpc
from hatchet_client._proto.v1 import admin_pb2, admin_pb2_grpc, trigger_pb2
from hatchet_client.engine import Engine

from tests.engine.dispatch_helpers import run_status, sdk_env, wait_listening

pytest.importorskip("hatchet_sdk")

WORKER = textwrap.dedent(
    """
    import os, sys, time
    from datetime import timedelta
    from pathlib import Path
    from typing import Any

    from hatchet_sdk import Context, Hatchet, NonRetryableException
    from pydantic import BaseModel

    MARKERS = Path(sys.argv[1])
    hatchet = Hatchet()


    class Order(BaseModel):
        mode: str = "ok"  # ok | fail | sleep | gate
        n: int = 0
        gate: str = ""  # mode gate: fail while this file exists


    def mark(ctx: Context, task: str, event: str) -> None:
        (MARKERS / f"{task}-{ctx.workflow_run_id}-{ctx.retry_count}.{event}").write_text(str(os.getpid()))


    def act(order: Order, ctx: Context, task: str) -> dict[str, Any]:
        mark(ctx, task, "started")
        if order.mode == "fail":
            raise NonRetryableException(f"told to fail (n={order.n})")
        if order.mode == "gate" and Path(order.gate).exists():
            raise NonRetryableException(f"the gate is closed (n={order.n})")
        if order.mode == "sleep":
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not ctx.exit_flag:
                time.sleep(0.02)
            mark(ctx, task, "cancelled" if ctx.exit_flag else "slept")
        return {"n": order.n, "attempt": ctx.retry_count}


    @hatchet.task(name="Order", input_validator=Order, execution_timeout=timedelta(minutes=5))
    def order(input: Order, ctx: Context) -> dict[str, Any]:
        return act(input, ctx, "order")


    dag = hatchet.workflow(name="OrderDag", input_validator=Order)


    @dag.task()
    def first(input: Order, ctx: Context) -> dict[str, Any]:
        return act(Order(n=input.n), ctx, "first")


    @dag.task(parents=[first])
    def second(input: Order, ctx: Context) -> dict[str, Any]:
        return act(input, ctx, "second")


    if __name__ == "__main__":  # the SDK starts its action listener in a spawned process
        hatchet.worker("w-ops", slots=8, workflows=[order, dag]).start()
    """
)
SINCE = "2000-01-01T00:00:00Z"
Rest = Callable[..., tuple[int, Any]]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    db = tmp_path_factory.mktemp("task-ops") / "engine.db"
    with Engine(db, port=0, workflows=["Parked"], worker_timeout=10) as eng:
        yield eng


@pytest.fixture(scope="module")
def markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("markers")


@pytest.fixture(scope="module")
def worker(engine: Engine, markers: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    here = tmp_path_factory.mktemp("worker")
    script = here / "worker.py"
    script.write_text(WORKER)
    with (here / "worker.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(markers)],
            env=sdk_env(engine),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_listening(engine, "w-ops")
            yield
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def stubs(engine: Engine) -> Iterator[tuple[Any, Any]]:
    with grpc.insecure_channel(engine.address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        backlog = admin_pb2.CreateWorkflowVersionRequest(
            name="Backlog", tasks=[admin_pb2.CreateTaskOpts(readable_id="wait", action="backlog:wait")]
        )
        admin.PutWorkflow(backlog, metadata=_auth(engine))
        yield workflows_pb2_grpc.WorkflowServiceStub(channel), admin


def _auth(engine: Engine) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"bearer {engine.token()}"),)


@pytest.fixture(scope="module")
def trigger(engine: Engine, stubs: tuple[Any, Any]) -> Callable[..., list[str]]:
    """trigger(name, suite, [input, ...], **metadata) -> run ids, in order (bulk calls of 1000)."""
    workflows, _ = stubs
    auth = _auth(engine)

    def send(name: str, suite: str, inputs: list[dict[str, Any]], **metadata: str) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(inputs), 1000):
            items = [
                trigger_pb2.TriggerWorkflowRequest(
                    name=name,
                    input=json.dumps(item),
                    additional_metadata=json.dumps({"suite": suite, "kind": str(item.get("mode", "none")), **metadata}),
                )
                for item in inputs[start : start + 1000]
            ]
            bulk = workflows_pb2.BulkTriggerWorkflowRequest(workflows=items)
            ids += workflows.BulkTriggerWorkflow(bulk, metadata=auth).workflow_run_ids
        return ids

    return send


@pytest.fixture(scope="module")
def rest(engine: Engine) -> Rest:
    """rest(method, path, body=None, token=..., tenant=...) -> (status, decoded body); path after the tenant."""
    default = engine.token()

    def call(
        method: str, path: str, body: Any = None, token: str | None = "", tenant: str | None = None
    ) -> tuple[int, Any]:
        url = f"{engine.server_url}/api/v1/stable/tenants/{tenant or engine.tenant_id}/{path}"
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or default}"
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())

    return call


def metrics(rest: Rest, query: str = "") -> dict[str, int]:
    status, body = rest("GET", f"task-metrics?since={SINCE}{query}")
    assert status == 200, body
    assert [row["status"] for row in body] == ["CANCELLED", "COMPLETED", "FAILED", "QUEUED", "RUNNING"]  # Hatchet's
    [running] = [row for row in body if row["status"] == "RUNNING"]
    assert running["runningDetailCount"] == {"evicted": 0, "onWorker": running["count"]}
    return {row["status"]: row["count"] for row in body}


def rows(rest: Rest, suite: str) -> dict[str, dict[str, Any]]:
    status, body = _listing(rest, suite)
    assert status == 200, body
    return {row["workflowRunExternalId"]: row for row in body["rows"]}


def _listing(rest: Rest, suite: str) -> tuple[int, Any]:
    return rest("GET", f"workflow-runs?since={SINCE}&only_tasks=false&limit=1000&additional_metadata=suite:{suite}")


def started(markers: Path, task: str, run_id: str, attempt: int = 0) -> bool:
    return (markers / f"{task}-{run_id}-{attempt}.started").exists()


def statuses_are(engine: Engine, ids: list[str], status: str) -> bool:
    return all(run_status(engine, run_id) == status for run_id in ids)


def task_rows(engine: Engine, run_id: str) -> list[tuple[str, str, str, int]]:
    """(readable id, external id, status, retry count) of a run's tasks."""
    return engine.store.read(
        lambda conn: conn.execute(
            "SELECT t.readable_id, t.external_id, t.status, t.retry_count FROM tasks t JOIN runs r"
            " ON r.seq = t.run_seq WHERE r.run_id = ? ORDER BY t.task_id",
            (run_id,),
        ).fetchall()
    )
