"""The client's event listing (`hatchet.event.list`) against servers on 127.0.0.1 that a test scripts: what is sent
(the path, the namespaced keys, every filter, the pages), how the pages are read (to a short page: Hatchet's count
stops at 20,000; a row listed twice is listed once; `limit` stops early), the shape of what is answered (a bad,
garbled or oversized answer is a clean EventListError naming the field), and what is refused before anything is
sent (metadata values containing ':' among them). Against the embedded engine: tests/engine/test_engine_events_list.py.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hatchet_client import EventListError, EventRow, Hatchet

from tests.sdk.conftest import MakeToken
from tests.sdk.scripted_http import Request, http_answer
from tests.sdk.test_client_rest import TENANT
from tests.sdk.test_client_task_ops import BodyServer, Serve, sequence
from tests.sdk.test_client_task_ops import serve as serve

PATH = f"/api/v1/stable/tenants/{TENANT}/events"
RUN = str(uuid.UUID(int=99))


def ident(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def event_json(i: int = 0, **fields: Any) -> dict[str, Any]:
    """A V1Event as Hatchet answers it (tenantId empty, as its transformer leaves it)."""
    at = f"2026-01-02T03:04:{i % 60:02d}.123456789Z"
    row: dict[str, Any] = {
        "metadata": {"id": ident(i), "createdAt": at, "updatedAt": at},
        "key": "ns_order:paid",
        "tenantId": "",
        "workflowRunSummary": {"running": 1, "queued": 2, "succeeded": 3, "failed": 0, "cancelled": 0},
        "additionalMetadata": {"stamp": "s1"},
        "payload": {"n": i},
        "seenAt": at,
        "triggeredRuns": [{"workflowRunId": RUN}],
    }
    row.update(fields)
    return {k: v for k, v in row.items() if v is not None}


def page(rows: list[dict[str, Any]], current: int = 1, pages: int = 1) -> bytes:
    body = {"pagination": {"current_page": current, "next_page": current, "num_pages": pages}, "rows": rows}
    return http_answer(json.dumps(body).encode())


@pytest.fixture
def client(make_token: MakeToken) -> Iterator[Callable[..., Hatchet]]:
    made: list[Hatchet] = []

    def make(server: BodyServer, **settings: Any) -> Hatchet:
        hatchet = Hatchet(
            token=make_token(server_url=server.url),
            tls_strategy="none",
            namespace="ns",
            rest_timeout=5,
            environ={},
            **settings,
        )
        made.append(hatchet)
        return hatchet

    yield make
    for hatchet in made:
        hatchet.close()


def test_every_filter_is_sent_as_hatchet_names_it(serve: Serve, client: Callable[..., Hatchet]) -> None:
    server = serve(sequence(page([event_json()])))
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    [row] = client(server).event.list(
        keys=["order:paid", "ns_user:created"],
        additional_metadata={"stamp": "s1", "part": "2"},
        since=since,
        until=datetime(2026, 1, 3),  # naive: UTC
        scopes=["tenant-a"],
        event_ids=[ident(7).upper()],
        page_size=20,
    )
    [request] = server.requests
    assert (request.method, request.path) == ("GET", PATH)
    assert request.query == [
        ("keys", "ns_order:paid"),
        ("keys", "ns_user:created"),  # already namespaced: kept, as a push keeps it
        ("since", "2026-01-02T01:04:05Z"),
        ("until", "2026-01-03T00:00:00Z"),
        ("eventIds", ident(7)),
        ("additionalMetadata", "stamp:s1"),
        ("additionalMetadata", "part:2"),
        ("scopes", "tenant-a"),
        ("offset", "0"),
        ("limit", "20"),
    ]
    assert request.headers["authorization"].startswith("Bearer ey")
    assert row == EventRow(
        event_id=ident(0),
        key="ns_order:paid",
        payload={"n": 0},
        additional_metadata={"stamp": "s1"},
        created_at=datetime(2026, 1, 2, 3, 4, 0, 123456, tzinfo=UTC),
        scope=None,
        tenant_id="",
        triggered_run_ids=(RUN,),
        runs_by_status={"QUEUED": 2, "RUNNING": 1, "COMPLETED": 3, "FAILED": 0, "CANCELLED": 0},
    )
    assert row.triggered_runs == 1


def test_pages_are_read_to_a_short_one_whatever_num_pages_says(serve: Serve, client: Callable[..., Hatchet]) -> None:
    # Hatchet counts at most 20,000 events: num_pages can say 1 while more pages follow.
    server = serve(
        sequence(
            page([event_json(0), event_json(1)], current=1, pages=1),
            page([event_json(1), event_json(2)], current=2, pages=1),  # event 1 again: a push shifted the pages
            page([event_json(3)], current=3, pages=1),
        )
    )
    rows = list(client(server).event.list(page_size=2))
    assert [row.event_id for row in rows] == [ident(0), ident(1), ident(2), ident(3)]
    assert [dict(r.query)["offset"] for r in server.requests] == ["0", "2", "4"]


def test_an_empty_page_without_rows_ends_the_listing(serve: Serve, client: Callable[..., Hatchet]) -> None:
    server = serve(sequence(page([event_json(0), event_json(1)]), http_answer(b'{"pagination": {}}')))
    assert len(list(client(server).event.list(page_size=2))) == 2
    assert len(server.requests) == 2


def test_limit_stops_the_listing_without_asking_for_more(serve: Serve, client: Callable[..., Hatchet]) -> None:
    server = serve(sequence(page([event_json(i) for i in range(3)]), page([event_json(i) for i in range(3, 6)])))
    rows = list(client(server).event.list(page_size=3, limit=5))
    assert [row.event_id for row in rows] == [ident(i) for i in range(5)]
    assert [dict(r.query)["limit"] for r in server.requests] == ["3", "3"]
    small = serve(sequence(page([event_json(0), event_json(1)])))
    assert len(list(client(small).event.list(limit=2))) == 2
    assert [dict(r.query)["limit"] for r in small.requests] == ["2"]  # the page is no larger than the limit


def test_the_listing_is_lazy_and_checks_arguments_at_once(serve: Serve, client: Callable[..., Hatchet]) -> None:
    server = serve(sequence(page([event_json(0)])))
    hatchet = client(server)
    rows = hatchet.event.list()
    assert server.requests == []  # nothing is asked before the first row is wanted
    assert next(iter(rows)).event_id == ident(0)
    with pytest.raises(EventListError, match="neither may contain one"):
        hatchet.event.list(additional_metadata={"at": "12:00"})  # not iterated: refused all the same


def test_optional_fields_may_be_left_out(serve: Serve, client: Callable[..., Hatchet]) -> None:
    bare = event_json(0, additionalMetadata=None, payload=None, seenAt=None, triggeredRuns=None, scope="s")
    server = serve(sequence(page([{**bare, "payloadsRestricted": True}])))
    [row] = client(server).event.list()
    assert (row.payload, row.additional_metadata, row.scope, row.triggered_run_ids) == (None, None, "s", ())


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"workflowRunSummary": None}, "rows[1].workflowRunSummary is missing or null, not an object"),
        (
            {"workflowRunSummary": {"running": 1, "queued": 0, "succeeded": 0, "failed": 0}},
            "rows[1].workflowRunSummary.cancelled is missing or null, not an integer",
        ),
        (
            {"workflowRunSummary": {"running": -1, "queued": 0, "succeeded": 0, "failed": 0, "cancelled": 0}},
            "rows[1].workflowRunSummary.running is negative (-1)",
        ),
        (
            {"workflowRunSummary": {"running": "1", "queued": 0, "succeeded": 0, "failed": 0, "cancelled": 0}},
            "rows[1].workflowRunSummary.running is a string, not an integer",
        ),
        ({"triggeredRuns": {"workflowRunId": RUN}}, "rows[1].triggeredRuns is an object, not a list"),
        (
            {"triggeredRuns": [{"filterId": RUN}]},
            "rows[1].triggeredRuns[0].workflowRunId is missing or null, not a string",
        ),
        ({"key": 5}, "rows[1].key is a number, not a string"),
        ({"tenantId": None}, "rows[1].tenantId is missing or null, not a string"),
        ({"metadata": {"id": ident(0)}}, "rows[1].metadata.createdAt is missing or null, not a string"),
        (
            {"metadata": {"id": ident(0), "createdAt": "yesterday"}},
            "rows[1].metadata.createdAt 'yesterday' is not an RFC 3339 date-time",
        ),
        ({"payload": [1]}, "rows[1].payload is a list, not an object"),
        ({"scope": 3}, "rows[1].scope is a number, not a string"),
    ],
)
def test_a_row_of_the_wrong_shape_is_a_clean_error(
    serve: Serve, client: Callable[..., Hatchet], fields: dict[str, Any], problem: str
) -> None:
    server = serve(sequence(page([event_json(1), {**event_json(0), **fields}])))
    with pytest.raises(EventListError) as info:
        next(iter(client(server).event.list()))  # the page is checked whole before its first row
    assert (info.value.reason, info.value.problem) == ("bad_shape", problem)


@pytest.mark.parametrize(
    ("body", "reason", "problem"),
    [
        (b'{"rows": [', "not_json", "the answer is not JSON"),
        (b"\xff\xfe{}", "not_json", "the answer is not UTF-8 text"),
        (b'{"rows": {"0": {}}}', "bad_shape", "rows is an object, not a list"),
        (b'[{"rows": []}]', "bad_shape", "the answer is a list, not an object"),
        (b'{"rows": [], "pagination": {"num_pages": "2"}}', "bad_shape", "pagination.num_pages is a string"),
        (b'{"rows": [' + b"[" * 200 + b"]" * 200 + b"]}", "too_deep", "the JSON nests deeper than"),
    ],
)
def test_a_garbled_answer_is_a_clean_error(
    serve: Serve, client: Callable[..., Hatchet], body: bytes, reason: str, problem: str
) -> None:
    server = serve(sequence(http_answer(body)))
    with pytest.raises(EventListError) as info:
        list(client(server).event.list())
    assert info.value.reason == reason
    assert info.value.problem.startswith(problem)
    assert info.value.url == f"{server.url}{PATH}"


def test_an_oversized_answer_is_refused_at_the_cap(serve: Serve, client: Callable[..., Hatchet]) -> None:
    rows = [event_json(i, payload={"blob": "x" * 1000}) for i in range(100)]
    server = serve(sequence(page(rows)))
    with pytest.raises(EventListError) as info:
        list(client(server, rest_max_response_bytes=50_000).event.list())
    assert info.value.reason == "too_large"
    assert str(info.value).startswith(f"GET {server.url}{PATH}: ")


def test_errors_name_the_url_and_hatchets_description_never_the_token(
    serve: Serve, client: Callable[..., Hatchet]
) -> None:
    def refuse(conn: socket.socket, request: Request) -> None:
        token = request.headers["authorization"].removeprefix("Bearer ")
        body = {"errors": [{"description": f"no access for {token}"}]}
        conn.sendall(http_answer(json.dumps(body).encode(), status="403 Forbidden"))

    server = serve(refuse)
    hatchet = client(server)
    with pytest.raises(EventListError) as info:
        list(hatchet.event.list(additional_metadata={"stamp": "secret-stamp"}))
    assert (info.value.reason, info.value.status) == ("http_status", 403)
    assert hatchet.config.token not in str(info.value) and "secret-stamp" not in str(info.value)
    assert str(info.value) == f"GET {server.url}{PATH}: HTTP 403 Forbidden: no access for <token>"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"additional_metadata": {"at": "12:00"}}, "cannot filter on metadata 'at': '12:00': Hatchet splits"),
        ({"additional_metadata": {"a:b": "1"}}, "cannot filter on metadata 'a:b': '1'"),
        ({"additional_metadata": {"stamp": ""}}, "cannot filter on metadata 'stamp': '': Hatchet refuses an empty"),
        ({"additional_metadata": {"": "v"}}, "cannot filter on metadata '': 'v': Hatchet refuses an empty"),
        ({"additional_metadata": {"n": 5}}, "metadata filters are strings: 'n': 5 is not"),
        ({"additional_metadata": [("k", "v")]}, "additional_metadata must be a mapping of strings, not list"),
        ({"keys": "order:paid"}, "keys must be a collection of strings, not str"),
        ({"keys": ["a", ""]}, r"keys\[1\] must be a non-empty string, not ''"),
        ({"scopes": [None]}, r"scopes\[0\] must be a non-empty string, not None"),
        ({"event_ids": ["nope"]}, r"event_ids\[0\] is not a UUID: 'nope'"),
        ({"since": "2026-01-01"}, "since must be a datetime, not str"),
        (
            {"since": datetime(2026, 1, 2, tzinfo=UTC), "until": datetime(2026, 1, 1)},
            r"since \(2026-01-02T00:00:00\+00:00\) is after until \(2026-01-01T00:00:00\)",
        ),
        ({"page_size": 0}, "page_size must be an integer between 1 and 1000, not 0"),
        ({"page_size": 1001}, "page_size must be an integer between 1 and 1000, not 1001"),
        ({"limit": 0}, "limit must be a positive integer"),
        ({"limit": True}, "limit must be a positive integer"),
    ],
)
def test_refused_before_sending(
    serve: Serve, client: Callable[..., Hatchet], arguments: dict[str, Any], problem: str
) -> None:
    server = serve(sequence(page([])))
    with pytest.raises(EventListError, match=problem) as info:
        list(client(server).event.list(**arguments))
    assert info.value.reason == "invalid_request"
    assert server.requests == []


def test_a_push_answer_keeps_its_old_shape() -> None:
    row = EventRow("id", "k", {}, None, datetime(2026, 1, 1, tzinfo=UTC), None, "t")
    assert (row.triggered_run_ids, row.runs_by_status, row.triggered_runs) == ((), None, 0)


def test_the_package_import_stays_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, hatchet_client; hatchet_client.EventListError; "
        "print(sorted(m for m in ('grpc', 'hatchet_client.events', 'hatchet_client.rest') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
