"""The engine's REST task operations refuse what Hatchet refuses: bad bodies and framing, bad metrics queries,
tokens and tenants not theirs (fixtures: task_ops_fixtures.py; no worker is needed)."""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any

import pytest
from hatchet_client.engine import Engine

from tests.engine.task_ops_fixtures import SINCE, Rest, engine, rest

__all__ = ["engine", "rest"]  # fixtures, used by name

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
