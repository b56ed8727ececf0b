"""RunStore, the read side of the engine's database, as another process opens it."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hatchet_client.engine import Engine, EngineError, RunFilter, RunStore

from tests.engine.traceparent import user_metadata


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
        "additional_metadata": run.additional_metadata,
        "priority": 2,
        "received_at": as_dict["received_at"],
        "status": "QUEUED",  # no worker registered wf
        "started_at": None,
        "finished_at": None,
        "error": None,
        "retry_count": 0,
    }
    assert user_metadata(as_dict["additional_metadata"]) == {"k": "v"}
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


def test_lookups_span_index_buckets(
    engine: Engine, stubs: Any, auth: Any, req: Any, bulk: Any, store: RunStore
) -> None:
    """More runs than one lookup bucket holds (16384): every lookup probes each bucket and the unindexed tail."""
    ids: list[str] = []
    for call in range(20):
        items = [req("wf", {}, {"call": str(call), "pos": str(i % 7)}) for i in range(1000)]
        ids += stubs.workflows.BulkTriggerWorkflow(bulk(items), metadata=auth).workflow_run_ids
    engine.index_now()
    tail = stubs.workflows.TriggerWorkflow(req("wf", {}, {"call": "20", "pos": "3"}), metadata=auth).workflow_run_id

    # first bucket, second bucket and the tail
    for run_id in (ids[0], ids[16383], ids[16384], ids[-1], tail):
        run = store.get_run(run_id)
        assert run is not None and run.run_id == run_id
    assert [r.run_id for r in store.list_runs(metadata={"call": "16"})] == ids[16000:17000]
    assert store.count(RunFilter(metadata=(("pos", "3"),))) == sum(1 for i in range(1000) if i % 7 == 3) * 20 + 1
    both = RunFilter(metadata=(("call", "0"), ("call", "19")), operator="OR")
    assert [r.run_id for r in store.select(both)] == ids[:1000] + ids[19000:]


def test_lookup_tables_from_the_first_schema_are_rebuilt(db_path: Path, req: Any, bulk: Any, as_auth: Any) -> None:
    with Engine(db_path, port=0) as eng:
        ids = _trigger_some(eng, req, bulk, as_auth)
        eng.index_now()
    conn = sqlite3.connect(db_path)
    conn.executescript(
        "DROP TABLE run_ids; DROP TABLE run_metadata;"
        "CREATE TABLE run_ids (run_id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE run_metadata (key TEXT NOT NULL, value TEXT NOT NULL, seq INTEGER NOT NULL,"
        " PRIMARY KEY (key, value, seq)) WITHOUT ROWID;"
        "PRAGMA user_version = 1;"
    )
    conn.close()
    with Engine(db_path, port=0) as eng:
        assert [r.run_id for r in eng.store.list_runs(metadata={"k": "v1"})] == [ids[1]]
        eng.index_now()
        assert [r.run_id for r in eng.store.list_runs(metadata={"k": "v1"})] == [ids[1]]
        assert eng.store.get_run(ids[2]) is not None


def _trigger_some(eng: Engine, req: Any, bulk: Any, as_auth: Any) -> list[str]:
    import grpc
    from hatchet_client._proto import workflows_pb2_grpc

    with grpc.insecure_channel(eng.address) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        items = [req("wf", {}, {"k": f"v{i}"}) for i in range(3)]
        return list(stub.BulkTriggerWorkflow(bulk(items), metadata=as_auth(eng.token())).workflow_run_ids)


def test_the_engine_indexes_runs_by_itself_when_idle(
    engine: Engine, stubs: Any, auth: Any, req: Any, bulk: Any
) -> None:
    stubs.workflows.BulkTriggerWorkflow(bulk([req(input={}, metadata={"k": str(i)}) for i in range(50)]), metadata=auth)
    conn = sqlite3.connect(engine.db_path)
    try:
        deadline = time.monotonic() + 10
        while conn.execute("SELECT indexed_upto FROM index_state").fetchone()[0] < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert conn.execute("SELECT indexed_upto FROM index_state").fetchone()[0] == 50
        assert conn.execute("SELECT count(*) FROM run_metadata WHERE key = 'k'").fetchone()[0] == 50
        assert conn.execute("SELECT count(*) FROM run_ids").fetchone()[0] == 50
    finally:
        conn.close()


def test_concurrent_calls_are_each_stored_whole_and_in_order(
    engine: Engine, stubs: Any, auth: Any, req: Any, bulk: Any
) -> None:
    def call(k: int) -> list[str]:
        items = [req(input={"call": k, "i": i}) for i in range(200)]
        return list(stubs.workflows.BulkTriggerWorkflow(bulk(items), metadata=auth).workflow_run_ids)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(40)))
    runs = list(engine.store.list_runs())
    assert len(runs) == 40 * 200
    position = {run.run_id: n for n, run in enumerate(runs)}
    for k, ids in enumerate(answers):
        first = position[ids[0]]
        assert [position[i] for i in ids] == list(range(first, first + 200))  # contiguous, in request order
        assert [runs[position[i]].input for i in ids] == [{"call": k, "i": i} for i in range(200)]
