"""Interop: the OFFICIAL hatchet-sdk (1.x) against an engine that knows its workflows.

Its bulk and single triggers get run ids back for names the engine does not know, and those runs are not stored
(Hatchet's default behaviour); its REST client (`hatchet.workflows.list`) parses the engine's workflow listing.
The SDK runs in a subprocess (see test_engine_official_sdk.py), which prints one RESULT line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hatchet_client.engine import Engine
from hatchet_client.engine.store import workflow_id

pytest.importorskip("hatchet_sdk")

CHILD = textwrap.dedent(
    """
    import json

    from hatchet_sdk import Hatchet
    from hatchet_sdk.clients.admin import TriggerWorkflowOptions, WorkflowRunTriggerConfig

    hatchet = Hatchet()
    admin = hatchet._client.admin

    configs = [
        WorkflowRunTriggerConfig(
            workflow_name=name,
            input=json.dumps({"i": i}),
            options=TriggerWorkflowOptions(additional_metadata={"i": str(i)}),
        )
        for i, name in enumerate(["BulkParent", "Missing", "BulkParent", "bulkparent"])
    ]
    refs = admin.run_workflows(configs)
    single = admin.run_workflow("Missing", json.dumps({"single": True}))
    listed = hatchet.workflows.list(workflow_name="bulk")
    page = hatchet.workflows.list(limit=1, offset=1)
    print("RESULT " + json.dumps({
        "bulk": [r.workflow_run_id for r in refs],
        "single": single.workflow_run_id,
        "listed": [
            {"id": w.metadata.id, "name": w.name, "tenant_id": w.tenant_id, "is_paused": w.is_paused}
            for w in listed.rows
        ],
        "listed_pagination": listed.pagination.to_dict(),
        "page": {"names": [w.name for w in page.rows], "pagination": page.pagination.to_dict()},
    }))
    """
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    db = tmp_path_factory.mktemp("official-workflows") / "engine.db"
    with Engine(db, port=0, workflows=["BulkParent", "BulkChild"]) as eng:
        yield eng


@pytest.fixture(scope="module")
def sdk_result(engine: Engine) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_CLIENT_")}
    env.update(HATCHET_CLIENT_TOKEN=engine.token(), HATCHET_CLIENT_TLS_STRATEGY="none")
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return dict(json.loads(line.removeprefix("RESULT ")))


def test_the_official_sdk_gets_ids_for_runs_that_are_dropped(engine: Engine, sdk_result: dict[str, Any]) -> None:
    bulk = sdk_result["bulk"]
    assert len(bulk) == len(set(bulk)) == 4 and all(uuid.UUID(i).version == 4 for i in bulk)
    assert uuid.UUID(sdk_result["single"]).version == 4
    runs = list(engine.store.list_runs())
    assert [(r.run_id, r.workflow_name, r.input) for r in runs] == [
        (bulk[0], "BulkParent", {"i": 0}),
        (bulk[2], "BulkParent", {"i": 2}),
    ]


def test_the_official_rest_client_parses_the_workflow_listing(engine: Engine, sdk_result: dict[str, Any]) -> None:
    assert sdk_result["listed"] == [
        {"id": workflow_id(engine.tenant_id, name), "name": name, "tenant_id": engine.tenant_id, "is_paused": False}
        for name in ("BulkChild", "BulkParent")
    ]
    assert sdk_result["listed_pagination"] == {"current_page": 1, "next_page": 1, "num_pages": 1}
    assert sdk_result["page"] == {
        "names": ["BulkParent"],
        "pagination": {"current_page": 2, "next_page": 2, "num_pages": 2},
    }
