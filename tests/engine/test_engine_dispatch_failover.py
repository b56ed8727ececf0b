"""A worker killed mid-task: its task runs again on another worker. An engine restarted mid-run: the running task's
outcome, reported once the worker reconnects, is recorded; nothing is lost or run twice."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from hatchet_client._proto import workflows_pb2_grpc
from hatchet_client._proto.v1 import trigger_pb2
from hatchet_client.engine import Engine

from tests.engine.dispatch_helpers import WorkerProcess, settled, wait_for, wait_listening

pytest.importorskip("hatchet_sdk")


def trigger(engine: Engine, name: str, input_json: str) -> str:
    with grpc.insecure_channel(engine.address) as channel:
        stub = workflows_pb2_grpc.WorkflowServiceStub(channel)
        response = stub.TriggerWorkflow(
            trigger_pb2.TriggerWorkflowRequest(name=name, input=input_json),
            metadata=(("authorization", f"bearer {engine.token()}"),),
            timeout=10,
        )
    return str(response.workflow_run_id)


def test_a_killed_workers_task_runs_again_on_another_worker(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with Engine(tmp_path / "engine.db", port=0, worker_timeout=6) as engine:
        first = WorkerProcess(engine, "w-first", 1, markers, tmp_path / "first.log")
        second = None
        try:
            wait_listening(engine, "w-first")
            run_id = trigger(engine, "Sleeper", '{"seconds": 1, "hold_on": "w-first"}')
            [started] = wait_for("the task to start", lambda: list(markers.glob(f"sleeper-{run_id}-0.started")), 30)
            assert started.read_text().startswith("w-first ")
            second = WorkerProcess(engine, "w-second", 1, markers, tmp_path / "second.log")
            wait_listening(engine, "w-second")
            first.kill()  # mid-task: its heartbeats stop, the engine declares it dead and queues the task again
            assert wait_for("the run to complete", lambda: settled(engine, run_id), 60) == "COMPLETED"
            [done] = markers.glob(f"sleeper-{run_id}-0.done")
            assert done.read_text().startswith("w-second ")
            run = engine.store.get_run(run_id)
            assert run is not None and run.retry_count == 0  # a lost worker does not use up the task's retries
        finally:
            first.kill()
            if second is not None:
                second.kill()


def test_an_engine_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    db = tmp_path / "engine.db"
    engine = Engine(db, port=0, worker_timeout=20).start()
    port, rest_port = engine.port, engine.rest_port
    worker = WorkerProcess(engine, "w-restart", 2, markers, tmp_path / "worker.log")
    try:
        wait_listening(engine, "w-restart")
        running = trigger(engine, "Sleeper", '{"seconds": 4}')
        wait_for("the task to start", lambda: list(markers.glob(f"sleeper-{running}-0.started")), 30)
        engine.stop()
        engine = Engine(db, port=port, rest_port=rest_port, worker_timeout=20).start()
        queued = trigger(engine, "Echo", '{"n": 5}')  # triggered while the worker reconnects
        assert wait_for("the running task's outcome", lambda: settled(engine, running), 90) == "COMPLETED"
        assert wait_for("the new run", lambda: settled(engine, queued), 60) == "COMPLETED"
        assert len(list(markers.glob(f"sleeper-{running}-*.started"))) == 1  # not run again
        run = engine.store.get_run(running)
        assert run is not None and run.started_at is not None and run.finished_at is not None
    finally:
        worker.kill()
        engine.stop()
