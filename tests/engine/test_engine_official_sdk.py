"""Interop: the OFFICIAL hatchet-sdk (1.x) triggers runs on the embedded engine and lists them through its REST API.

The official SDK runs in a subprocess: it starts background threads and event loops of its own, and only the wire
matters here. The child prints one JSON line (prefixed RESULT) with what the SDK saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from hatchet_client.engine import Engine

from tests.engine.traceparent import user_metadata

pytest.importorskip("hatchet_sdk")

CHILD = textwrap.dedent(
    """
    import json
    from datetime import datetime, timedelta, timezone

    from hatchet_sdk import Hatchet
    from hatchet_sdk.clients.admin import TriggerWorkflowOptions, WorkflowRunTriggerConfig
    from hatchet_sdk.clients.rest.models.v1_additional_metadata_operator import V1AdditionalMetadataOperator

    hatchet = Hatchet()
    admin = hatchet._client.admin

    single = admin.run_workflow(
        "ManualTriggerWorkflow",
        json.dumps({"test": "test"}),
        options=TriggerWorkflowOptions(additional_metadata={"hello": "moon"}),
    )
    configs = [
        WorkflowRunTriggerConfig(
            workflow_name="BulkParent",
            input=json.dumps({"i": i}),
            options=TriggerWorkflowOptions(additional_metadata={"batch": "b1", "i": str(i)}, priority=1 + i % 3),
        )
        for i in range(2500)  # more than one chunk of 1000
    ]
    refs = admin.run_workflows(configs)
    details = admin.get_details(single.workflow_run_id)

    listed = hatchet.runs.list(additional_metadata={"hello": "moon"})
    page = hatchet.runs.list(additional_metadata={"batch": "b1"}, limit=100, offset=100)
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    with hatchet.runs.client() as api:
        ids = hatchet.runs._wra(api).v1_workflow_run_external_ids_list(
            tenant=hatchet.tenant_id, since=since, additional_metadata=["batch:b1", "i:7"],
        )
        both = hatchet.runs._wra(api).v1_workflow_run_list(
            tenant=hatchet.tenant_id, since=since, only_tasks=False, additional_metadata=["batch:b1", "i:7"],
            additional_metadata_operator=V1AdditionalMetadataOperator.AND,
        )
    row = listed.rows[0]
    print("RESULT " + json.dumps({
        "single": single.workflow_run_id,
        "bulk": [r.workflow_run_id for r in refs],
        "details": {"status": details.status.value, "done": details.done, "input": details.input,
                    "additional_metadata": details.additional_metadata},
        "listed": [r.workflow_run_external_id for r in listed.rows],
        "row": {"status": row.status.value, "input": row.input, "additional_metadata": row.additional_metadata,
                "workflow_name": row.workflow_name, "tenant_id": row.tenant_id, "display_name": row.display_name},
        "page": {"ids": [r.workflow_run_external_id for r in page.rows], "num_pages": page.pagination.num_pages,
                 "current_page": page.pagination.current_page},
        "external_ids": [str(i) for i in ids],
        "and": [r.workflow_run_external_id for r in both.rows],
    }))
    """
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One engine for the module: the official SDK's session is run once and checked by each test."""
    with Engine(tmp_path_factory.mktemp("official") / "engine.db", port=0) as eng:
        yield eng


@pytest.fixture(scope="module")
def sdk_result(engine: Engine) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_CLIENT_")}
    env.update(HATCHET_CLIENT_TOKEN=engine.token(), HATCHET_CLIENT_TLS_STRATEGY="none")
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return dict(json.loads(line.removeprefix("RESULT ")))


def test_the_official_sdk_triggers_single_and_bulk_runs(engine: Engine, sdk_result: dict[str, Any]) -> None:
    runs = list(engine.store.list_runs())
    assert len(runs) == 2501
    single = runs[0]
    assert (single.run_id, single.workflow_name, single.input, user_metadata(single.additional_metadata)) == (
        sdk_result["single"],
        "ManualTriggerWorkflow",
        {"test": "test"},
        {"hello": "moon"},
    )
    # The bulk ids come back in input order across the SDK's three chunks.
    assert sdk_result["bulk"] == [r.run_id for r in runs[1:]]
    assert [(r.input["i"], user_metadata(r.additional_metadata), r.priority) for r in runs[1:]] == [
        (i, {"batch": "b1", "i": str(i)}, 1 + i % 3) for i in range(2500)
    ]


def test_the_official_sdk_reads_run_details(sdk_result: dict[str, Any]) -> None:
    details = dict(sdk_result["details"])
    assert user_metadata(details.pop("additional_metadata")) == {"hello": "moon"}
    assert details == {"status": "QUEUED", "done": False, "input": {"test": "test"}}


def test_the_official_rest_client_parses_the_listing(engine: Engine, sdk_result: dict[str, Any]) -> None:
    assert sdk_result["listed"] == [sdk_result["single"]]
    row = dict(sdk_result["row"])
    assert user_metadata(row.pop("additional_metadata")) == {"hello": "moon"}
    assert row == {
        "status": "QUEUED",
        "input": {"test": "test"},
        "workflow_name": "ManualTriggerWorkflow",
        "tenant_id": engine.tenant_id,
        "display_name": "ManualTriggerWorkflow",
    }
    newest_first = list(reversed(sdk_result["bulk"]))
    assert sdk_result["page"] == {"ids": newest_first[100:200], "num_pages": 25, "current_page": 2}
    assert sdk_result["external_ids"] == list(reversed(sdk_result["bulk"]))  # OR: every run of batch b1
    assert sdk_result["and"] == [sdk_result["bulk"][7]]
