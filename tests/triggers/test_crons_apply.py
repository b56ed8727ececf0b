"""Crons declared in manifests are desired state: applied, changed, paused, removed, and checked after each step
through the official SDK (`hatchet.cron.list()`), with the crons declared in code (`Declared`) never touched; a
six-field cron firing every second starts runs that the official worker completes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hatchet_client import Hatchet
from hatchet_client.engine import Engine

from tests.conftest import RunCli
from tests.engine.dispatch_helpers import wait_for
from tests.triggers.conftest import cli_env, json_out, sdk_crons, write

CRONS = """\
crons:
  - workflow_name: Tick
    name: "tick-{{ item }}"
    for_each: [a, b, c]
    expression: "0 {{ {'a': 3, 'b': 4, 'c': 5}[item] }} * * *"
    input: {slot: "{{ item }}"}
    additional_metadata: {team: data}
"""


def crons(engine: Engine, official: bool = False) -> list[dict[str, Any]]:
    """The engine's crons, read by the official SDK (a process of its own: slow) or by our client."""
    if official:
        return sdk_crons(engine)
    with Hatchet(token=engine.token(), tls_strategy="none", environ={}) as client:
        return [
            {
                "id": c.id,
                "workflow": c.workflow_name,
                "name": c.name,
                "expression": c.expression,
                "enabled": c.enabled,
                "method": c.method,
                "input": dict(c.input),
                "metadata": dict(c.additional_metadata),
            }
            for c in client.cron.list()
        ]


def ours(engine: Engine, manifest: str, official: bool = False) -> dict[str, dict[str, Any]]:
    return {
        c["name"]: c
        for c in crons(engine, official)
        if (c["metadata"] or {}).get("hatchet-manifest/trigger-of") == manifest
    }


def declared(engine: Engine, official: bool = False) -> list[tuple[str, str]]:
    return sorted((c["expression"], c["method"]) for c in crons(engine, official) if c["workflow"] == "Declared")


def test_crons_are_created_replaced_paused_and_deleted_and_code_crons_left_alone(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path / "state")
    path = write(tmp_path / "crons.yaml", "cronlife", CRONS)
    code_crons = declared(engine, official=True)
    assert len(code_crons) == 2 and {m for _, m in code_crons} == {"DEFAULT"}

    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0, result.stderr
    assert "Triggers: 3 cron created." in result.stdout
    held = ours(engine, "cronlife", official=True)
    assert {n: (c["expression"], c["enabled"], c["input"]) for n, c in held.items()} == {
        "tick-a": ("0 3 * * *", True, {"slot": "a"}),
        "tick-b": ("0 4 * * *", True, {"slot": "b"}),
        "tick-c": ("0 5 * * *", True, {"slot": "c"}),
    }
    assert all(c["method"] == "API" and c["metadata"]["team"] == "data" for c in held.values())

    # nothing changed: a no-op plan, exit 0 with --detailed-exitcode
    again = run_cli("diff", str(path), "--engine", "remote", "--detailed-exitcode", env=env)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert "Plan: 0 to create, 0 changed, 3 unchanged, 0 removed, 0 unknown." in again.stdout
    assert "unmanaged cron" not in again.stderr  # Declared is another workflow than the manifests' crons

    # a: new expression (replaced), b: paused, c: removed, d: new
    write(
        path,
        "cronlife",
        CRONS.replace("for_each: [a, b, c]", "for_each: [a, b]")
        .replace("'a': 3", "'a': 6")
        .replace(
            "additional_metadata: {team: data}", "additional_metadata: {team: data}\n    enabled: \"{{ item != 'b' }}\""
        )
        + "  - workflow_name: Tick\n    name: tick-d\n    expression: '@hourly'\n",
    )
    plan = run_cli("diff", str(path), "--engine", "remote", "-o", "json", "--detailed-exitcode", env=env)
    assert plan.exit_code == 2, plan.stderr
    records = {r["key"]: r for r in json_out(plan.stdout)["runs"]}
    assert {k: (r["action"], r.get("changes")) for k, r in records.items()} == {
        "cron:tick-a": ("changed", ["expression"]),
        "cron:tick-b": ("changed", ["enabled"]),
        "cron:tick-c": ("removed", None),
        "cron:tick-d": ("create", None),
    }
    assert len(records["cron:tick-a"]["next"]) == 3 and records["cron:tick-a"]["next"][0].endswith("T06:00:00Z")
    assert "next" not in records["cron:tick-b"]  # paused: it does not fire
    old_a = held["tick-a"]["id"]

    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0, result.stderr
    assert "1 cron created, 1 cron deleted, 1 cron paused, 1 cron replaced" in result.stdout
    held = ours(engine, "cronlife", official=True)
    assert {n: (c["expression"], c["enabled"]) for n, c in held.items()} == {
        "tick-a": ("0 6 * * *", True),
        "tick-b": ("0 4 * * *", False),
        "tick-d": ("@hourly", True),
    }
    assert held["tick-a"]["id"] != old_a
    assert declared(engine, official=True) == code_crons  # the crons declared in code are untouched

    # resumed in place (same id), and the plan is empty again
    paused_id = held["tick-b"]["id"]
    write(
        path,
        "cronlife",
        CRONS.replace("for_each: [a, b, c]", "for_each: [a, b]").replace("'a': 3", "'a': 6")
        + "  - workflow_name: Tick\n    name: tick-d\n    expression: '@hourly'\n",
    )
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0 and "1 cron resumed" in result.stdout, result.stdout + result.stderr
    assert ours(engine, "cronlife")["tick-b"] == {**held["tick-b"], "enabled": True, "id": paused_id}
    final = run_cli("diff", str(path), "--engine", "remote", "--detailed-exitcode", env=env)
    assert final.exit_code == 0, final.stdout


