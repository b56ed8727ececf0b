"""Reading `v1.AdminService/GetRunDetails` answers into our own RunDetails values."""

from __future__ import annotations

import json
from typing import Any

from hatchet_client._proto.v1 import admin_pb2
from hatchet_client.runs import RunDetails, TaskDetails


def json_or_text(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def run_details(run_id: str, response: Any) -> RunDetails:
    status_name = admin_pb2.RunStatus.Name
    tasks = {
        name: TaskDetails(
            readable_id=task.readable_id or name,
            task_run_id=task.external_id,
            status=status_name(task.status),
            error=task.error if task.HasField("error") else None,
            output=json_or_text(task.output) if task.HasField("output") else None,
        )
        for name, task in response.task_runs.items()
    }
    return RunDetails(
        run_id=run_id,
        status=status_name(response.status),
        done=response.done,
        input=json_or_text(response.input),
        additional_metadata=json_or_text(response.additional_metadata),
        tasks=tasks,
    )
