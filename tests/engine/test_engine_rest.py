"""The REST run listing, over real HTTP: filters, AND/OR, time range, pagination, the row shape, auth."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hatchet_client.engine import Engine
from hatchet_client.engine.store import workflow_id

from tests.engine.traceparent import user_metadata

Get = Callable[..., tuple[int, Any]]


@pytest.fixture
def get(engine: Engine) -> Get:
    """get(suffix, params=[(k, v), ...], token=..., tenant=...) -> (status, decoded JSON body)."""
    default_token = engine.token()

    def call(
        suffix: str = "", params: list[tuple[str, str]] | None = None, token: str | None = "", tenant: str | None = None
    ) -> tuple[int, Any]:
        query = urllib.parse.urlencode(params or [])
        url = f"{engine.server_url}/api/v1/stable/tenants/{tenant or engine.tenant_id}/workflow-runs{suffix}?{query}"
        headers = {} if token is None else {"Authorization": f"Bearer {token or default_token}"}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())

    return call


@pytest.fixture
def seeded(stubs: Any, auth: Any, req: Any, bulk: Any) -> list[str]:
    """12 runs: env alternates prod/dev, team cycles a/b/c, key is unique; returns ids in trigger order."""
    items = [
        req(
            "nightly" if i % 2 == 0 else "hourly",
            {"i": i},
            {"env": "prod" if i % 2 == 0 else "dev", "team": "abc"[i % 3], "key": f"run:{i}", "n": i},
        )
        for i in range(12)
    ]
    return list(stubs.workflows.BulkTriggerWorkflow(bulk(items), metadata=auth).workflow_run_ids)


def _ids(body: dict[str, Any]) -> list[str]:
    return [row["workflowRunExternalId"] for row in body["rows"]]


@pytest.fixture(params=["tail", "indexed"])
def index_state(request: pytest.FixtureRequest, engine: Engine, seeded: list[str]) -> str:
    """Each filter test runs twice: before the lookup indexes are built (tail scan) and after."""
    if request.param == "indexed":
        engine.index_now()
    return str(request.param)


def test_rows_have_every_field_the_official_client_requires(engine: Engine, get: Get, seeded: list[str]) -> None:
    status, body = get(params=[("additional_metadata", "key:run:3")])
    assert status == 200
    [row] = body["rows"]
    assert set(body["pagination"]) == {"current_page", "next_page", "num_pages"}
    assert row["metadata"]["id"] == row["taskExternalId"] == row["workflowRunExternalId"] == seeded[3]
    for field in ("createdAt", "taskInsertedAt"):
        assert datetime.fromisoformat(row[field]).tzinfo is not None
    assert row["metadata"]["createdAt"] == row["metadata"]["updatedAt"] == row["createdAt"]
    assert (row["displayName"], row["workflowName"], row["status"], row["type"]) == (
        "hourly",
        "hourly",
        "QUEUED",
        "DAG",
    )
    assert (row["input"], row["output"], row["numSpawnedChildren"]) == ({"i": 3}, {}, 0)
    assert user_metadata(row["additionalMetadata"]) == {"env": "dev", "team": "a", "key": "run:3", "n": 3}
    assert isinstance(row["taskId"], int)
    assert row["tenantId"] == engine.tenant_id and len(row["tenantId"]) == 36
    assert row["workflowId"] == workflow_id(engine.tenant_id, "hourly")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], list(range(12))),
        ([("additional_metadata", "env:prod")], [0, 2, 4, 6, 8, 10]),
        # the key is split on the first ':' only
        ([("additional_metadata", "key:run:7")], [7]),
        # two pairs, default operator OR
        ([("additional_metadata", "team:a"), ("additional_metadata", "key:run:1")], [0, 1, 3, 6, 9]),
        (
            [
                ("additional_metadata", "env:prod"),
                ("additional_metadata", "team:a"),
                ("additional_metadata_operator", "AND"),
            ],
            [0, 6],
        ),
        (
            [
                ("additional_metadata", "env:prod"),
                ("additional_metadata", "team:b"),
                ("additional_metadata_operator", "OR"),
            ],
            [0, 1, 2, 4, 6, 7, 8, 10],
        ),
        ([("additional_metadata", "env:staging")], []),
        ([("additional_metadata", "n:5")], []),  # a stored number is not the string "5"
        ([("statuses", "QUEUED")], list(range(12))),
        ([("statuses", "COMPLETED"), ("statuses", "FAILED")], []),
        ([("only_tasks", "false"), ("include_payloads", "true")], list(range(12))),
    ],
)
def test_filters_select_the_matching_runs_newest_first(
    get: Get, seeded: list[str], index_state: str, params: list[tuple[str, str]], expected: list[int]
) -> None:
    status, body = get(params=[*params, ("limit", "100")])
    assert status == 200
    assert _ids(body) == [seeded[i] for i in reversed(expected)]
    status, ids = get("/external-ids", params=params)
    assert status == 200
    assert ids == [seeded[i] for i in reversed(expected)]


def test_filters_cover_indexed_and_not_yet_indexed_runs_together(
    engine: Engine, get: Get, seeded: list[str], stubs: Any, auth: Any, req: Any
) -> None:
    engine.index_now()
    later = stubs.workflows.TriggerWorkflow(req(input={}, metadata={"env": "prod"}), metadata=auth).workflow_run_id
    _, body = get(params=[("additional_metadata", "env:prod")])
    assert _ids(body) == [later] + [seeded[i] for i in (10, 8, 6, 4, 2, 0)]


def test_since_and_until_bound_the_time_of_receipt(
    engine: Engine, get: Get, seeded: list[str], stubs: Any, auth: Any, req: Any
) -> None:
    middle = datetime.now(UTC)
    later = stubs.workflows.TriggerWorkflow(req(input={}), metadata=auth).workflow_run_id
    sdk_format = "%Y-%m-%dT%H:%M:%S.%f%z"  # what the official REST client sends: +0000, not Z

    _, body = get(params=[("since", middle.strftime(sdk_format))])
    assert _ids(body) == [later]
    _, body = get(params=[("until", middle.strftime(sdk_format))])
    assert _ids(body) == list(reversed(seeded))
    _, body = get(params=[("since", (middle - timedelta(hours=1)).isoformat()), ("until", middle.isoformat())])
    assert _ids(body) == list(reversed(seeded))
    _, body = get(params=[("since", (middle + timedelta(hours=1)).isoformat())])
    assert body == {"pagination": {"current_page": 1, "next_page": 2, "num_pages": 0}, "rows": []}


def test_pages_cover_every_run_once(get: Get, seeded: list[str]) -> None:
    seen: list[str] = []
    for page, offset in enumerate(range(0, 12, 5), start=1):
        status, body = get(params=[("limit", "5"), ("offset", str(offset))])
        assert status == 200
        assert body["pagination"] == {"current_page": page, "next_page": page + 1, "num_pages": 3}
        seen += _ids(body)
    assert seen == list(reversed(seeded))
    _, default = get()
    assert len(default["rows"]) == 12  # default limit is 50


def test_workflow_ids_select_workflows(engine: Engine, get: Get, seeded: list[str]) -> None:
    _, body = get(params=[("workflow_ids", workflow_id(engine.tenant_id, "hourly"))])
    assert _ids(body) == [seeded[i] for i in (11, 9, 7, 5, 3, 1)]
    _, body = get(params=[("workflow_ids", str(uuid.uuid4()))])
    assert body["rows"] == []


def test_rows_carry_the_json_texts_as_received(engine: Engine, stubs: Any, auth: Any, req: Any) -> None:
    text = '{"big": 1e400, "b": 1.50}'
    stubs.workflows.TriggerWorkflow(req(input=text, metadata='{"k" : "v"}'), metadata=auth)
    url = f"{engine.server_url}/api/v1/stable/tenants/{engine.tenant_id}/workflow-runs"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {engine.token()}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        body = resp.read().decode()
    assert re.search(
        re.escape(f',"input":{text},"additionalMetadata":')
        + r'\{"traceparent":"00-[0-9a-f]{32}-[0-9a-f]{16}-01","k" : "v"\}\}',
        body,
    )
    assert json.loads(body)["rows"][0]["input"] == {"big": float("inf"), "b": 1.5}


def test_include_payloads_false_leaves_the_input_out(get: Get, seeded: list[str]) -> None:
    _, body = get(params=[("include_payloads", "false"), ("additional_metadata", "key:run:2")])
    assert body["rows"][0]["input"] == {}
    assert body["rows"][0]["additionalMetadata"]["key"] == "run:2"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("limit", "0")], "limit must be between"),
        ([("limit", "ten")], "limit 'ten' is not an integer"),
        ([("offset", "-1")], "offset must be between"),
        ([("since", "yesterday")], "since 'yesterday' is not an RFC 3339 date-time"),
        ([("additional_metadata", "novalue")], "is not key:value"),
        ([("additional_metadata_operator", "XOR")], "must be AND or OR"),
        ([("statuses", "DONE")], "unknown statuses: DONE"),
        ([("workflow_ids", "wf")], "workflow_ids must be UUIDs"),
    ],
)
def test_bad_parameters_are_a_400(get: Get, params: list[tuple[str, str]], message: str) -> None:
    status, body = get(params=params)
    assert status == 400
    assert message in body["errors"][0]["description"]


def test_requests_without_a_valid_token_are_refused(engine: Engine, get: Get, tmp_path: Any) -> None:
    assert get(token=None)[0] == 401
    with Engine(tmp_path / "other.db", port=0) as other:
        status, body = get(token=other.token())
    assert status == 401
    assert "signature is invalid" in body["errors"][0]["description"]
    assert get(token=engine.token(ttl=timedelta(seconds=-1)))[0] == 401


def test_another_tenant_is_forbidden_and_unknown_paths_are_not_found(engine: Engine, get: Get) -> None:
    assert get(tenant=str(uuid.uuid4()))[0] == 403
    status, _ = get("/nope")
    assert status == 404