def test_a_cron_deleted_by_hand_is_created_again_and_a_duplicate_is_removed(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path / "state")
    path = write(
        tmp_path / "c.yaml", "crondrift", "crons:\n  - {workflow_name: Tick, name: drift, expression: '0 1 * * *'}\n"
    )
    assert run_cli("apply", str(path), "--engine", "remote", "-y", env=env).exit_code == 0
    [cron] = ours(engine, "crondrift").values()
    client = Hatchet(token=engine.token(), tls_strategy="none", environ={})  # an operator's hand
    client.cron.delete(cron["id"])
    plan = run_cli("diff", str(path), "--engine", "remote", env=env)
    assert "+ cron:drift" in plan.stdout, plan.stdout
    assert run_cli("apply", str(path), "--engine", "remote", "-y", env=env).exit_code == 0
    [again] = ours(engine, "crondrift").values()
    # a second cron under the same key (as a crash between a create and its record could leave one)
    client.cron.create("Tick", "drift", "0 2 * * *", {}, dict(again["metadata"]))
    assert len([c for c in crons(engine) if c["name"] == "drift"]) == 2
    plan = run_cli("diff", str(path), "--engine", "remote", "-o", "json", env=env)
    [record] = json_out(plan.stdout)["runs"]
    assert record["action"] == "changed" and record["changes"] == ["duplicates"]
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert "1 duplicate cron deleted" in result.stdout, result.stdout + result.stderr
    assert [(c["expression"], c["id"]) for c in ours(engine, "crondrift").values()] == [("0 1 * * *", again["id"])]


def test_a_six_field_cron_fires_every_second_and_the_worker_completes_its_runs(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path / "state")
    body = "crons:\n  - {workflow_name: Tick, name: every-second, expression: '* * * * * *', input: {n: 1}}\n"
    path = write(tmp_path / "s.yaml", "cronfire", body)
    assert run_cli("apply", str(path), "--engine", "remote", "-y", env=env).exit_code == 0
    started = time.monotonic()

    def completed() -> list[Any]:
        runs = [
            r
            for r in engine.store.list_runs()
            if (r.additional_metadata or {}).get("hatchet__cron_name") == "every-second"
            and (r.additional_metadata or {}).get("hatchet-manifest/trigger-of") == "cronfire"
        ]
        done = [r for r in runs if r.status == "COMPLETED"]
        return done if len(done) >= 2 else []

    done = wait_for("two runs of the cron to complete", completed, timeout=30)
    assert time.monotonic() - started < 30
    assert all(r.additional_metadata["hatchet__cron_expression"] == "* * * * * *" for r in done)
    # status: the cron is not one of the manifest's runs (nothing "not found"), and its runs are shown apart
    status = run_cli("status", str(path), "--engine", "remote", "-o", "json", env=env)
    assert status.exit_code == 0, status.stdout + status.stderr
    doc = json_out(status.stdout)
    assert doc["total"]["recorded"] == 0 and doc["total"]["not_found"] == 0, doc["total"]
    [started] = doc["started_by_triggers"]
    assert (started["key"], started["kind"]) == ("cron:every-second", "cron")
    assert started["by_status"].get("COMPLETED", 0) >= 2
    text = run_cli("status", str(path), "--engine", "remote", env=env)
    assert "runs started by crons, schedules and events" in text.stdout and "cron:every-second" in text.stdout
    # declared no more: deleted, and it fires no more
    write(path, "cronfire", "crons: []\nruns:\n  - {workflow_name: Tick, key: one}\n")
    result = run_cli("apply", str(path), "--engine", "remote", "-y", env=env)
    assert result.exit_code == 0 and "1 cron deleted" in result.stdout, result.stdout + result.stderr
    assert ours(engine, "cronfire") == {}
