"""The REST listings check the shape of what they are answered: a wrong field is a clean `bad_shape` error."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from hatchet_client import ListRunsError, ListWorkflowsError, check_workflows, list_run_ids, list_runs, list_workflows

from tests.sdk.scripted_http import Handler, Request, ScriptedServer, http_answer, json_answer
from tests.sdk.scripted_http import serve as serve  # the fixture
from tests.sdk.test_client_rest import DEADLINE, HOUR_AGO, TENANT, TOKEN

# --- the listings check the shape of what they are answered ---


def _runs_answer(**row_changes: Any) -> dict[str, Any]:
    row = {
        "workflowRunExternalId": "3f0e9f6e-0c8e-4a55-9f0b-0d1f1e6a2b11",
        "status": "QUEUED",
        "createdAt": "2026-01-01T00:00:00Z",
        "displayName": "W",
        "input": {},
        "additionalMetadata": {"k": "v"},
    }
    row.update(row_changes)
    return {"pagination": {"current_page": 1, "next_page": 2, "num_pages": 1}, "rows": [row]}


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([], "the answer is a list, not an object"),
        ({"pagination": {}}, "rows is missing or null, not a list"),
        ({"rows": {"a": 1}}, "rows is an object, not a list"),
        ({"rows": [1]}, "rows[0] is a number, not an object"),
        (_runs_answer(workflowRunExternalId=None), "rows[0].workflowRunExternalId is missing or null, not a string"),
        (_runs_answer(status=3), "rows[0].status is a number, not a string"),
        (_runs_answer(additionalMetadata=["k:v"]), "rows[0].additionalMetadata is a list, not an object"),
        (_runs_answer(input="{}"), "rows[0].input is a string, not an object"),
        (_runs_answer(workflowName=7), "rows[0].workflowName is a number, not a string"),
        (
            {**_runs_answer(), "pagination": {"current_page": "1"}},
            "pagination.current_page is a string, not an integer",
        ),
        ({**_runs_answer(), "pagination": {"num_pages": True}}, "pagination.num_pages is a boolean, not an integer"),
        ({**_runs_answer(), "pagination": {"next_page": 1.5}}, "pagination.next_page is a number, not an integer"),
        ({**_runs_answer(), "pagination": []}, "the answer.pagination is a list, not an object"),
    ],
)
def test_the_run_listing_refuses_answers_of_the_wrong_shape(
    serve: Callable[[Handler], ScriptedServer], answer: Any, problem: str
) -> None:
    server = serve(json_answer(answer))
    with pytest.raises(ListRunsError) as info:
        list(list_runs(server.url, TENANT, TOKEN, {"k": "v"}, since=HOUR_AGO, timeout=DEADLINE))
    assert (info.value.reason, info.value.problem) == ("bad_shape", problem)
    assert str(info.value) == f"GET {server.url}/api/v1/stable/tenants/{TENANT}/workflow-runs: {problem}"


def test_the_run_id_listing_refuses_anything_but_a_list_of_strings(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(json_answer(["a", 5]))
    with pytest.raises(ListRunsError, match=r"external-ids: \[1\] is not a run id \(a string\)$"):
        list_run_ids(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, timeout=DEADLINE)
    server = serve(json_answer({"ids": []}))
    with pytest.raises(ListRunsError, match="the answer is an object, not a list"):
        list_run_ids(server.url, TENANT, TOKEN, {}, since=HOUR_AGO, timeout=DEADLINE)


def test_a_listing_that_fails_on_its_second_page_raises_after_the_first(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    first = json.dumps({**_runs_answer(), "pagination": {"current_page": 1, "num_pages": 2}}).encode()

    def handle(conn: socket.socket, req: Request) -> None:
        conn.sendall(http_answer(first) if dict(req.query)["offset"] == "0" else b"garbage\r\n\r\n")

    server = serve(handle)
    rows = list_runs(server.url, TENANT, TOKEN, {"k": "v"}, since=HOUR_AGO, limit=1, timeout=DEADLINE)
    assert next(rows).run_id == "3f0e9f6e-0c8e-4a55-9f0b-0d1f1e6a2b11"
    with pytest.raises(ListRunsError) as info:
        next(rows)
    assert info.value.reason == "not_http"
    assert [dict(r.query)["offset"] for r in server.requests] == ["0", "1"]


def _workflow(workflow_name: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "metadata": {"id": "9d2c1b1e-7f53-4c2a-8d59-6a5b3f0e1c22", "createdAt": "2026-01-01T00:00:00Z"},
        "name": workflow_name,
        "tenantId": TENANT,
    }
    row.update(changes)
    return row


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"rows": None}, "rows is missing or null, not a list"),
        ({"rows": [_workflow("W", metadata={})]}, "rows[0].metadata.id is missing or null, not a string"),
        ({"rows": [_workflow("W", metadata="x")]}, "rows[0].metadata is a string, not an object"),
        ({"rows": [_workflow("W", name=["W"])]}, "rows[0].name is a list, not a string"),
        ({"rows": [_workflow("W", isPaused="no")]}, "rows[0].isPaused is a string, not a boolean"),
        ({"rows": [], "pagination": {"num_pages": "0"}}, "pagination.num_pages is a string, not an integer"),
        ({"rows": [], "embeddedEngine": {"recorder": "yes"}}, "embeddedEngine.recorder is a string, not a boolean"),
        (
            {"rows": [], "embeddedEngine": {"unknownWorkflows": "drop"}},
            "embeddedEngine.recorder is missing or null, not a boolean",
        ),
    ],
)
def test_the_workflow_listing_refuses_answers_of_the_wrong_shape(
    serve: Callable[[Handler], ScriptedServer], answer: Any, problem: str
) -> None:
    server = serve(json_answer(answer))
    with pytest.raises(ListWorkflowsError) as info:
        check_workflows(server.url, TENANT, TOKEN, {"W"}, timeout=DEADLINE)
    assert (info.value.reason, info.value.problem) == ("bad_shape", problem)
    assert str(info.value) == f"GET {server.url}/api/v1/tenants/{TENANT}/workflows: {problem}"


def test_the_workflow_listing_request_follows_the_official_client(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(
        json_answer({"rows": [_workflow("bench_BulkParent")], "pagination": {"current_page": 1, "num_pages": 1}})
    )
    rows = list(list_workflows(server.url, TENANT, TOKEN, "bench_Bulk", limit=25, timeout=DEADLINE))
    assert [(r.name, r.workflow_id, r.is_paused) for r in rows] == [
        ("bench_BulkParent", "9d2c1b1e-7f53-4c2a-8d59-6a5b3f0e1c22", None)
    ]
    [request] = server.requests
    assert request.path == f"/api/v1/tenants/{TENANT}/workflows"
    assert request.query == [("offset", "0"), ("limit", "25"), ("name", "bench_Bulk")]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_a_hatchet_that_lists_no_workflow_at_all(serve: Callable[[Handler], ScriptedServer]) -> None:
    """What the real engine answers for a tenant where no worker registered anything: no embeddedEngine flag."""
    server = serve(json_answer({"rows": [], "pagination": {"current_page": 1, "next_page": 1, "num_pages": 0}}))
    check = check_workflows(server.url, TENANT, TOKEN, {"bench_BulkParent", "bench_Other"}, timeout=DEADLINE)
    assert (check.found, check.missing) == (frozenset(), {"bench_BulkParent", "bench_Other"})
    assert (check.recorder, check.listed_none, check.embedded, check.ok) == (False, True, False, False)
    assert check.describe() == "the engine lists no workflows at all; not found: bench_BulkParent, bench_Other"
    # one filtered search per name, then one unfiltered request to tell "none at all" from "these are unknown"
    assert [dict(r.query).get("name") for r in server.requests] == ["bench_BulkParent", "bench_Other", None]


def test_a_search_term_never_carries_like_escapes_or_wildcards(serve: Callable[[Handler], ScriptedServer]) -> None:
    server = serve(json_answer({"rows": [_workflow("a\\b%cdef")], "pagination": {"current_page": 1, "num_pages": 1}}))
    check = check_workflows(server.url, TENANT, TOKEN, {"a\\b%cdef"}, timeout=DEADLINE)
    assert check.found == {"a\\b%cdef"}
    assert dict(server.requests[0].query)["name"] == "cdef"
