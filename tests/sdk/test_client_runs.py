"""The REST run listing (list_runs, list_run_ids) against the engine's REST server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hatchet_client import Hatchet, ListRunsError, list_run_ids, list_runs

from tests.engine.traceparent import user_metadata

HOUR_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)


@pytest.fixture
def launched(hatchet: Hatchet) -> dict[str, str]:
    """20 runs of manifest a (keys k0..k19) and 5 of manifest b; returns key -> run id for manifest a."""
    runs: list[Any] = [
        {"workflow_name": "W", "input": {"i": i}, "options": {"additional_metadata": {"manifest": "a", "key": f"k{i}"}}}
        for i in range(20)
    ]
    runs += [
        {"workflow_name": "W", "input": {}, "options": {"additional_metadata": {"manifest": "b", "key": f"k{i}"}}}
        for i in range(5)
    ]
    refs = hatchet.admin.run_workflows(runs)
    return {f"k{i}": refs[i].workflow_run_id for i in range(20)}


def test_paging_returns_every_matching_run_once(engine: Any, hatchet: Hatchet, launched: dict[str, str]) -> None:
    rows = list(
        list_runs(engine.server_url, engine.tenant_id, engine.token(), {"manifest": "a"}, since=HOUR_AGO, limit=7)
    )
    assert sorted(r.run_id for r in rows) == sorted(launched.values())
    row = next(r for r in rows if r.run_id == launched["k3"])
    assert user_metadata(row.additional_metadata) == {"manifest": "a", "key": "k3"}
    assert row.input == {"i": 3}
    assert row.status == "QUEUED"
    assert row.workflow_name in (None, "W")


def test_and_or_filters(engine: Any, hatchet: Hatchet, launched: dict[str, str]) -> None:
    both = list(hatchet.list_runs({"manifest": "a", "key": "k3"}, since=HOUR_AGO))
    assert [r.run_id for r in both] == [launched["k3"]]
    either = list(hatchet.list_runs({"manifest": "b", "key": "k3"}, "OR", since=HOUR_AGO))
    assert len(either) == 6
    ids = hatchet.list_run_ids({"manifest": "a", "key": "k3"}, since=HOUR_AGO)
    assert ids == [launched["k3"]]
    assert list(hatchet.list_runs({"manifest": "a"}, since=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))) == []


def test_a_bad_token_is_an_http_error_without_the_token(engine: Any, make_token: Callable[..., str]) -> None:
    forged = make_token()
    with pytest.raises(ListRunsError) as info:
        list(list_runs(engine.server_url, engine.tenant_id, forged, {"k": "v"}, since=HOUR_AGO))
    assert "HTTP 401" in str(info.value)
    assert forged not in str(info.value)
    with pytest.raises(ListRunsError, match="HTTP 401"):
        list_run_ids(engine.server_url, engine.tenant_id, forged, {}, since=HOUR_AGO)


def test_unreachable_server_and_bad_filters() -> None:
    with pytest.raises(
        ListRunsError,
        match=r"^GET http://127\.0\.0\.1:9/api/v1/stable/tenants/t/workflow-runs: cannot reach the server: ",
    ):
        list(list_runs("http://127.0.0.1:9", "t", "tok", {}, since=HOUR_AGO, timeout=2))
    with pytest.raises(ListRunsError, match="cannot filter on metadata key 'a:b'"):
        list(list_runs("http://127.0.0.1:9", "t", "tok", {"a:b": "c"}, since=HOUR_AGO))
    with pytest.raises(ListRunsError, match="operator must be AND or OR"):
        list(list_runs("http://127.0.0.1:9", "t", "tok", {}, "XOR", since=HOUR_AGO))  # type: ignore[arg-type]
