"""The process that runs a pull request's templates holds only the variables templates may read."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatchet_manifest.manifest.access import Access, worker_environment
from hatchet_manifest.manifest.sandbox import WORKER_MODULE, BoundedProcess

ENVIRON = {
    "PATH": "/usr/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "HATCHET_CLIENT_TOKEN": "ey.the-api-token",
    "HATCHET_MANIFEST_LEDGER": "postgresql://u:pw@db/l",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "GITHUB_TOKEN": "gh-token",
    "REGION": "eu",
    "BACKFILL_START": "2026-01-01",
    "DEPLOY_KEY": "allowed-secret",
}


def test_only_allowed_and_interpreter_variables_pass() -> None:
    access = Access(env=("REGION", "BACKFILL_*"), secrets=("DEPLOY_KEY",))
    assert worker_environment(access, ENVIRON) == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "REGION": "eu",
        "BACKFILL_START": "2026-01-01",
        "DEPLOY_KEY": "allowed-secret",
    }


def test_a_started_worker_does_not_hold_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRON.items():
        if name not in ("PATH", "LANG"):
            monkeypatch.setenv(name, value)
    process = BoundedProcess(WORKER_MODULE, None, Access(env=("REGION",)))
    try:
        environ = Path(f"/proc/{process.proc.pid}/environ").read_bytes().split(b"\0")
    finally:
        process.stop()
    names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
    assert "REGION" in names
    assert not names & {"HATCHET_CLIENT_TOKEN", "HATCHET_MANIFEST_LEDGER", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"}
