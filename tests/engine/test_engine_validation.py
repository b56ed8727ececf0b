"""The engine validates like Hatchet: whole calls before writing, with Hatchet's status codes."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from hatchet_client.engine import RunStore


def _code_and_details(call: Any, request: Any, auth: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call(request, metadata=auth)
    return err.value.code(), err.value.details()


BAD_ITEMS = [
    pytest.param({"input": "{"}, "input is not valid JSON", id="truncated-input"),
    pytest.param({"input": "{'a': 1}"}, "input is not valid JSON", id="single-quotes"),
    pytest.param({"input": '{"a": NaN}'}, "input is not valid JSON", id="nan"),
    pytest.param({"input": '{"a": 1} x'}, "input is not valid JSON", id="trailing-garbage"),
    pytest.param({"input": "[1, 2]"}, "input is not a JSON object", id="input-array"),
    pytest.param({"input": "null"}, "input is not a JSON object", id="input-null"),
    pytest.param({"input": '{"a": "x\\u0000y"}'}, "\\u0000", id="nul-in-input-value"),
    pytest.param({"input": '{"a\\u0000": 1}'}, "\\u0000", id="nul-in-input-key"),
    pytest.param({"input": '{"a": ["\\u0000"]}'}, "\\u0000", id="nul-in-nested-list"),
    pytest.param({"input": '{"a": "\\ud800"}'}, "unpaired surrogate", id="lone-surrogate"),
    pytest.param(
        {"input": "{}", "additional_metadata": "{"}, "additional_metadata is not valid JSON", id="bad-metadata"
    ),
    pytest.param({"input": "{}", "additional_metadata": '{"k": "\\u0000"}'}, "\\u0000", id="nul-in-metadata"),
    pytest.param({"input": "{}", "priority": 0}, "priority must be between 1 and 3, got 0", id="priority-0"),
    pytest.param({"input": "{}", "priority": 4}, "priority must be between 1 and 3, got 4", id="priority-4"),
    pytest.param({"input": "{}", "priority": -1}, "priority must be between 1 and 3, got -1", id="priority-negative"),
    pytest.param(
        {"input": "{}", "desired_worker_id": "worker-1"}, "desired_worker_id 'worker-1' is not a UUID", id="worker-id"
    ),
    pytest.param({"input": "{}", "parent_id": "p"}, "parent_id 'p' is not a UUID", id="parent-id"),
    pytest.param(
        {"input": "{}", "parent_task_run_external_id": "x"},
        "parent_task_run_external_id 'x' is not a UUID",
        id="parent-task",
    ),
    pytest.param({"name": "", "input": "{}"}, "name is empty", id="empty-name"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_ITEMS)
def test_an_invalid_single_trigger_is_refused(
    stubs: Any, auth: Any, req: Any, store: RunStore, fields: dict[str, Any], message: str
) -> None:
    code, details = _code_and_details(stubs.workflows.TriggerWorkflow, req(**{"name": "wf", **fields}), auth)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    assert store.count() == 0


@pytest.mark.parametrize(("fields", "message"), BAD_ITEMS)
def test_one_invalid_item_refuses_the_whole_bulk_call(
    stubs: Any, auth: Any, req: Any, bulk: Any, store: RunStore, fields: dict[str, Any], message: str
) -> None:
    items = [req(input={"i": i}) for i in range(10)]
    items[7] = req(**{"name": "wf", **fields})
    code, details = _code_and_details(stubs.workflows.BulkTriggerWorkflow, bulk(items), auth)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("workflows[7]: ")
    assert message in details
    assert store.count() == 0


def test_strings_that_merely_look_like_escapes_are_accepted(stubs: Any, auth: Any, req: Any, store: RunStore) -> None:
    # An escaped backslash followed by "u0000" is the text `\u0000`, not a NUL; a surrogate pair is one character.
    stubs.workflows.TriggerWorkflow(req(input='{"path": "C:\\\\u0000", "emoji": "\\ud83d\\ude00"}'), metadata=auth)
    [run] = store.list_runs()
    assert run.input == {"path": "C:\\u0000", "emoji": "😀"}


@pytest.mark.parametrize("priority", [1, 2, 3])
def test_priorities_1_to_3_are_accepted(stubs: Any, auth: Any, req: Any, store: RunStore, priority: int) -> None:
    stubs.workflows.TriggerWorkflow(req(input="{}", priority=priority), metadata=auth)
    assert [r.priority for r in store.list_runs()] == [priority]


def test_uuid_fields_that_are_uuids_are_accepted(stubs: Any, auth: Any, req: Any, store: RunStore) -> None:
    ids = {f: str(uuid.uuid4()) for f in ("parent_id", "parent_task_run_external_id", "desired_worker_id")}
    stubs.workflows.TriggerWorkflow(req(input="{}", child_index=0, child_key="k", **ids), metadata=auth)
    assert store.count() == 1


def test_more_than_1000_runs_in_one_bulk_call_are_refused(
    stubs: Any, auth: Any, req: Any, bulk: Any, store: RunStore
) -> None:
    code, details = _code_and_details(stubs.workflows.BulkTriggerWorkflow, bulk([req(input="{}")] * 1001), auth)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "1001" in details and "1000" in details
    assert store.count() == 0


def test_an_empty_bulk_call_is_refused(stubs: Any, auth: Any, bulk: Any) -> None:
    code, _ = _code_and_details(stubs.workflows.BulkTriggerWorkflow, bulk([]), auth)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_message_over_4_mib_is_resource_exhausted(
    stubs: Any, auth: Any, req: Any, bulk: Any, store: RunStore
) -> None:
    big = "x" * (1024 * 1024)
    items = [req(input={"pad": big}) for _ in range(4)]  # a little over 4 MiB in all
    assert bulk(items).ByteSize() > 4 * 1024 * 1024
    code, _ = _code_and_details(stubs.workflows.BulkTriggerWorkflow, bulk(items), auth)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert store.count() == 0
    # Just under the limit is fine.
    under = [req(input={"pad": big}) for _ in range(3)]
    assert len(stubs.workflows.BulkTriggerWorkflow(bulk(under), metadata=auth).workflow_run_ids) == 3
