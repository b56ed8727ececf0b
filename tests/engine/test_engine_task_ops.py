"""The engine's REST task operations, over real HTTP with an official hatchet-sdk worker in a real process:
task-metrics counts runs per status, cancel reaches queued and running runs, replay runs failed runs again under
the same ids once their cause is fixed; filter mode is capped as on Hatchet; and the official SDK's REST client
reads and uses these endpoints. (Refusals: test_engine_task_ops_refusals.py; fixtures: task_ops_fixtures.py.)
"""

from __future__ import annotations

import textwrap
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hatchet_client.engine import Engine
from hatchet_client.engine.store import workflow_id

from tests.engine.dispatch_helpers import run_sdk, run_status, wait_for
from tests.engine.task_ops_fixtures import (
    SINCE,
    Rest,
    engine,
    markers,
    metrics,
    rest,
    rows,
    started,
    statuses_are,
    stubs,
    task_rows,
    trigger,
    worker,
)

__all__ = ["engine", "markers", "rest", "stubs", "trigger", "worker"]  # fixtures, used by name

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
