"""A secret in a cron's input or an event's payload is real only in what the engine receives: every render,
plan, message and the ledger show it masked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hatchet_client import Hatchet
from hatchet_client.engine import Engine

from tests.conftest import RunCli
from tests.triggers.conftest import cli_env, write

VALUE = "s3cr3t-trigger-value-42"
BODY = """\
crons:
  - workflow_name: Tick
    name: with-secret
    expression: '@daily'
    input: {token: "{{ secret('HM_TRIGGER_TOKEN') }}"}
events:
  - event_key: order:paid
    key: with-secret
    payload: {id: 1, token: "{{ secret('HM_TRIGGER_TOKEN') }}"}
"""


def test_secrets_reach_the_engine_and_nothing_else(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    env = {**cli_env(engine, tmp_path / "state"), "HM_TRIGGER_TOKEN": VALUE}
    path = write(tmp_path / "s.yaml", "trigsecret", BODY)
    allow = ("--allow-secret", "HM_TRIGGER_TOKEN")
    outputs = []
    for args in (("render", str(path), "-o", "json"), ("diff", str(path), "--engine", "remote", "-o", "json")):
        result = run_cli(*args, *allow, env=env)
        assert result.exit_code == 0, result.stderr
        assert '"token": "***"' in result.stdout or '"token":"***"' in result.stdout
        outputs.append(result.stdout + result.stderr)
    applied = run_cli("apply", str(path), "--engine", "remote", "-y", *allow, env=env)
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    outputs.append(applied.stdout + applied.stderr)
    assert all(VALUE not in text for text in outputs)
    with Hatchet(token=engine.token(), tls_strategy="none", environ={}) as client:
        [cron] = [c for c in client.cron.list() if c.name == "with-secret"]
        assert cron.input == {"token": VALUE}  # the engine has the real value
        [event] = client.event.list(additional_metadata={"hatchet-manifest/trigger-of": "trigsecret"})
        assert event.payload == {"id": 1, "token": VALUE}
    for db in (tmp_path / "state").rglob("*.db"):
        with sqlite3.connect(db) as conn:
            dump = "\n".join(conn.iterdump())
        assert VALUE not in dump, db
