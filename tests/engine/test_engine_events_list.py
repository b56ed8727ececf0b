"""The embedded engine's REST event listing (`GET /api/v1/stable/tenants/{tenant}/events`) over real HTTP, with
events pushed over real gRPC: our client (`hatchet.event.list`) and the official hatchet-sdk (`event.list`, its
generated models checking every field) find the events by their metadata stamps, keys (namespaced), time, ids and
scopes, newest first, page by page; each event says which runs it started and in which status they are; bad
parameters are 400 with Hatchet's APIErrors, and the token and tenant are checked as on every route.

One engine serves the module, with two workflows registered over PutWorkflow and no worker (their runs stay
QUEUED unless cancelled); every test uses stamps of its own.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from hatchet_client import EventListError, EventRow, Hatchet
from hatchet_client._proto.v1 import admin_pb2, admin_pb2_grpc
from hatchet_client.engine import Engine
from hatchet_client.engine.schema import iso_utc
from hatchet_client.engine.store import workflow_id

from tests.engine.dispatch_helpers import run_sdk, wait_for

pytest.importorskip("hatchet_sdk")

Query = Sequence[tuple[str, str]]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with Engine(tmp_path_factory.mktemp("events-list") / "engine.db", port=0) as eng:
        with grpc.insecure_channel(eng.address) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            auth = (("authorization", f"bearer {eng.token()}"),)
            for name, triggers in (("Paid", ["order:paid"]), ("AnyOrder", ["order:*"])):
                task = admin_pb2.CreateTaskOpts(readable_id="t", action=f"{name.lower()}:t")
                request = admin_pb2.CreateWorkflowVersionRequest(name=name, tasks=[task], event_triggers=triggers)
                admin.PutWorkflow(request, metadata=auth)
        yield eng


@pytest.fixture(scope="module")
def hatchet(engine: Engine) -> Iterator[Hatchet]:
    client = Hatchet(token=engine.token(), tls_strategy="none", connect_timeout=5, environ={})
    yield client
    client.close()


def stamp() -> str:
    return uuid.uuid4().hex[:12]


def rest(
    engine: Engine, query: Query = (), *, token: str | None = "", tenant: str = "", method: str = "GET"
) -> tuple[int, Any]:
    """One request of the listing: (status, decoded body). `token=None`: no Authorization header."""
    url = f"{engine.server_url}/api/v1/stable/tenants/{tenant or engine.tenant_id}/events"
    if query:
        url += "?" + urllib.parse.urlencode(list(query))
    headers = {} if token is None else {"Authorization": f"Bearer {token or engine.token()}"}
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def ids(rows: Sequence[EventRow] | Sequence[dict[str, Any]]) -> list[str]:
    return [row.event_id if isinstance(row, EventRow) else row["metadata"]["id"] for row in rows]


def test_pushed_events_are_found_by_their_stamps(engine: Engine, hatchet: Hatchet) -> None:
    mine, other = stamp(), stamp()
    first = hatchet.event.bulk_push(
        [
            {"key": "apply:run", "payload": {"i": i}, "additional_metadata": {"apply": mine, "part": str(i)}}
            for i in range(5)
        ]
        + [{"key": "apply:run", "payload": {}, "additional_metadata": {"apply": other}}]
    )
    numeric = hatchet.event.push("apply:run", {}, {"apply": mine, "n": 5})
    last = hatchet.event.push("apply:run", {"last": True}, {"apply": mine, "part": "5"})
    found = list(hatchet.event.list(additional_metadata={"apply": mine}))
    # Newest first; the events of one bulk push share their time and keep their order.
    assert ids(found) == [last.event_id, numeric.event_id, *ids(first[:5])]
    assert [row.payload for row in found[2:]] == [{"i": i} for i in range(5)]
    assert found[0].additional_metadata == {"apply": mine, "part": "5"}
    assert found[0].created_at == last.created_at and found[0].tenant_id == engine.tenant_id
    assert ids(hatchet.event.list(additional_metadata={"apply": mine, "part": "2"})) == [first[2].event_id]  # AND
    assert ids(hatchet.event.list(additional_metadata={"apply": other})) == [first[5].event_id]
    # Pairs match JSON strings only (containment, as Hatchet's `@>`): the stored number 5 is not "5".
    assert list(hatchet.event.list(additional_metadata={"apply": mine, "n": "5"})) == []
    assert list(hatchet.event.list(additional_metadata={"apply": stamp()})) == []


def test_keys_filter_and_the_namespace(engine: Engine, hatchet: Hatchet) -> None:
    mine = stamp()
    meta = {"apply": mine}
    plain = hatchet.event.push("invoice:sent", {}, meta)
    also = hatchet.event.push("invoice:void", {}, meta)
    with Hatchet(token=engine.token(), tls_strategy="none", namespace="Team", environ={}) as team:
        spaced = team.event.push("invoice:sent", {}, meta)
        assert spaced.key == "team_invoice:sent"
        assert ids(team.event.list(keys=["invoice:sent"], additional_metadata=meta)) == [spaced.event_id]
        assert ids(team.event.list(keys=["team_invoice:sent"], additional_metadata=meta)) == [spaced.event_id]
    assert ids(hatchet.event.list(keys=["invoice:sent"], additional_metadata=meta)) == [plain.event_id]
    both = hatchet.event.list(keys=["invoice:sent", "invoice:void"], additional_metadata=meta)
    assert ids(both) == [also.event_id, plain.event_id]
    assert list(hatchet.event.list(keys=["invoice:*"], additional_metadata=meta)) == []  # keys are exact


def test_pagination_across_pages(engine: Engine, hatchet: Hatchet) -> None:
    mine = stamp()
    pushed = [hatchet.event.push("page:me", {"i": i}, {"apply": mine}) for i in range(7)]
    newest_first = ids(pushed)[::-1]
    assert ids(hatchet.event.list(additional_metadata={"apply": mine}, page_size=3)) == newest_first
    assert ids(hatchet.event.list(additional_metadata={"apply": mine}, page_size=3, limit=4)) == newest_first[:4]
    listed: list[str] = []
    for offset, pagination in ((0, [1, 2, 3]), (3, [2, 3, 3]), (6, [3, 3, 3])):
        status, body = rest(engine, [("additionalMetadata", f"apply:{mine}"), ("limit", "3"), ("offset", str(offset))])
        assert status == 200
        p = body["pagination"]
        assert [p["current_page"], p["next_page"], p["num_pages"]] == pagination
        listed += ids(body["rows"])
    assert listed == newest_first
    status, body = rest(engine, [("additionalMetadata", f"apply:{mine}"), ("offset", "7")])
    assert (status, body["rows"], body["pagination"]["num_pages"]) == (200, [], 1)  # limit 50 by default


def test_each_event_says_what_it_started(engine: Engine, hatchet: Hatchet) -> None:
    mine = stamp()
    meta = {"apply": mine}
    paid = hatchet.event.push("order:paid", {"id": 1}, meta)  # Paid and AnyOrder
    shipped = hatchet.event.push("order:shipped", {"id": 2}, meta)  # AnyOrder
    quiet = hatchet.event.push("nothing:here", {}, meta)
    runs = {r.workflow_name: r.run_id for r in engine.store.list_runs(metadata={"hatchet__event_id": paid.event_id})}
    assert sorted(runs) == ["AnyOrder", "Paid"]
    rows = {row.event_id: row for row in hatchet.event.list(additional_metadata=meta)}
    assert set(rows[paid.event_id].triggered_run_ids) == set(runs.values())
    assert rows[paid.event_id].runs_by_status == {
        "QUEUED": 2,
        "RUNNING": 0,
        "COMPLETED": 0,
        "FAILED": 0,
        "CANCELLED": 0,
    }
    assert rows[shipped.event_id].triggered_runs == 1
    assert (rows[quiet.event_id].triggered_run_ids, rows[quiet.event_id].runs_by_status["QUEUED"]) == ((), 0)

    hatchet.cancel_runs([runs["Paid"]])
    wait_for("the cancel", lambda: engine.store.get_run(runs["Paid"]).status == "CANCELLED")  # type: ignore[union-attr]
    [row] = [r for r in hatchet.event.list(additional_metadata=meta) if r.event_id == paid.event_id]
    assert (row.runs_by_status or {})["CANCELLED"] == 1 and (row.runs_by_status or {})["QUEUED"] == 1

    def listed(*query: tuple[str, str]) -> list[str]:
        status, body = rest(engine, [("additionalMetadata", f"apply:{mine}"), *query])
        assert status == 200, body
        return ids(body["rows"])

    assert listed(("workflowRunStatuses", "CANCELLED")) == [paid.event_id]
    assert listed(("workflowRunStatuses", "QUEUED")) == [shipped.event_id, paid.event_id]
    assert listed(("workflowRunStatuses", "COMPLETED"), ("workflowRunStatuses", "FAILED")) == []
    assert listed(("workflowIds", workflow_id(engine.tenant_id, "Paid"))) == [paid.event_id]
    assert listed(("workflowIds", workflow_id(engine.tenant_id, "AnyOrder"))) == [shipped.event_id, paid.event_id]
    assert listed(("workflowIds", str(uuid.uuid4()))) == []
    [raw] = [r for r in rest(engine, [("eventIds", paid.event_id)])[1]["rows"]]
    assert raw["workflowRunSummary"] == {"queued": 1, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 1}
    assert sorted(r["workflowRunId"] for r in raw["triggeredRuns"]) == sorted(runs.values())


def test_time_window_event_ids_and_scopes(engine: Engine, hatchet: Hatchet) -> None:
    mine = stamp()
    meta = {"apply": mine}
    old = hatchet.event.push("window:old", {}, meta, scope="tenant-a")
    time.sleep(0.05)
    middle = hatchet.event.push("window:mid", {}, meta, scope="tenant-b")
    time.sleep(0.05)
    new = hatchet.event.push("window:new", {}, meta)
    both = (middle.created_at, middle.created_at)
    assert ids(hatchet.event.list(additional_metadata=meta, since=both[0], until=both[1])) == [middle.event_id]
    assert ids(hatchet.event.list(additional_metadata=meta, since=middle.created_at)) == [new.event_id, middle.event_id]
    assert ids(hatchet.event.list(additional_metadata=meta, until=middle.created_at)) == [middle.event_id, old.event_id]
    assert ids(hatchet.event.list(event_ids=[old.event_id, new.event_id])) == [new.event_id, old.event_id]
    assert ids(hatchet.event.list(scopes=["tenant-a", "tenant-b"], additional_metadata=meta)) == [
        middle.event_id,
        old.event_id,
    ]
    [row] = hatchet.event.list(scopes=["tenant-a"], additional_metadata=meta)
    assert row.scope == "tenant-a"
    # Without `since`, Hatchet lists the last 24 hours: an event stored two days ago is left out.
    with sqlite3.connect(engine.db_path, timeout=30) as conn:
        conn.execute(
            "UPDATE events SET created_at = ? WHERE event_id = ?",
            (iso_utc(time.time() - 2 * 86400), old.event_id),
        )
    conn.close()
    assert ids(hatchet.event.list(additional_metadata=meta)) == [new.event_id, middle.event_id]
    week_ago = datetime.now(UTC) - timedelta(days=7)
    assert ids(hatchet.event.list(additional_metadata=meta, since=week_ago))[-1] == old.event_id


def test_a_metadata_value_with_a_colon_is_split_on_the_first_one(engine: Engine, hatchet: Hatchet) -> None:
    # Hatchet splits each pair on its first ':' (SplitN); our client refuses such values all the same, since older
    # Hatchet engines split on every ':' and answer an error.
    mine = stamp()
    event = hatchet.event.push("colon:me", {}, {"apply": mine, "at": "12:00"})
    status, body = rest(engine, [("additionalMetadata", f"apply:{mine}"), ("additionalMetadata", "at:12:00")])
    assert (status, ids(body["rows"])) == (200, [event.event_id])
    with pytest.raises(EventListError, match="neither may contain one"):
        hatchet.event.list(additional_metadata={"at": "12:00"})


@pytest.mark.parametrize(
    ("query", "description"),
    [
        ([("additionalMetadata", "stamp")], "invalid additional metadata format: stamp, expected key:value"),
        (
            [("additionalMetadata", "stamp:")],
            "invalid additional metadata format: stamp:, key and value must not be empty",
        ),
        ([("additionalMetadata", ":v")], "invalid additional metadata format: :v, key and value must not be empty"),
        ([("limit", "0")], "limit must be between 1 and 10000, got 0"),
        ([("limit", "ten")], "limit 'ten' is not an integer"),
        ([("offset", "-1")], "offset must be between 0 and 4611686018427387904, got -1"),
        ([("since", "yesterday")], "since 'yesterday' is not an RFC 3339 date-time"),
        ([("until", "")], "until '' is not an RFC 3339 date-time"),
        ([("eventIds", "nope")], "eventIds must be UUIDs, not 'nope'"),
        ([("workflowIds", "nope")], "workflowIds must be UUIDs, not 'nope'"),
        ([("workflowRunStatuses", "DONE")], "unknown workflowRunStatuses: 'DONE'"),
        ([("scopes", "")], "scopes must not be empty strings"),
    ],
)
def test_bad_parameters_are_400_with_hatchets_errors(engine: Engine, query: Query, description: str) -> None:
    assert rest(engine, query) == (400, {"errors": [{"description": description}]})


def test_the_token_and_the_tenant_are_checked(engine: Engine) -> None:
    status, body = rest(engine, token=None)
    assert status == 401 and body["errors"]
    assert rest(engine, token="eyJ.bad.token")[0] == 401
    other = str(uuid.uuid4())
    assert rest(engine, tenant=other) == (
        403,
        {"errors": [{"description": f"the token does not grant access to tenant {other}"}]},
    )
    assert rest(engine, method="POST")[0] == 405


def test_the_official_sdk_lists_events(engine: Engine, hatchet: Hatchet) -> None:
    mine = stamp()
    pushed = hatchet.event.bulk_push(
        [{"key": "order:paid", "payload": {"id": i}, "additional_metadata": {"apply": mine}} for i in range(3)]
    )
    hatchet.event.push("order:refunded", {}, {"apply": mine})
    code = textwrap.dedent(
        f"""
        import json
        from datetime import datetime, timedelta, timezone
        from hatchet_sdk import Hatchet

        h = Hatchet()
        since = datetime.now(timezone.utc) - timedelta(hours=1)
        pages = [
            h.event.list(keys=["order:paid"], additional_metadata={{"apply": "{mine}"}}, since=since, limit=2,
                         offset=offset)
            for offset in (0, 2)
        ]
        found = h.event.list(additional_metadata={{"apply": "{mine}"}}, event_ids=[{pushed[1].event_id!r}])
        print("RESULT " + json.dumps({{
            "pages": [
                [[p.pagination.current_page, p.pagination.next_page, p.pagination.num_pages],
                 [[r.metadata.id, r.key, r.payload, r.additional_metadata, r.tenant_id,
                   r.workflow_run_summary.queued, len(r.triggered_runs or []), r.seen_at.isoformat()]
                  for r in p.rows or []]]
                for p in pages
            ],
            "found": [r.metadata.id for r in found.rows or []],
        }}))
        """
    )
    result = run_sdk(engine, code)
    (first_page, first_rows), (second_page, second_rows) = result["pages"]
    assert (first_page, second_page) == ([1, 2, 2], [2, 2, 2])
    rows = first_rows + second_rows
    assert [row[0] for row in rows] == ids(pushed)  # one bulk push: one time, the order pushed
    for row, event in zip(rows, pushed, strict=True):
        assert row[1:7] == ["order:paid", event.payload, {"apply": mine}, engine.tenant_id, 2, 2]
        assert datetime.fromisoformat(row[7]) == event.created_at
    assert result["found"] == [pushed[1].event_id]


@pytest.mark.slow
def test_the_count_stops_at_20000_and_our_client_reads_on(engine: Engine, hatchet: Hatchet) -> None:
    key = f"many:{stamp()}"
    pushed = hatchet.event.bulk_push([{"key": key, "payload": {"i": i}} for i in range(20_001)])
    # Newest first: the calls of 1000 from the last to the first, each in the order pushed.
    order = sorted(range(len(pushed)), key=lambda i: (-pushed[i].created_at.timestamp(), i))
    newest_first = [pushed[i].event_id for i in order]
    assert newest_first[:2] == [pushed[20_000].event_id, pushed[19_000].event_id]
    status, body = rest(engine, [("keys", key), ("limit", "10000"), ("offset", "10000")])
    assert status == 200 and len(body["rows"]) == 10_000
    # As Hatchet counts: at most 20,000 (so next_page says 3, and num_pages 2).
    assert body["pagination"] == {"current_page": 2, "next_page": 3, "num_pages": 2}
    status, body = rest(engine, [("keys", key), ("limit", "10000"), ("offset", "20000")])
    assert (status, ids(body["rows"])) == (200, newest_first[-1:])  # the oldest, past the last page counted
    assert body["pagination"] == {"current_page": 3, "next_page": 3, "num_pages": 2}
    listed = list(hatchet.event.list(keys=[key], page_size=1000))
    assert ids(listed) == newest_first
