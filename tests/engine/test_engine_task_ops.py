"""The engine's REST task operations, over real HTTP with an official hatchet-sdk worker in a real process:
task-metrics counts runs per status, cancel reaches queued and running runs, replay runs failed runs again under
the same ids once their cause is fixed; filter mode is capped as on Hatchet; bad bodies, tokens and tenants are
refused; and the official SDK's REST client reads and uses these endpoints.

One engine and one worker serve the whole module. Its worker's `Order` task does what its input says (complete,
fail, sleep until cancelled, or fail while a gate file exists); `Backlog` is a workflow with a version that no
worker serves (its runs have queued tasks, forever); `Parked` is known but has no version (its runs have no tasks).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from hatchet_client._proto import workflows_pb2, workflows_pb2_grpc
from hatchet_client._proto.v1 import admin_pb2, admin_pb2_grpc, trigger_pb2
from hatchet_client.engine import Engine
from hatchet_client.engine.store import workflow_id

from tests.engine.dispatch_helpers import run_sdk, run_status, sdk_env, wait_for, wait_listening

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


# --- task-metrics ---


def test_metrics_count_the_runs_in_every_status(
    engine: Engine, worker: None, trigger: Callable[..., list[str]], rest: Rest, markers: Path
) -> None:
    done = trigger("Order", "metrics", [{"mode": "ok", "n": i} for i in range(3)])
    failed = trigger("Order", "metrics", [{"mode": "fail", "n": i} for i in range(2)], faulty="yes")
    sleepers = trigger("Order", "metrics", [{"mode": "sleep"}, {"mode": "sleep"}], sleepy="yes")
    parked = trigger("Parked", "metrics", [{}, {}])  # known, no version: QUEUED without tasks
    backlog = trigger("Backlog", "metrics", [{}])  # a queued task no worker takes
    wait_for(
        "the runs to finish", lambda: statuses_are(engine, done, "COMPLETED") and statuses_are(engine, failed, "FAILED")
    )
    wait_for("the sleepers to start", lambda: all(started(markers, "order", s) for s in sleepers))
    assert rest("POST", "tasks/cancel", {"externalIds": [sleepers[0]]}) == (200, {"ids": [sleepers[0]]})
    wait_for("the worker to see the cancel", lambda: (markers / f"order-{sleepers[0]}-0.cancelled").exists())

    expected = {"QUEUED": 3, "RUNNING": 1, "COMPLETED": 3, "CANCELLED": 1, "FAILED": 2}
    assert metrics(rest, "&additional_metadata=suite:metrics") == expected
    everything = metrics(rest)
    assert all(everything[status] >= n for status, n in expected.items())
    # workflow ids: the Parked runs only; metadata pairs match ANY (OR), a repeated key keeps its last value
    parked_id = workflow_id(engine.tenant_id, "Parked")
    assert metrics(rest, f"&workflow_ids={parked_id}&additional_metadata=suite:metrics")["QUEUED"] == 2
    assert metrics(rest, "&additional_metadata=faulty:yes&additional_metadata=sleepy:yes") == {
        "QUEUED": 0,
        "RUNNING": 1,
        "COMPLETED": 0,
        "CANCELLED": 1,
        "FAILED": 2,
    }
    assert metrics(rest, "&additional_metadata=faulty:no&additional_metadata=faulty:yes")["FAILED"] == 2
    assert set(metrics(rest, "&additional_metadata=suite:metrics&additional_metadata=suite:none").values()) == {0}
    # the time range: runs created in [since, until]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    earlier = "2001-01-01T00:00:00Z"
    status, body = rest("GET", f"task-metrics?since={urllib.parse.quote(later)}")
    assert status == 200 and {row["count"] for row in body} == {0}
    assert set(metrics(rest, f"&until={earlier}").values()) == {0}
    assert len(parked) == 2 and run_status(engine, backlog[0]) == "QUEUED"
    rest("POST", "tasks/cancel", {"externalIds": sleepers[1:]})


# --- cancel ---


def test_cancel_reaches_queued_and_running_runs(
    engine: Engine, worker: None, trigger: Callable[..., list[str]], rest: Rest, markers: Path
) -> None:
    queued = trigger("Backlog", "cancel", [{}, {}])
    running = trigger("Order", "cancel", [{"mode": "sleep"}, {"mode": "sleep"}])
    wait_for("the sleepers to start", lambda: all(started(markers, "order", r) for r in running))
    unknown = str(uuid.uuid4())

    status, body = rest("POST", "tasks/cancel", {"externalIds": [queued[0].upper(), running[0], unknown]})
    assert (status, body) == (200, {"ids": [queued[0], running[0], unknown]})  # canonical ids, all echoed
    assert run_status(engine, queued[0]) == run_status(engine, running[0]) == "CANCELLED"  # done when answered
    wait_for("the worker to see the cancel", lambda: (markers / f"order-{running[0]}-0.cancelled").exists())

    flt = {"since": SINCE, "statuses": ["QUEUED", "RUNNING"], "additionalMetadata": ["suite:cancel"]}
    status, body = rest("POST", "tasks/cancel", {"filter": flt})
    assert (status, body) == (200, {"ids": [running[1], queued[1]]})  # the newest first
    assert statuses_are(engine, queued + running, "CANCELLED")
    wait_for("the worker to see the cancel", lambda: (markers / f"order-{running[1]}-0.cancelled").exists())
    # Hatchet echoes ids with nothing left to cancel too; nothing changes
    assert rest("POST", "tasks/cancel", {"externalIds": queued}) == (200, {"ids": queued})
    assert [row[2] for row in task_rows(engine, queued[0])] == ["CANCELLED"]


# --- replay ---


def test_replay_runs_failed_runs_again_under_the_same_ids(
    engine: Engine, worker: None, trigger: Callable[..., list[str]], rest: Rest, markers: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.write_text("closed")
    order = {"mode": "gate", "gate": str(gate)}
    singles = trigger("Order", "replay", [{**order, "n": 1}, {**order, "n": 2}])
    [dag] = trigger("OrderDag", "replay", [{**order, "n": 3}])
    [sleeper] = trigger("Order", "replay", [{"mode": "sleep"}])
    wait_for("the gated runs to fail", lambda: statuses_are(engine, [*singles, dag], "FAILED"))
    wait_for("the sleeper to start", lambda: started(markers, "order", sleeper))
    before = rows(rest, "replay")
    assert before[singles[0]]["retryCount"] == 0 and "the gate is closed (n=1)" in before[singles[0]]["errorMessage"]

    gate.unlink()  # the cause is fixed
    dag_tasks = [external for _, external, _, _ in task_rows(engine, dag)]
    status, body = rest("POST", "tasks/replay", {"externalIds": [*singles, dag, sleeper]})
    # a single-task run is its task (as on Hatchet); a DAG run echoes its tasks; an unfinished run is echoed too
    assert (status, body) == (200, {"ids": [*singles, *dag_tasks, sleeper]})
    wait_for("the replayed runs to complete", lambda: statuses_are(engine, [*singles, dag], "COMPLETED"))

    after = rows(rest, "replay")
    for n, run_id in enumerate(singles, start=1):
        row = after[run_id]
        assert (row["status"], row["retryCount"], row["attempt"]) == ("COMPLETED", 1, 2)
        assert "errorMessage" not in row and row["output"] == {"order": {"n": n, "attempt": 1}}
        assert row["startedAt"] >= before[run_id]["finishedAt"]
    assert (after[dag]["status"], after[dag]["retryCount"]) == ("COMPLETED", 1)
    # the whole DAG ran again, as on Hatchet: its completed first task too
    assert (
        started(markers, "first", dag, 0) and started(markers, "first", dag, 1) and started(markers, "second", dag, 1)
    )
    # the unfinished run was left alone
    assert (after[sleeper]["status"], after[sleeper]["retryCount"]) == ("RUNNING", 0)

    # a task id replays that task and its descendants only: the DAG's first task keeps its output
    second = dag_tasks[1]
    assert rest("POST", "tasks/replay", {"externalIds": [second]}) == (200, {"ids": [second]})
    wait_for(
        "the task to run again", lambda: started(markers, "second", dag, 2) and run_status(engine, dag) == "COMPLETED"
    )
    assert [(rid, state, retries) for rid, _, state, retries in task_rows(engine, dag)] == [
        ("first", "COMPLETED", 1),
        ("second", "COMPLETED", 2),
    ]
    assert not started(markers, "first", dag, 2)
    rest("POST", "tasks/cancel", {"externalIds": [sleeper]})


# --- filter mode ---


def test_filter_mode_expands_to_hatchets_caps(engine: Engine, trigger: Callable[..., list[str]], rest: Rest) -> None:
    parked = trigger("Parked", "caps-cancel", [{} for _ in range(20_001)])
    status, body = rest(
        "POST", "tasks/cancel", {"filter": {"since": SINCE, "additionalMetadata": ["suite:caps-cancel"]}}
    )
    assert status == 200 and body["ids"] == parked[:0:-1]  # the newest 20,000

    backlog = trigger("Backlog", "caps-replay", [{} for _ in range(1_001)])
    flt = {"since": SINCE, "additionalMetadata": ["suite:caps-replay"]}
    wait_for("the runs to get their tasks", lambda: all(task_rows(engine, r) for r in (backlog[0], backlog[-1])))
    status, body = rest("POST", "tasks/cancel", {"filter": flt})
    assert status == 200 and len(body["ids"]) == 1_001
    status, body = rest("POST", "tasks/replay", {"filter": {**flt, "statuses": ["CANCELLED"]}})
    assert status == 200 and body["ids"] == backlog[:0:-1]  # the newest 1,000 (single-task runs echo their ids)
    assert metrics(rest, "&additional_metadata=suite:caps-replay") == {
        "QUEUED": 1_000,
        "RUNNING": 0,
        "COMPLETED": 0,
        "CANCELLED": 1,
        "FAILED": 0,
    }
    too_many = [str(uuid.uuid4()) for _ in range(20_001)]
    status, body = rest("POST", "tasks/cancel", {"externalIds": too_many})
    assert status == 400 and body["errors"][0]["description"] == "at most 20000 externalIds per request, got 20001"


# --- refusals ---


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (b"{not json", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        ([], "the body must be a JSON object"),
        ({}, "give externalIds (a non-empty list) or filter"),
        ({"externalIds": []}, "give externalIds (a non-empty list) or filter"),
        (
            {"externalIds": [str(uuid.UUID(int=1))], "filter": {"since": SINCE}},
            "cannot provide both externalIds and filter",
        ),
        ({"externalIds": "x"}, "externalIds must be a list of UUIDs"),
        ({"externalIds": ["run-1"]}, "externalIds must be UUIDs, not 'run-1'"),
        ({"externalIds": [7]}, "externalIds must be UUIDs, not 7"),
        ({"ids": []}, "unknown fields 'ids' (known: externalIds, filter)"),
        ({"filter": []}, "filter must be an object"),
        ({"filter": {}}, "filter.since is required (an RFC 3339 date-time)"),
        ({"filter": {"since": "yesterday"}}, "filter.since 'yesterday' is not an RFC 3339 date-time"),
        ({"filter": {"since": SINCE, "statuses": ["DONE"]}}, "filter.statuses: unknown statuses ['DONE']"),
        ({"filter": {"since": SINCE, "additionalMetadata": ["nocolon"]}}, "filter.additionalMetadata 'nocolon' is not"),
        ({"filter": {"since": SINCE, "workflowIds": ["w"]}}, "filter.workflowIds must be UUIDs"),
        ({"filter": {"since": SINCE, "parentTaskExternalId": "x"}}, "filter: unknown fields 'parentTaskExternalId'"),
    ],
)
@pytest.mark.parametrize("op", ["cancel", "replay"])
def test_bad_bodies_are_refused(engine: Engine, rest: Rest, op: str, body: Any, description: str) -> None:
    status, answer = rest("POST", f"tasks/{op}", body)
    assert status == 400 and answer["errors"][0]["description"].startswith(description), answer


def test_a_deep_body_and_bad_framing_are_refused(engine: Engine, rest: Rest) -> None:
    status, answer = rest("POST", "tasks/cancel", b"[" * 100_000 + b"]" * 100_000)
    assert (status, answer["errors"][0]["description"]) == (400, "the body nests too deep")

    def raw(headers: dict[str, str], body: bytes = b"") -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", engine.rest_port, timeout=10)
        try:
            conn.putrequest("POST", f"/api/v1/stable/tenants/{engine.tenant_id}/tasks/cancel")
            conn.putheader("Authorization", f"Bearer {engine.token()}")
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, json.loads(response.read())["errors"][0]["description"]
        finally:
            conn.close()

    # a body announced larger than 16 MiB is refused unread
    assert raw({"Content-Length": str(16 * 1024 * 1024 + 1)}) == (
        413,
        "the body is larger than the 16777216 bytes allowed",
    )
    assert raw({"Transfer-Encoding": "chunked"}, b"0\r\n\r\n")[0] == 411
    assert raw({})[0] == 411


@pytest.mark.parametrize(
    ("query", "description"),
    [
        ("", "since is required (an RFC 3339 date-time)"),
        ("since=soon", "since 'soon' is not an RFC 3339 date-time"),
        (f"since={SINCE}&until=later", "until 'later' is not an RFC 3339 date-time"),
        (f"since={SINCE}&additional_metadata=nocolon", "additional_metadata 'nocolon' is not key:value"),
        (f"since={SINCE}&workflow_ids=w", "workflow_ids must be UUIDs, not 'w'"),
        (
            f"since={SINCE}&parent_task_external_id={uuid.UUID(int=1)}",
            "parent_task_external_id is not implemented: the embedded engine has no child runs",
        ),
        (
            f"since={SINCE}&triggering_event_external_id={uuid.UUID(int=1)}",
            "triggering_event_external_id is not implemented: filter on the hatchet__event_id metadata of the runs an "
            "event started",
        ),
    ],
)
def test_bad_metrics_queries_are_refused(engine: Engine, rest: Rest, query: str, description: str) -> None:
    assert rest("GET", f"task-metrics?{query}") == (400, {"errors": [{"description": description}]})


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", f"task-metrics?since={SINCE}", None), ("POST", "tasks/cancel", {}), ("POST", "tasks/replay", {})],
)
def test_tokens_and_tenants_are_checked_first(engine: Engine, rest: Rest, method: str, path: str, body: Any) -> None:
    status, answer = rest(method, path, body, token=None)
    assert status == 401 and answer["errors"][0]["description"]
    assert rest(method, path, body, token="eyJhbGciOiJIUzI1NiJ9.e30.c2ln")[0] == 401
    other = str(uuid.uuid4())
    assert rest(method, path, body, tenant=other) == (
        403,
        {"errors": [{"description": f"the token does not grant access to tenant {other}"}]},
    )
    wrong = "POST" if method == "GET" else "GET"
    assert rest(wrong, path.split("?")[0], b"{}" if wrong == "POST" else None)[0] == 405


# --- the official SDK ---

OFFICIAL = textwrap.dedent(
    """
    import json
    from datetime import datetime, timedelta, timezone
    from hatchet_sdk import Hatchet
    from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
    from hatchet_sdk.features.runs import BulkCancelReplayOpts, RunFilter

    hatchet = Hatchet()
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    hatchet.runs.bulk_cancel(BulkCancelReplayOpts(ids=[args["cancel"]]))
    cancelled = hatchet.runs.list(since=since, additional_metadata={"suite": "sdk"}, statuses=[V1TaskStatus.CANCELLED])
    hatchet.runs.bulk_replay(
        BulkCancelReplayOpts(
            filters=RunFilter(since=since, statuses=[V1TaskStatus.CANCELLED], additional_metadata={"suite": "sdk"})
        )
    )
    listed = hatchet.runs.list(since=since, additional_metadata={"suite": "sdk"}, include_payloads=False)
    counts = hatchet.metrics.get_task_metrics(since=since, workflow_ids=[args["workflow"]])
    print("RESULT " + json.dumps({
        "cancelled": [r.workflow_run_external_id for r in cancelled.rows],
        "listed": {r.workflow_run_external_id: [r.status.value, r.retry_count, r.attempt] for r in listed.rows},
        "metrics": counts.model_dump(),
        "since": since.isoformat(),
    }))
    """
)


def test_the_official_sdk_uses_these_endpoints(engine: Engine, trigger: Callable[..., list[str]], rest: Rest) -> None:
    first, second = trigger("Backlog", "sdk", [{}, {}])
    wait_for("the runs to get their tasks", lambda: task_rows(engine, second))
    args = {"cancel": first, "workflow": workflow_id(engine.tenant_id, "Backlog")}
    out = run_sdk(engine, f"args = {args!r}\n" + OFFICIAL)
    assert out["cancelled"] == [first]
    # replayed by the filter: queued again, a new attempt
    assert out["listed"] == {first: ["QUEUED", 1, 2], second: ["QUEUED", 0, 1]}
    query = f"task-metrics?since={urllib.parse.quote(out['since'])}&workflow_ids={args['workflow']}"
    status, body = rest("GET", query)
    assert status == 200
    assert out["metrics"] == {row["status"].lower(): row["count"] for row in body}
    assert out["metrics"]["queued"] >= 2
