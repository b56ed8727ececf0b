"""Scheduled runs declared in manifests: created once per key, moved (PATCH) while they have not fired, deleted
when declared no more, fired once at their time (the official worker completes the run), remembered by the
ledger once fired (Hatchet drops them from its listing), and refused in the past unless asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hatchet_client import Hatchet
from hatchet_client.engine import Engine

from tests.conftest import RunCli
from tests.engine.dispatch_helpers import wait_for
from tests.triggers.conftest import cli_env, json_out, sdk_schedules, write


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def ours(engine: Engine, manifest: str, official: bool = False) -> list[dict[str, object]]:
    """The manifest's schedules not fired yet, read by the official SDK (a process of its own: slow) or ours."""
    if official:
        rows = sdk_schedules(engine)
    else:
        with Hatchet(token=engine.token(), tls_strategy="none", environ={}) as client:
            rows = [
                {
                    "id": s.id,
                    "trigger_at": s.trigger_at.isoformat(),
                    "metadata": dict(s.additional_metadata),
                    "run_id": s.run_id,
                }
                for s in client.scheduled.list()
            ]
    return [
        s
        for s in rows
        if (s["metadata"] or {}).get("hatchet-manifest/trigger-of") == manifest and not s["run_id"]  # type: ignore[union-attr]
    ]


def test_a_schedule_is_created_once_moved_and_deleted(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path / "state")
    body = "schedules:\n  - {{workflow_name: Tick, key: later, trigger_at: '{t}', input: {{n: 1}}}}\n"
    path = write(tmp_path / "s.yaml", "schedmove", body.format(t=at(3600)))
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0 and "1 schedule created" in result.stdout, result.stdout + result.stderr
    [held] = ours(engine, "schedmove", official=True)
    again = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)  # once per key
    assert again.exit_code == 0 and "Triggers:" not in again.stdout, again.stdout
    assert [s["id"] for s in ours(engine, "schedmove")] == [held["id"]]

    moved = at(7200)
    write(path, "schedmove", body.format(t=moved))
    plan = run_cli("diff", str(path), "--engine", "remote", "-o", "json", env=env)
    [record] = json_out(plan.stdout)["runs"]
    assert (record["action"], record["changes"], record["trigger_at"]) == ("changed", ["trigger_at"], moved)
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert "1 schedule moved" in result.stdout, result.stdout + result.stderr
    [after] = ours(engine, "schedmove")
    assert after["id"] == held["id"]
    assert datetime.fromisoformat(str(after["trigger_at"])) == datetime.fromisoformat(moved.replace("Z", "+00:00"))

    write(path, "schedmove", "runs:\n  - {workflow_name: Tick, key: other}\n")
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert "1 schedule deleted" in result.stdout, result.stdout + result.stderr
    assert ours(engine, "schedmove") == []


def test_a_schedule_fires_once_at_its_time_and_is_remembered_after(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path / "state")
    path = write(
        tmp_path / "s.yaml", "schedfire", f"schedules:\n  - {{workflow_name: Tick, key: soon, trigger_at: '{at(8)}'}}\n"
    )
    assert run_cli("apply", str(path), "--engine", "remote", "-y", env=env).exit_code == 0

    def fired() -> list[object]:
        runs = list(engine.store.list_runs("Tick", {"hatchet-manifest/key": "schedule:soon"}))
        return [r for r in runs if r.status == "COMPLETED"]

    assert len(wait_for("the scheduled run to complete", fired, timeout=40)) == 1
    # fired: its time is past now, and re-applying neither refuses it nor makes it again
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    plan = run_cli("diff", str(path), "--engine", "remote", "--detailed-exitcode", env=env)
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert len(fired()) == 1


def test_a_time_in_the_past_is_refused_with_its_line_unless_allowed(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path / "state")
    body = "schedules:\n  - workflow_name: Tick\n    key: past\n    trigger_at: '2020-01-01T00:00:00Z'\n"
    path = write(tmp_path / "p.yaml", "schedpast", body)
    warned = run_cli("diff", str(path), "--engine", "remote", env=env)
    assert f"warning: {path}:5: schedules[0]: trigger_at 2020-01-01T00:00:00Z is in the past: apply refuses it" in (
        warned.stderr
    )
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 1
    assert f"{path}:5: schedules[0]: trigger_at: trigger_at 2020-01-01T00:00:00Z is in the past" in result.stderr
    assert "Traceback" not in result.stderr and ours(engine, "schedpast") == []
    write(path, "schedpast", body + "    allow_past: true\n")
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0 and "1 schedule created" in result.stdout, result.stdout + result.stderr
    wait_for(
        "the past schedule to fire",
        lambda: list(engine.store.list_runs("Tick", {"hatchet-manifest/key": "schedule:past"})),
        timeout=30,
    )
