"""examples/ci/ledger-roles.sql on a real PostgreSQL server: the plan role can run the plan job's `diff` (before
any apply and after one), and cannot write the ledger however it tries; the apply role applies and migrates."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import ROOT
from tests.examples.ci_jobs import Context, run_job
from tests.examples.conftest import PASSWORD, Served
from tests.examples.test_ci_jobs import engine_keys
from tests.pgserver import PgServer

SQL = ROOT / "examples" / "ci" / "ledger-roles.sql"


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


def psql(pg_server: PgServer, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(pg_server.bindir / "psql"), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_plan_role_reads_the_ledger_and_cannot_write_it(
    pg_server: PgServer, pg_url: str, repo: Path, served: Served
) -> None:
    for _ in range(2):  # as documented: running it again changes nothing
        done = psql(pg_server, pg_url, "-f", str(SQL))
        assert done.returncode == 0, done.stderr
    plan_url, apply_url = as_role(pg_url, "hatchet_plan"), as_role(pg_url, "hatchet_apply")
    engine = {"HATCHET_CLIENT_TLS_STRATEGY": "none"}
    plan_secrets = {"HATCHET_PLAN_TOKEN": served.token, "HATCHET_PLAN_LEDGER": plan_url}

    # Before any apply: no ledger tables yet, and the plan role can create none; every run is new.
    first = run_job("plan", repo, Context(plan_secrets), event="pull_request", extra_env=engine)
    assert first.rc == 0, first.log
    assert first.step("Plan").outputs == "changes=true\n"

    # The plan role cannot apply (its URL given to the apply job): nothing is sent, nothing recorded.
    fast = {"WAIT_TIMEOUT": "1s", "LOCK_WAIT": "5"}
    secrets = {"HATCHET_CLIENT_TOKEN": served.token, "HATCHET_MANIFEST_LEDGER": plan_url}
    refused = run_job("apply", repo, Context(secrets), event="push", extra_env=engine, overrides=fast)
    assert refused.rc == 1, refused.log
    assert "cannot execute CREATE TABLE in a read-only transaction" in refused.log
    assert engine_keys(served.db) == []

    # The apply role applies, and creates the tables in the schema hatchet_manifest (exit 6: no worker runs them).
    secrets = {
        "HATCHET_CLIENT_TOKEN": served.token,
        "HATCHET_MANIFEST_LEDGER": apply_url,
        "WAREHOUSE_PASSWORD": PASSWORD,
    }
    applied = run_job("apply", repo, Context(secrets), event="push", extra_env=engine, overrides=fast)
    assert applied.rc == 6, applied.log
    tables = psql(
        pg_server, pg_url, "-At", "-c", "SELECT tablename FROM pg_tables WHERE schemaname = 'hatchet_manifest'"
    )
    assert "ledger_runs" in tables.stdout.split()

    # Now the plan role reads the tables a migration made after the GRANT: nothing left to create.
    second = run_job("plan", repo, Context(plan_secrets), event="pull_request", extra_env=engine)
    assert second.rc == 0, second.log
    assert second.step("Plan").outputs == "changes=false\n"
    saved = json.loads((repo / "hatchet-plan" / "plan.json").read_text())
    assert saved["summary"]["create"] == 0 and saved["summary"]["unchanged"] == len(saved["runs"])

    # However it asks, the plan role writes nothing.
    for statement in (
        "DELETE FROM ledger_runs",
        "UPDATE ledger_runs SET state = 'failed'",
        "CREATE TABLE hatchet_manifest.x (i int)",
        "CREATE TABLE public.x (i int)",
    ):
        denied = psql(pg_server, plan_url, "-c", "SET default_transaction_read_only = off", "-c", statement)
        assert denied.returncode != 0 and "permission denied" in denied.stderr, (statement, denied.stderr)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh database; the roles are dropped with it (they are the cluster's, not the database's)."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)
    for role in ("hatchet_plan", "hatchet_apply"):
        psql(pg_server, pg_server.url(), "-c", f"DROP ROLE IF EXISTS {role}")
