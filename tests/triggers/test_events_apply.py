"""Events declared in manifests are pushed once per key (BulkPush, at most 1,000 a call) and start the workflows
whose `on_events` match, run by the official worker; re-applying pushes nothing; a kill -9 between a push and
its record leaves the keys pending, and the next apply finds the events in the engine by their stamps instead of
pushing them again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hatchet_client import Hatchet
from hatchet_client.engine import Engine

from tests.conftest import RunCli
from tests.engine.dispatch_helpers import wait_for
from tests.triggers.conftest import cli_env, json_out, write

EVENTS = """\
events:
  - event_key: order:refunded
    for_each: "{{ range(N) }}"
    key: "user-{{ item }}"
    payload: {id: "{{ item }}", note: "from git"}
    additional_metadata: {batch: b1}
"""


def events_of(engine: Engine, manifest: str) -> list[object]:
    """The engine's events of a manifest, as its REST event listing answers our client."""
    with Hatchet(token=engine.token(), tls_strategy="none", environ={}) as client:
        return list(client.event.list(additional_metadata={"hatchet-manifest/trigger-of": manifest}))


def runs_of(engine: Engine, manifest: str, workflow: str) -> list[object]:
    return list(engine.store.list_runs(workflow, {"hatchet-manifest/trigger-of": manifest}))


def test_events_are_pushed_once_and_start_their_workflows(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path / "state")
    path = write(tmp_path / "e.yaml", "evonce", EVENTS.replace("N", "1001"))  # two BulkPush calls
    plan = run_cli("diff", str(path), "--engine", "remote", "-o", "json", env=env)
    records = json_out(plan.stdout)["runs"]
    assert len(records) == 1001 and {r["action"] for r in records} == {"create"}
    assert records[0]["event_key"] == "order:refunded" and records[0]["payload"] == {"id": 0, "note": "from git"}
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0 and "1001 event pushed" in result.stdout, result.stdout + result.stderr
    assert len(events_of(engine, "evonce")) == 1001
    done = wait_for(
        "the runs the events started to complete",
        lambda: (rs := runs_of(engine, "evonce", "OrderPaid")) and all(r.status == "COMPLETED" for r in rs) and rs,
        timeout=120,
    )
    assert len(done) == 1001  # OrderPaid's on_events: order:paid, order:refunded; no other workflow matches
    assert runs_of(engine, "evonce", "UserAny") == []
    assert {r.input["note"] for r in done} == {"from git"}
    again = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert again.exit_code == 0 and "Triggers:" not in again.stdout, again.stdout
    assert len(events_of(engine, "evonce")) == 1001


def test_a_kill_between_push_and_record_never_pushes_twice(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path / "state")
    path = write(tmp_path / "e.yaml", "evkill", EVENTS.replace("N", "20"))
    proc = subprocess.run(
        [sys.executable, "-m", "hatchet_manifest", "apply", str(path), "--engine", "remote", "-y"],
        env={**env, "HATCHET_MANIFEST_CRASH_AT": "events-pushed"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr  # killed: the pushes are in the engine, the ledger says pending
    assert len(events_of(engine, "evkill")) == 20
    plan = run_cli("diff", str(path), "--engine", "remote", "--detailed-exitcode", env=env)
    assert plan.exit_code == 0, plan.stdout + plan.stderr  # found in the engine by their stamps
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "reconciled: 20 run(s) of unknown fate were found in the engine" in result.stderr
    assert len(events_of(engine, "evkill")) == 20  # none pushed twice
    assert "Triggers:" not in result.stdout
