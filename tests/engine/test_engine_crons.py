"""Crons and scheduled runs on the embedded engine, over real HTTP: our client and the official hatchet-sdk create,
list, enable, disable, update and delete them with Hatchet's rules; they fire on time, starting runs that an
official worker (a real process) completes, with Hatchet's `hatchet__cron_*` metadata; a schedule fires once and
leaves the listing; crons declared in code list as DEFAULT.

One engine and one worker serve the whole module (tests/engine/trigger_worker_app.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from hatchet_client import CronError, CronExpressionError, Hatchet, ScheduleError
from hatchet_client._proto.v1 import admin_pb2, admin_pb2_grpc
from hatchet_client.engine import Engine
from hatchet_client.engine.store import StoredRun

from tests.engine.dispatch_helpers import run_sdk, sdk_env, wait_for, wait_listening

pytest.importorskip("hatchet_sdk")

WORKER_APP = Path(__file__).with_name("trigger_worker_app.py")
Rest = Callable[..., tuple[int, Any]]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with Engine(tmp_path_factory.mktemp("crons") / "engine.db", port=0, worker_timeout=10) as eng:
        yield eng


@pytest.fixture(scope="module")
def worker(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER_APP), "w-crons"],
            env=sdk_env(engine),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_listening(engine, "w-crons")
            yield
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def hatchet(engine: Engine, worker: None) -> Iterator[Hatchet]:
    client = Hatchet(token=engine.token(), tls_strategy="none", connect_timeout=5, environ={})
    yield client
    client.close()


@pytest.fixture(scope="module")
def rest(engine: Engine) -> Rest:
    """rest(method, path, body=None) -> (status, decoded body or None); path after /api/v1/tenants/{tenant}/."""
    token = engine.token()

    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"{engine.server_url}/api/v1/tenants/{engine.tenant_id}/{path}"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())

    return call


def runs_with(engine: Engine, **metadata: str) -> list[StoredRun]:
    return list(engine.store.list_runs(metadata=metadata))


def test_crons_are_unique_by_workflow_name_and_expression(hatchet: Hatchet) -> None:
    first = hatchet.cron.create("Tick", "nightly", "0 3 * * *", {"n": 1}, {"suite": "unique"}, priority=2)
    assert (first.workflow_name, first.name, first.expression, first.method, first.enabled, first.priority) == (
        "Tick",
        "nightly",
        "0 3 * * *",
        "API",
        True,
        2,
    )
    assert (first.input, first.additional_metadata) == ({"n": 1}, {"suite": "unique"})
    with pytest.raises(CronError) as refused:
        hatchet.cron.create("Tick", "nightly", "0 3 * * *", {}, {})
    assert refused.value.status == 400
    assert refused.value.problem == "HTTP 400 Bad Request: cron trigger with that name-expression pair already exists"
    second = hatchet.cron.create("Tick", "nightly", "0 4 * * *", {}, {})
    listed = list(hatchet.cron.list(workflow_name="Tick", cron_name="nightly"))
    assert [row.id for row in listed] == [second.id, first.id]  # newest first, as Hatchet orders them
    assert hatchet.cron.get(first.id) == first
    for row in listed:
        hatchet.cron.delete(row.id)
    with pytest.raises(CronError) as gone:
        hatchet.cron.get(first.id)
    assert gone.value.status == 404
    assert list(hatchet.cron.list(cron_name="nightly")) == []


def test_bad_crons_are_refused_with_hatchets_words(hatchet: Hatchet, rest: Rest) -> None:
    body = {"cronName": "x", "cronExpression": "61 * * * *", "input": {}, "additionalMetadata": {}}
    assert rest("POST", "workflows/Tick/crons", body) == (
        400,
        {
            "errors": [
                {
                    "description": "Invalid cron expression: cron expression '61 * * * *': minute field '61': "
                    "61 is above the maximum 59"
                }
            ]
        },
    )
    assert rest("POST", "workflows/Tick/crons", {**body, "cronExpression": "* * * * *", "cronName": ""}) == (
        400,
        {"errors": [{"description": "cron name is required"}]},
    )
    assert rest("POST", "workflows/Nowhere/crons", {**body, "cronExpression": "* * * * *"}) == (
        400,
        {"errors": [{"description": "workflow not found"}]},
    )
    assert rest("GET", "workflows/crons?additionalMetadata=a:b:c")[0] == 400
    with pytest.raises(CronExpressionError, match="day of week field '7': 7 is above the maximum 6"):
        hatchet.cron.create("Tick", "x", "0 0 * * 7", {}, {})
    with pytest.raises(CronError, match="cannot filter on metadata 'url': 'http://x'"):
        list(hatchet.cron.list(additional_metadata={"url": "http://x"}))


def test_a_six_field_cron_fires_every_second_and_a_disabled_one_does_not(engine: Engine, hatchet: Hatchet) -> None:
    muted = hatchet.cron.create("Tick", "muted", "* * * * * *", {}, {"suite": "muted"})
    hatchet.cron.set_enabled(muted.id, False)
    assert hatchet.cron.get(muted.id).enabled is False
    cron = hatchet.cron.create("Tick", "every-second", "* * * * * *", {}, {"suite": "fire"})
    try:
        done = wait_for(
            "two cron runs completed",
            lambda: [r for r in runs_with(engine, suite="fire") if r.status == "COMPLETED"][1:] and True,
            timeout=30,
        )
        assert done
    finally:
        hatchet.cron.delete(cron.id)
    runs = runs_with(engine, suite="fire")
    times = []
    for run in runs:
        meta = run.additional_metadata
        assert (meta["hatchet__cron_name"], meta["hatchet__cron_expression"]) == ("every-second", "* * * * * *")
        times.append(datetime.strptime(meta["hatchet__cron_scheduled_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert len(set(times)) == len(times)  # one run per firing time, whole seconds
    assert runs_with(engine, suite="muted") == []
    hatchet.cron.set_enabled(muted.id, True)
    wait_for("the re-enabled cron to fire", lambda: runs_with(engine, suite="muted"), timeout=30)
    hatchet.cron.delete(muted.id)


def test_a_schedule_fires_once_at_its_time_and_leaves_the_listing(engine: Engine, hatchet: Hatchet) -> None:
    later = hatchet.scheduled.create("Tick", datetime.now(UTC) + timedelta(hours=1), {}, {"suite": "later"})
    soon = hatchet.scheduled.create("Tick", datetime.now(UTC) + timedelta(seconds=1), {}, {"suite": "soon"})
    assert {row.id for row in hatchet.scheduled.list(workflow_name="Tick")} >= {later.id, soon.id}
    assert [row.id for row in hatchet.scheduled.list(additional_metadata={"suite": "later"})] == [later.id]
    [run] = wait_for("the schedule's run", lambda: runs_with(engine, suite="soon"), timeout=30)
    wait_for("the run to complete", lambda: engine.store.get_run(run.run_id).status == "COMPLETED", timeout=30)
    listed = {row.id for row in hatchet.scheduled.list()}
    assert soon.id not in listed and later.id in listed
    with pytest.raises(ScheduleError) as gone:
        hatchet.scheduled.update(soon.id, datetime.now(UTC) + timedelta(hours=1))
    assert gone.value.status == 404
    moved = hatchet.scheduled.update(later.id, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert moved.trigger_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert list(hatchet.scheduled.list(statuses=["SUCCEEDED"])) == []  # fired schedules are gone, as on Hatchet
    assert later.id in {row.id for row in hatchet.scheduled.list(statuses=["SCHEDULED"])}
    hatchet.scheduled.update(later.id, datetime.now(UTC) - timedelta(seconds=5))  # in the past: fires at once
    wait_for("the moved schedule's run", lambda: runs_with(engine, suite="later"), timeout=30)
    assert len(runs_with(engine, suite="soon")) == 1


def test_bulk_delete_and_paging(hatchet: Hatchet) -> None:
    at = datetime.now(UTC) + timedelta(days=1)
    made = [hatchet.scheduled.create("Tick", at + timedelta(minutes=i), {"i": i}, {"suite": "bulk"}) for i in range(5)]
    listed = list(hatchet.scheduled.list(additional_metadata={"suite": "bulk"}, limit=2))
    assert [row.id for row in listed] == [row.id for row in reversed(made)]  # latest trigger time first
    stranger = str(uuid.uuid4())
    result = hatchet.scheduled.bulk_delete([*(row.id for row in made), stranger], batch=2)
    assert sorted(result.deleted) == sorted(row.id for row in made)
    assert result.errors == ((stranger, "Failed to delete scheduled workflow."),)
    assert list(hatchet.scheduled.list(additional_metadata={"suite": "bulk"})) == []


def test_crons_declared_in_code_list_as_default(hatchet: Hatchet) -> None:
    rows = sorted(hatchet.cron.list(workflow_name="Declared"), key=lambda row: row.expression)
    assert [(row.expression, row.name, row.method, row.enabled) for row in rows] == [
        ("0 0 1 1 *", "", "DEFAULT", True),
        ("@daily", "", "DEFAULT", True),
    ]
    assert rows[0].input == {"id": 7, "note": "from code"}


def test_the_official_sdk_manages_crons_and_schedules(engine: Engine, hatchet: Hatchet) -> None:
    code = textwrap.dedent(
        """
        import json
        from datetime import datetime, timedelta, timezone
        from hatchet_sdk import Hatchet

        h = Hatchet()
        cron = h.cron.create("Tick", "official", "0 12 * * *", {"a": 1}, {"who": "sdk"})
        listed = h.cron.list(workflow_name="Tick", cron_name="official", additional_metadata={"who": "sdk"})
        got = h.cron.get(cron.metadata.id)
        h.cron.delete(cron.metadata.id)
        after = h.cron.list(cron_name="official")
        declared = h.cron.list(workflow_name="Declared")
        at = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
        sched = h.scheduled.create("Tick", at, {"b": 2}, {"who": "sdk"})
        moved = h.scheduled.update(sched.metadata.id, at + timedelta(days=1))
        found = h.scheduled.list(additional_metadata={"who": "sdk"})
        h.scheduled.delete(sched.metadata.id)
        print("RESULT " + json.dumps({
            "cron": [cron.name, cron.cron, cron.method.value, cron.enabled, cron.input, cron.additional_metadata],
            "listed": [row.metadata.id for row in listed.rows or []],
            "pages": [listed.pagination.current_page, listed.pagination.num_pages],
            "got": got.metadata.id == cron.metadata.id,
            "after": len(after.rows or []),
            "declared": sorted((row.cron, row.method.value) for row in declared.rows or []),
            "sched": [sched.workflow_name, sched.trigger_at.isoformat(), sched.input, sched.method.value],
            "moved": moved.trigger_at.isoformat(),
            "found": [row.metadata.id for row in found.rows or []] == [sched.metadata.id],
            "left": [row.metadata.id for row in h.scheduled.list().rows or []].count(sched.metadata.id),
        }))
        """
    )
    result = run_sdk(engine, code)
    assert result["cron"] == ["official", "0 12 * * *", "API", True, {"a": 1}, {"who": "sdk"}]
    assert len(result["listed"]) == 1 and result["pages"] == [1, 1] and result["got"]
    assert result["after"] == 0
    assert result["declared"] == [["0 0 1 1 *", "DEFAULT"], ["@daily", "DEFAULT"]]
    assert result["sched"] == ["Tick", "2031-05-06T07:08:09+00:00", {"b": 2}, "API"]
    assert result["moved"] == "2031-05-07T07:08:09+00:00"
    assert result["found"] and result["left"] == 0


def test_code_declared_crons_follow_the_workflow_version(engine: Engine, hatchet: Hatchet) -> None:
    with grpc.insecure_channel(engine.address) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        auth = (("authorization", f"bearer {engine.token()}"),)

        def put(*crons: str) -> None:
            task = admin_pb2.CreateTaskOpts(readable_id="t", action="versioned:t")
            request = admin_pb2.CreateWorkflowVersionRequest(name="Versioned", tasks=[task], cron_triggers=crons)
            admin.PutWorkflow(request, metadata=auth)

        put("0 1 * * *", "0 2 * * *")
        [kept] = [row for row in hatchet.cron.list(workflow_name="Versioned") if row.expression == "0 2 * * *"]
        hatchet.cron.set_enabled(kept.id, False)
        put("0 2 * * *", "0 3 * * *")  # a new version: its crons replace the old version's
        rows = {row.expression: row for row in hatchet.cron.list(workflow_name="Versioned")}
        assert sorted(rows) == ["0 2 * * *", "0 3 * * *"]
        assert (rows["0 2 * * *"].id, rows["0 2 * * *"].enabled) == (kept.id, False)  # carried over, as on Hatchet
        with pytest.raises(grpc.RpcError) as refused:
            put("61 * * * *")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == (
            "workflow 'Versioned': cron trigger: cron expression '61 * * * *': minute field '61': "
            "61 is above the maximum 59"
        )


def test_crons_and_schedules_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "engine.db"
    at = datetime(2031, 1, 1, tzinfo=UTC)
    with (
        Engine(db, port=0, workflows=["Tick"]) as eng,
        Hatchet(token=eng.token(), tls_strategy="none", environ={}) as h,
    ):
        cron = h.cron.create("Tick", "kept", "@hourly", {}, {})
        sched = h.scheduled.create("Tick", at, {}, {})
    with Engine(db, port=0) as eng, Hatchet(token=eng.token(), tls_strategy="none", environ={}) as h:
        assert [row.id for row in h.cron.list()] == [cron.id]
        assert [(row.id, row.trigger_at) for row in h.scheduled.list()] == [(sched.id, at)]
