"""Workflows the engine knows: declared at start, registered later; the REST workflow listing (Hatchet's shape and
paging, its ILIKE name filter); recorder mode; runs of unknown names dropped silently (Hatchet's default) or refused."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from hatchet_client import Hatchet
from hatchet_client._proto import workflows_pb2_grpc
from hatchet_client._proto.v1 import admin_pb2, admin_pb2_grpc
from hatchet_client.engine import Engine, EngineError, RunStore
from hatchet_client.engine.schema import SCHEMA_VERSION
from hatchet_client.engine.store import workflow_id


def rest_get(engine: Engine, params: list[tuple[str, str]] | None = None, **kwargs: Any) -> tuple[int, Any]:
    """GET the workflow listing: (status, decoded body). `token=None` sends none; `tenant=` another tenant."""
    tenant = kwargs.get("tenant", engine.tenant_id)
    url = f"{engine.server_url}/api/v1/tenants/{tenant}/workflows?{urllib.parse.urlencode(params or [])}"
    token = kwargs.get("token", "")
    headers = {} if token is None else {"Authorization": f"Bearer {token or engine.token()}"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def names(body: dict[str, Any]) -> list[str]:
    return [row["name"] for row in body["rows"]]


@pytest.fixture
def known(tmp_path: Path) -> Iterator[Engine]:
    """An engine that knows BulkParent, BulkChild and bench_BulkParent (declared in that order)."""
    with Engine(tmp_path / "known.db", port=0, workflows=["BulkParent", "BulkChild", "bench_BulkParent"]) as eng:
        yield eng


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Engine]:
    with Engine(tmp_path / "strict.db", port=0, workflows=["Known"], unknown_workflows="refuse") as eng:
        yield eng


# --- the REST listing ---


def test_rows_have_the_fields_of_hatchets_workflow(known: Engine) -> None:
    status, body = rest_get(known)
    assert status == 200
    assert names(body) == ["bench_BulkParent", "BulkChild", "BulkParent"]  # newest first
    row = body["rows"][2]
    assert set(row) == {"metadata", "name", "tenantId", "isPaused"}
    assert row["metadata"]["id"] == workflow_id(known.tenant_id, "BulkParent")
    assert datetime.fromisoformat(row["metadata"]["createdAt"]).tzinfo is not None
    assert row["metadata"]["updatedAt"] == row["metadata"]["createdAt"]
    assert (row["tenantId"], row["isPaused"]) == (known.tenant_id, False)
    assert body["pagination"] == {"current_page": 1, "next_page": 1, "num_pages": 1}
    assert body["embeddedEngine"] == {"recorder": False, "unknownWorkflows": "drop"}


def test_pages_are_numbered_as_hatchet_numbers_them(tmp_path: Path) -> None:
    with Engine(tmp_path / "e.db", port=0, workflows=[f"w{i}" for i in range(7)]) as eng:
        pages = [rest_get(eng, [("limit", "3"), ("offset", str(offset))])[1] for offset in (0, 3, 6)]
        assert [p["pagination"] for p in pages] == [
            {"current_page": 1, "next_page": 2, "num_pages": 3},
            {"current_page": 2, "next_page": 3, "num_pages": 3},
            {"current_page": 3, "next_page": 3, "num_pages": 3},  # the last page points at itself
        ]
        assert [name for p in pages for name in names(p)] == [f"w{i}" for i in reversed(range(7))]
        _, past_the_end = rest_get(eng, [("limit", "3"), ("offset", "9")])
        assert (past_the_end["rows"], past_the_end["pagination"]["current_page"]) == ([], 4)
        _, default = rest_get(eng)
        assert len(default["rows"]) == 7  # default limit 50
        _, none = rest_get(eng, [("name", "nothing")])
        assert none["pagination"] == {"current_page": 1, "next_page": 2, "num_pages": 0}


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("", ["bench_BulkParent", "BulkChild", "BulkParent"]),
        ("bulkparent", ["bench_BulkParent", "BulkParent"]),  # case-insensitive substring
        ("BULKC", ["BulkChild"]),
        ("bench_", ["bench_BulkParent"]),
        ("Bulk_arent", ["bench_BulkParent", "BulkParent"]),  # `_` is any one character, as in an ILIKE
        ("bench%Parent", ["bench_BulkParent"]),  # `%` any run of them
        ("Bulk\\_arent", []),  # `\` escapes
        ("nothing", []),
    ],
)
def test_the_name_filter_is_an_ilike_substring_match(known: Engine, search: str, expected: list[str]) -> None:
    status, body = rest_get(known, [("name", search)])
    assert status == 200
    assert names(body) == expected


def test_a_pathological_name_filter_answers_at_once(tmp_path: Path) -> None:
    with Engine(tmp_path / "e.db", port=0, workflows=["a" * 300, "a" * 299 + "b"]) as eng:
        started = time.monotonic()
        _, body = rest_get(eng, [("name", "%a" * 40 + "%b")])
        assert names(body) == ["a" * 299 + "b"]
        assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("name", "Bulk\\")], "name: LIKE pattern must not end with escape character"),
        ([("limit", "0")], "limit must be between"),
        ([("offset", "-1")], "offset must be between"),
        ([("limit", "many")], "limit 'many' is not an integer"),
    ],
)
def test_bad_parameters_are_a_400(known: Engine, params: list[tuple[str, str]], message: str) -> None:
    status, body = rest_get(known, params)
    assert status == 400
    assert message in body["errors"][0]["description"]


def test_the_listing_needs_a_token_for_the_tenant(known: Engine, tmp_path: Path) -> None:
    assert rest_get(known, token=None)[0] == 401
    with Engine(tmp_path / "other.db", port=0) as other:
        assert rest_get(known, token=other.token())[0] == 401
    assert rest_get(known, tenant=str(uuid.uuid4()))[0] == 403


# --- what the engine knows, and recorder mode ---


def test_an_engine_that_knows_no_workflow_is_a_recorder(engine: Engine, db_path: Path) -> None:
    status, body = rest_get(engine)
    assert (status, body["rows"], body["embeddedEngine"]) == (200, [], {"recorder": True, "unknownWorkflows": "drop"})
    assert engine.recorder and engine.known_workflows() == frozenset()
    assert engine.register_workflow("Later") is True
    assert not engine.recorder
    assert rest_get(engine)[1]["embeddedEngine"]["recorder"] is False


def test_declared_workflows_persist_and_accumulate(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    with Engine(db, port=0, workflows=["A", "B"]) as eng:
        assert eng.known_workflows() == {"A", "B"}
    with Engine(db, port=0) as eng:  # restarted without declaring: still known
        assert eng.known_workflows() == {"A", "B"}
    eng = Engine(db, workflows=["B", "C"])  # not started: registration works on the database
    assert eng.register_workflow("D") is True
    assert eng.known_workflows() == {"A", "B", "C", "D"}
    with RunStore(db) as store:
        _, rows = store.list_workflows()
    assert [(w.name, w.source) for w in rows] == [
        ("D", "registered"),
        ("C", "declared"),
        ("B", "declared"),
        ("A", "declared"),
    ]


def test_bad_workflow_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="unknown_workflows must be drop or refuse, not 'ignore'"):
        Engine(tmp_path / "e.db", unknown_workflows="ignore")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="workflows must be a sequence of names, not one string"):
        Engine(tmp_path / "e.db", workflows="BulkParent")
    with pytest.raises(EngineError, match="a workflow name must be a non-empty string, not ''"):
        Engine(tmp_path / "e.db", workflows=["ok", ""])
    assert not (tmp_path / "e.db").exists()  # refused before the database was made
    with RunStore(Engine(tmp_path / "e.db").db_path) as store, pytest.raises(EngineError, match="non-empty string"):
        store.register_workflow("")


def test_a_schema_2_database_is_upgraded_with_its_runs(db_path: Path, req: Any, as_auth: Any) -> None:
    with Engine(db_path, port=0) as eng, grpc.insecure_channel(eng.address) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        run_id = stub.TriggerWorkflow(req("Old", {"i": 1}), metadata=as_auth(eng.token())).workflow_run_id
    conn = sqlite3.connect(db_path)
    conn.executescript("DROP TABLE registered_workflows; PRAGMA user_version = 2;")
    conn.close()
    with RunStore(db_path) as store:  # a reader upgrades it too (the upgrade only adds a table)
        assert [r.run_id for r in store.list_runs()] == [run_id]
        assert store.known_workflows() == frozenset()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with Engine(db_path, port=0, workflows=["New"]) as eng:
        assert eng.known_workflows() == {"New"}
        assert eng.store.get_run(run_id) is not None


# --- unknown names on the trigger path ---


@pytest.fixture
def stub_for() -> Iterator[Callable[[Engine], tuple[Any, Any, Any]]]:
    channels: list[grpc.Channel] = []

    def make(eng: Engine) -> tuple[Any, Any, Any]:
        channel = grpc.insecure_channel(eng.address)
        channels.append(channel)
        auth = (("authorization", f"bearer {eng.token()}"),)
        return workflows_pb2_grpc.WorkflowServiceStub(channel), admin_pb2_grpc.AdminServiceStub(channel), auth

    yield make
    for channel in channels:
        channel.close()


def test_runs_of_unknown_names_are_dropped_silently_with_ids_returned(
    known: Engine, stub_for: Any, req: Any, bulk: Any
) -> None:
    workflows, admin, auth = stub_for(known)
    items = [
        req("BulkParent", {"i": 0}),
        req("Unknown", {"i": 1}),
        req("bulkparent", {"i": 2}),
        req("BulkChild", {"i": 3}),
    ]
    ids = list(workflows.BulkTriggerWorkflow(bulk(items), metadata=auth).workflow_run_ids)
    assert len(ids) == len(set(ids)) == 4 and all(uuid.UUID(i).version == 4 for i in ids)
    stored = [(r.run_id, r.workflow_name, r.input["i"]) for r in known.store.list_runs()]
    assert stored == [(ids[0], "BulkParent", 0), (ids[3], "BulkChild", 3)]  # names are case-sensitive
    with pytest.raises(grpc.RpcError) as err:
        admin.GetRunDetails(admin_pb2.GetRunDetailsRequest(external_id=ids[1]), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    single = workflows.TriggerWorkflow(req("Unknown", {"i": 4}), metadata=auth).workflow_run_id
    assert uuid.UUID(single).version == 4
    all_unknown = workflows.BulkTriggerWorkflow(bulk([req("X"), req("Y")]), metadata=auth).workflow_run_ids
    assert len(all_unknown) == 2
    assert known.store.count() == 2


def test_a_strict_engine_refuses_calls_with_unknown_names(strict: Engine, stub_for: Any, req: Any, bulk: Any) -> None:
    workflows, _, auth = stub_for(strict)
    with pytest.raises(grpc.RpcError) as err:
        workflows.BulkTriggerWorkflow(bulk([req("Known"), req("Zeta"), req("Alpha"), req("Zeta")]), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "workflow names not found: Alpha, Zeta"
    with pytest.raises(grpc.RpcError) as err:
        workflows.TriggerWorkflow(req("Other"), metadata=auth)
    assert (err.value.code(), err.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "workflow names not found: Other",
    )
    assert strict.store.count() == 0
    ids = workflows.BulkTriggerWorkflow(bulk([req("Known"), req("Known")]), metadata=auth).workflow_run_ids
    assert [r.run_id for r in strict.store.list_runs()] == list(ids)
    assert rest_get(strict)[1]["embeddedEngine"] == {"recorder": False, "unknownWorkflows": "refuse"}


def test_a_recorder_stores_every_name_even_when_strict(tmp_path: Path, stub_for: Any, req: Any, bulk: Any) -> None:
    with Engine(tmp_path / "e.db", port=0, unknown_workflows="refuse") as eng:
        workflows, _, auth = stub_for(eng)
        workflows.BulkTriggerWorkflow(bulk([req("A"), req("B")]), metadata=auth)
        assert [r.workflow_name for r in eng.store.list_runs()] == ["A", "B"]


def test_a_registration_applies_from_the_next_call(known: Engine, stub_for: Any, req: Any) -> None:
    workflows, _, auth = stub_for(known)
    workflows.TriggerWorkflow(req("Late", {"n": 1}), metadata=auth)
    assert known.store.count() == 0
    with RunStore(known.db_path) as other_reader:  # as another process on the same database would
        assert other_reader.register_workflow("Late") is True
    workflows.TriggerWorkflow(req("Late", {"n": 2}), metadata=auth)
    assert [r.input for r in known.store.list_runs()] == [{"n": 2}]


def test_our_client_over_grpc_gets_ids_for_dropped_runs_and_its_check_finds_them_first(known: Engine) -> None:
    with Hatchet(token=known.token(), tls_strategy="none", connect_timeout=5, environ={}) as hatchet:
        runs = [{"workflow_name": name, "input": {"i": i}} for i, name in enumerate(["BulkParent", "Missing"] * 3)]
        check = hatchet.check_workflows({str(run["workflow_name"]) for run in runs})
        assert (check.found, check.missing) == ({"BulkParent"}, {"Missing"})
        refs = hatchet.admin.run_workflows(runs, batch_size=2)
    assert len(refs) == 6
    # chunks travel concurrently, so the engine's arrival order across chunks is not the list's order
    assert sorted(r.run_id for r in known.store.list_runs()) == sorted(refs[i].workflow_run_id for i in (0, 2, 4))


# --- traceparent ---


def test_every_run_gets_its_own_traceparent_and_a_callers_one_is_kept(
    engine: Engine, stub_for: Any, req: Any, bulk: Any
) -> None:
    workflows, _, auth = stub_for(engine)
    items = [
        req("W", {}, {"k": "v"}),
        req("W", {}, None),
        req("W", {}, "{ }"),
        req("W", {}, '  {"a": 1} '),
        req("W", {}, {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "k": "v"}),
        req("W", {}, '{"trace\\u0070arent": "mine"}'),
    ]
    workflows.BulkTriggerWorkflow(bulk(items), metadata=auth)
    runs = list(engine.store.list_runs())
    generated = [r.additional_metadata["traceparent"] for r in runs[:4]]
    assert len(set(generated)) == 4 and all(tp.startswith("00-") and tp.endswith("-01") for tp in generated)
    assert [{k: v for k, v in r.additional_metadata.items() if k != "traceparent"} for r in runs[:4]] == [
        {"k": "v"},
        {},
        {},
        {"a": 1},
    ]
    assert runs[4].additional_metadata == {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "k": "v",
    }
    assert runs[5].additional_metadata == {"traceparent": "mine"}
    raw = engine.store.get_raw_run(runs[5].run_id)
    assert raw is not None and raw.additional_metadata == '{"trace\\u0070arent": "mine"}'  # no second key


@pytest.mark.parametrize("indexed", [False, True])
def test_the_run_listing_filters_on_the_traceparent(engine: Engine, stub_for: Any, req: Any, indexed: bool) -> None:
    workflows, _, auth = stub_for(engine)
    run_id = workflows.TriggerWorkflow(req("W", {}, {"k": "v"}), metadata=auth).workflow_run_id
    workflows.TriggerWorkflow(req("W", {}, {"k": "v"}), metadata=auth)
    if indexed:
        engine.index_now()
    run = engine.store.get_run(run_id)
    assert run is not None
    pair = f"traceparent:{run.additional_metadata['traceparent']}"
    url = f"{engine.server_url}/api/v1/stable/tenants/{engine.tenant_id}/workflow-runs/external-ids?"
    request = urllib.request.Request(
        url + urllib.parse.urlencode([("additional_metadata", pair)]),
        headers={"Authorization": f"Bearer {engine.token()}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert json.loads(resp.read()) == [run_id]
