"""RunStore, the read side of the engine's database, as another process opens it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hatchet_client.engine import Engine, EngineError, RunStore


def test_list_runs_filters_by_workflow_and_metadata(
    engine: Engine, stubs: Any, auth: Any, req: Any, bulk: Any, store: RunStore
) -> None:
    items = [req("a" if i < 4 else "b", {"i": i}, {"m": "x" if i % 2 else "y", "i": str(i)}) for i in range(8)]
    stubs.workflows.BulkTriggerWorkflow(bulk(items), metadata=auth)
    for indexed in (False, True):
        if indexed:
            engine.index_now()
        assert [r.input["i"] for r in store.list_runs()] == list(range(8))
        assert [r.input["i"] for r in store.list_runs(workflow="a")] == [0, 1, 2, 3]
        assert [r.input["i"] for r in store.list_runs(metadata={"m": "x"})] == [1, 3, 5, 7]
        assert [r.input["i"] for r in store.list_runs(workflow="b", metadata={"m": "x", "i": "5"})] == [5]
        assert list(store.list_runs(metadata={"m": "z"})) == []
        assert store.count() == 8


def test_received_at_never_goes_backwards(engine: Engine, stubs: Any, auth: Any, req: Any, store: RunStore) -> None:
    for i in range(5):
        stubs.workflows.TriggerWorkflow(req(input={"i": i}), metadata=auth)
    times = [r.received_at for r in store.list_runs()]
    assert times == sorted(times)


def test_stored_runs_convert_to_plain_dicts(engine: Engine, stubs: Any, auth: Any, req: Any, store: RunStore) -> None:
    stubs.workflows.TriggerWorkflow(req("wf", {"a": 1}, {"k": "v"}, priority=2), metadata=auth)
    [run] = store.list_runs()
    as_dict = run.to_dict()
    assert as_dict == {
        "run_id": run.run_id,
        "workflow_name": "wf",
        "input": {"a": 1},
        "additional_metadata": {"k": "v"},
        "priority": 2,
        "received_at": as_dict["received_at"],
    }
    assert as_dict["received_at"].endswith("Z")


def test_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no engine database at"):
        RunStore(tmp_path / "absent.db")


def test_a_database_that_is_not_the_engines_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    with pytest.raises(EngineError, match="not an engine database"):
        RunStore(other)


def test_the_engine_creates_the_database_directory_and_keeps_a_stable_tenant(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "engine.db"
    first = Engine(path, port=0).tenant_id
    assert path.is_file()
    assert Engine(path, port=0).tenant_id == first
    with RunStore(path) as store:
        assert store.tenant_id == first


def test_a_busy_port_is_a_clear_error(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=f"cannot listen on 127.0.0.1:{engine.port}"):
        Engine(tmp_path / "second.db", port=engine.port, rest_port=0).start()
