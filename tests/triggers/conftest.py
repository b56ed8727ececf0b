"""One served engine and one official-SDK worker process (tests/engine/trigger_worker_app.py: `Tick`, `Declared`
with crons in code, `UserCreated` on `user:created`, ...) for the trigger tests, shared by the package: they
are the expensive part. Each test uses manifests of its own names, so tests do not see each other's triggers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hatchet_client.engine import Engine

from tests.engine.dispatch_helpers import run_sdk, sdk_env, sdk_worker

WORKER = Path(__file__).parents[1] / "engine" / "trigger_worker_app.py"
HEAD = "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {{name: {name}}}\n"


@pytest.fixture(scope="package")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with Engine(tmp_path_factory.mktemp("triggers") / "engine.db", port=0, worker_timeout=10) as eng:
        yield eng


@pytest.fixture(scope="package")
def worker(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    pytest.importorskip("hatchet_sdk")
    with sdk_worker(engine, WORKER, "w-triggers", log=tmp_path_factory.mktemp("logs") / "worker.log"):
        yield


def cli_env(engine: Engine, state: Path) -> dict[str, str]:
    """The CLI pointed at the served engine, with its own state dir (ledger)."""
    env = sdk_env(engine)
    env["HATCHET_MANIFEST_STATE_DIR"] = str(state)
    return env


def write(path: Path, name: str, body: str) -> Path:
    path.write_text(HEAD.format(name=name) + body)
    return path


def sdk_crons(engine: Engine) -> list[dict[str, Any]]:
    """Every cron of the engine, read through the official SDK's `hatchet.cron.list()`."""
    code = (
        "import json\nfrom hatchet_sdk import Hatchet\nh = Hatchet()\n"
        "rows = h.cron.list(limit=1000).rows or []\n"
        "print('RESULT ' + json.dumps({'rows': [{'id': r.metadata.id, 'workflow': r.workflow_name, 'name': r.name, "
        "'expression': r.cron, 'enabled': r.enabled, 'method': str(r.method.value if hasattr(r.method, 'value') "
        "else r.method), 'input': r.input, 'metadata': r.additional_metadata} for r in rows]}))\n"
    )
    return list(run_sdk(engine, code)["rows"])


def sdk_schedules(engine: Engine) -> list[dict[str, Any]]:
    """Every scheduled run the engine lists, read through the official SDK's `hatchet.scheduled.list()`."""
    code = (
        "import json\nfrom hatchet_sdk import Hatchet\nh = Hatchet()\n"
        "rows = h.scheduled.list(limit=1000).rows or []\n"
        "print('RESULT ' + json.dumps({'rows': [{'id': r.metadata.id, 'workflow': r.workflow_name, "
        "'trigger_at': r.trigger_at.isoformat(), 'metadata': r.additional_metadata, 'run_id': r.workflow_run_id} "
        "for r in rows]}))\n"
    )
    return list(run_sdk(engine, code)["rows"])


def json_out(stdout: str) -> dict[str, Any]:
    return dict(json.loads(stdout))
