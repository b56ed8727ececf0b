"""Workflow listing and the preflight name check (list_workflows, check_workflows) against the embedded engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hatchet_client import ConfigError, Hatchet, ListWorkflowsError, WorkflowCheck, check_workflows, list_workflows
from hatchet_client.engine import Engine
from hatchet_client.engine.store import workflow_id


@pytest.fixture
def declared(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine that knows the workflows the test names (an indirect parameter: the list of names)."""
    names: list[str] = request.param
    with Engine(tmp_path / "engine.db", port=0, workflows=names) as eng:
        yield eng


def _client(engine: Engine, **settings: Any) -> Hatchet:
    return Hatchet(token=engine.token(), tls_strategy="none", connect_timeout=5, environ={}, **settings)


def _check(engine: Engine, names: set[str], **kwargs: Any) -> WorkflowCheck:
    return check_workflows(engine.server_url, engine.tenant_id, engine.token(), names, **kwargs)


@pytest.mark.parametrize("declared", [[f"wf-{i:03}" for i in range(120)]], indirect=True)
def test_the_listing_pages_through_more_workflows_than_a_page(declared: Engine) -> None:
    rows = list(list_workflows(declared.server_url, declared.tenant_id, declared.token(), limit=50))
    assert [r.name for r in rows] == [f"wf-{i:03}" for i in reversed(range(120))]  # newest registration first
    assert all(r.workflow_id == workflow_id(declared.tenant_id, r.name) and r.is_paused is False for r in rows)
    with _client(declared) as hatchet:
        assert [r.name for r in hatchet.list_workflows("WF-11", limit=3)] == [f"wf-11{i}" for i in reversed(range(10))]
    # a name on the last page, found with a small page size
    check = _check(declared, {"wf-000", "wf-119", "wf-120"}, page_size=7)
    assert (check.found, check.missing) == ({"wf-000", "wf-119"}, {"wf-120"})
    assert (check.recorder, check.listed_none, check.embedded) == (False, False, True)


@pytest.mark.parametrize("declared", [["BulkParent", "BulkChild", "BulkParentV2"]], indirect=True)
def test_names_are_compared_exactly_though_the_engine_filters_by_substring(declared: Engine) -> None:
    with _client(declared) as hatchet:
        assert sorted(r.name for r in hatchet.list_workflows("bulk")) == ["BulkChild", "BulkParent", "BulkParentV2"]
        check = hatchet.check_workflows({"Bulk", "BulkParent", "bulkparent"})
    assert (check.found, check.missing) == ({"BulkParent"}, {"Bulk", "bulkparent"})
    assert not check.ok
    assert check.describe() == "workflow(s) not found in the tenant: Bulk, bulkparent"
    assert _check(declared, {"BulkParentV2", "BulkChild"}).describe() == "2 workflow name(s) checked: all exist"


@pytest.mark.parametrize("declared", [["bench_BulkParent", "BulkParent", "benchxOther"]], indirect=True)
def test_namespaced_names(declared: Engine) -> None:
    with _client(declared, namespace="Bench") as hatchet:
        # The namespace is applied as run_workflow applies it; names that carry it already are kept.
        check = hatchet.check_workflows(["BulkParent", "bench_BulkParent", "Other"])
        assert [r.name for r in hatchet.list_workflows("Bulk")] == ["bench_BulkParent"]
    # `bench_Other` is not `benchxOther`, though an ILIKE reads `_` as any one character
    assert (check.found, check.missing) == ({"bench_BulkParent"}, {"bench_Other"})
    with _client(declared) as hatchet:
        assert hatchet.check_workflows(["BulkParent"]).found == {"BulkParent"}


def test_a_recorder_engine_is_reported_as_such_until_it_knows_a_workflow(engine: Engine) -> None:
    with _client(engine) as hatchet:
        check = hatchet.check_workflows({"BulkParent", "Anything"})
        assert (check.found, check.missing, check.recorder, check.ok) == (frozenset(), frozenset(), True, True)
        assert check.describe() == "embedded engine in recorder mode: workflow names not checked"
        assert list(hatchet.list_workflows()) == []

        assert engine.register_workflow("BulkParent") is True  # live, as a worker's PutWorkflow will
        assert engine.register_workflow("BulkParent") is False
        check = hatchet.check_workflows({"BulkParent", "Anything"})
    assert (check.found, check.missing, check.recorder, check.listed_none) == (
        {"BulkParent"},
        {"Anything"},
        False,
        False,
    )


def test_no_names_need_no_request_and_bad_names_are_refused() -> None:
    assert check_workflows("http://127.0.0.1:9", "t", "tok", set()) == WorkflowCheck(frozenset(), frozenset())
    with pytest.raises(ListWorkflowsError, match="a workflow name must be a non-empty string, not ''"):
        check_workflows("http://127.0.0.1:9", "t", "tok", {""})
    with pytest.raises(ListWorkflowsError, match="limit must be positive"):
        list(list_workflows("http://127.0.0.1:9", "t", "tok", limit=0))


def test_an_unreachable_engine_is_a_listing_error() -> None:
    with pytest.raises(
        ListWorkflowsError,
        match=r"^GET http://127\.0\.0\.1:9/api/v1/tenants/t/workflows: cannot reach the server: ",
    ) as info:
        check_workflows("http://127.0.0.1:9", "t", "tok", {"W"}, timeout=2)
    assert info.value.reason == "unreachable"


def test_a_bad_token_is_an_http_error_without_the_token(engine: Engine, make_token: Any) -> None:
    forged = make_token()
    with pytest.raises(ListWorkflowsError) as info:
        check_workflows(engine.server_url, engine.tenant_id, forged, {"W"})
    assert (info.value.reason, info.value.status) == ("http_status", 401)
    assert forged not in str(info.value)


def test_the_rest_limits_come_from_the_config(engine: Engine, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HATCHET_CLIENT_REST_TIMEOUT", "2.5")
    clean_env.setenv("HATCHET_CLIENT_REST_MAX_RESPONSE_BYTES", "64")
    hatchet = Hatchet(token=engine.token(), tls_strategy="none")
    try:
        assert (hatchet.config.rest_limits.timeout, hatchet.config.rest_limits.max_response_bytes) == (2.5, 64)
        engine.register_workflow("W")
        with pytest.raises(
            ListWorkflowsError, match=r"the answer announces \d+ bytes, more than the 64 allowed"
        ) as info:
            hatchet.check_workflows({"W"})
        assert info.value.reason == "too_large"
    finally:
        hatchet.close()
    clean_env.setenv("HATCHET_CLIENT_REST_TIMEOUT", "0")
    with pytest.raises(ConfigError, match="HATCHET_CLIENT_REST_TIMEOUT must be a positive number of seconds"):
        Hatchet(token=engine.token(), tls_strategy="none")
