"""Fixtures for the CI example's tests: a served engine, and a repository laid out by `init` with the shipped
manifests, a base commit on `origin/main` and a pull request's commit on top."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatchet_manifest.starter import write_starter
from tests.conftest import ROOT
from tests.net import free_port

# A manifest that reads what the workflow's allow lists allow: env("REGION") and secret("WAREHOUSE_PASSWORD").
WAREHOUSE = """\
apiVersion: hatchet-manifest/v1
kind: TriggerManifest
metadata:
  name: warehouse-load
runs:
  - workflow_name: WarehouseLoad
    key: "warehouse-load-{{ env('REGION') }}"
    input:
      region: "{{ env('REGION') }}"
      dsn: "postgresql://loader:{{ secret('WAREHOUSE_PASSWORD') }}@warehouse/db"
"""
PASSWORD = "s3cret-warehouse-pw"


@dataclass
class Served:
    token: str
    db: Path


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`hatchet-manifest engine serve` on free loopback ports: a remote Hatchet for the jobs."""
    tmp = tmp_path_factory.mktemp("engine")
    db = tmp / "engine.db"
    port, rest = free_port(), free_port()
    cli = [sys.executable, "-m", "hatchet_manifest", "engine"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_", "CI"))}
    with (tmp / "engine.log").open("wb") as log:
        proc = subprocess.Popen(
            [*cli, "serve", "--port", str(port), "--rest-port", str(rest), "--db", str(db)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", rest), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, (tmp / "engine.log").read_text()
                assert time.monotonic() < deadline, "the engine did not start"
                time.sleep(0.05)
        token = subprocess.run(
            [*cli, "token", "--db", str(db), "--port", str(port), "--rest-port", str(rest)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        yield Served(token.stdout.strip(), db)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """init's layout plus the shipped manifests and input schemas, committed as main (also `origin/main`), then a
    pull request's commit: two more BulkParent runs and the warehouse manifest."""
    repo = tmp_path / "repo"
    write_starter(repo)
    for p in (ROOT / "manifests").glob("*.yaml"):
        shutil.copy(p, repo / "manifests" / p.name)
    shutil.copytree(ROOT / "schemas" / "inputs", repo / "schemas" / "inputs")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    bulk = repo / "manifests" / "bulk-parent.yaml"
    bulk.write_text(bulk.read_text().replace("count: 20", "count: 22"))
    (repo / "manifests" / "warehouse.yaml").write_text(WAREHOUSE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more runs")
    return repo
