"""The hand-written wire encoder: byte-equal to the generated messages, and validation before sending."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hatchet_client import RunValidationError
from hatchet_client._proto import workflows_pb2
from hatchet_client._proto.v1 import trigger_pb2
from hatchet_client.encode import RunEncoder, varint

MAX = 4 * 1024 * 1024
WORKER = "0f8a5bd6-59c4-4f7a-9b55-57b4a4a5bd31"


def reference(run: dict[str, Any], namespace: str = "") -> trigger_pb2.TriggerWorkflowRequest:
    """The same run built with the generated messages, by the wire contract's rules."""
    options = run.get("options") or {}
    ns = options.get("namespace", namespace)
    if ns and not ns.endswith("_"):
        ns += "_"
    ns = ns.lower()
    name = run["workflow_name"]
    msg = trigger_pb2.TriggerWorkflowRequest(
        name=name if not ns or name.startswith(ns) else ns + name,
        input=json.dumps(run["input"], separators=(",", ":"), ensure_ascii=False),
    )
    metadata = options.get("additional_metadata")
    if metadata:
        msg.additional_metadata = json.dumps(
            {
                k: ("true" if v else "false") if isinstance(v, bool) else (repr(v) if isinstance(v, float) else str(v))
                for k, v in metadata.items()
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
    if "desired_worker_id" in options:
        msg.desired_worker_id = options["desired_worker_id"]
    if "priority" in options:
        msg.priority = options["priority"]
    for key, label in (options.get("desired_worker_labels") or {}).items():
        entry = msg.desired_worker_labels[key]
        value = label.get("value")
        if isinstance(value, str):
            entry.str_value = value
        elif isinstance(value, int):
            entry.int_value = value
        if "required" in label:
            entry.required = label["required"]
        if "comparator" in label:
            entry.comparator = label["comparator"]  # protobuf takes the enum value name
        if "weight" in label:
            entry.weight = label["weight"]
    return msg


RUNS: list[dict[str, Any]] = [
    {"workflow_name": "ManualTriggerWorkflow", "input": {"test": "test"}},
    {"workflow_name": "Docs", "input": {"n": 1}, "options": {"additional_metadata": {"hello": "moon", "é": "ü"}}},
    {"workflow_name": "Empty", "input": {"n": 1}, "options": {"additional_metadata": {}}},
    {"workflow_name": "NoOptions", "input": {"n": 1}, "options": {}},
    {"workflow_name": "W", "input": {}},
    {
        "workflow_name": "BulkParent",
        "input": {"n": 3, "nested": {"list": [1, 2.5, None, True, "x"]}, "unicode": "héllo ✓ 😀"},
        "options": {"additional_metadata": {"bulk-trigger": 3, "hello-{i}": "earth-{i}", "ok": True, "f": 0.1}},
    },
    {
        "workflow_name": "Prio",
        "input": {"big": "x" * 20000},  # lengths needing 3-byte varints
        "options": {"priority": 3, "desired_worker_id": WORKER, "additional_metadata": {}},
    },
    {
        "workflow_name": "Labels",
        "input": {"a": 1},
        "options": {
            "desired_worker_labels": {
                "zone": {"value": "eu", "required": True, "comparator": "EQUAL"},
                "gpu": {"value": 2, "comparator": "GREATER_THAN_OR_EQUAL", "weight": -5},
                "any": {},
                "off": {"required": False, "weight": 0, "value": 0},
            },
            "namespace": "Team",
        },
    },
]


@pytest.mark.parametrize("run", RUNS, ids=lambda r: r["workflow_name"])
@pytest.mark.parametrize("namespace", ["", "bench_"])
def test_each_run_encodes_exactly_as_the_generated_message(run: dict[str, Any], namespace: str) -> None:
    encoder = RunEncoder(namespace, MAX)
    expected = reference(run, namespace).SerializeToString(deterministic=True)
    assert encoder.encode_request(run, 0) == expected
    assert encoder.encode_request(run, 0) == expected  # again, now that the name is cached (the fast path)
    assert trigger_pb2.TriggerWorkflowRequest.FromString(expected) == reference(run, namespace)


def test_a_bulk_request_is_the_concatenation_of_framed_items() -> None:
    encoder = RunEncoder("", MAX)
    payload = b"".join(encoder.encode_item(run, i) for i, run in enumerate(RUNS))
    expected = workflows_pb2.BulkTriggerWorkflowRequest(workflows=[reference(r) for r in RUNS])
    assert payload == expected.SerializeToString(deterministic=True)
    assert len(payload) == expected.ByteSize()


def test_varint_matches_protobuf() -> None:
    for n in [1, 127, 128, 300, 16383, 16384, 2**21 + 7]:
        encoded = trigger_pb2.TriggerWorkflowRequest(input="x" * n).SerializeToString()
        assert encoded[1 : 1 + len(varint(n))] == varint(n)
        assert len(encoded) == 1 + len(varint(n)) + n
    assert varint(0) == b"\x00"
    assert varint(2**28 + 5) == bytes([0x85, 0x80, 0x80, 0x80, 0x01])


def test_the_size_limit_counts_the_framing() -> None:
    run = {"workflow_name": "W", "input": {"s": "x" * 200}}
    body = RunEncoder("", MAX).encode_request(run, 0)
    exact = len(body) + 1 + len(varint(len(body)))
    assert len(RunEncoder("", exact).encode_item(run, 0)) == exact
    with pytest.raises(RunValidationError) as info:
        RunEncoder("", exact - 1).encode_item(run, 7)
    assert str(info.value) == (
        f"run 7: run: encoded request is {exact} bytes, over the max send size of {exact - 1} bytes"
    )
    # A single TriggerWorkflow call carries the message alone.
    assert RunEncoder("", len(body)).encode_request(run, 0) == body


def invalid(run: Any, index: int = 4, tag: object = None) -> str:
    with pytest.raises(RunValidationError) as info:
        RunEncoder("", MAX).encode_item(run, index, tag)
    return str(info.value)


def ok(**overrides: Any) -> dict[str, Any]:
    return {"workflow_name": "W", "input": {"a": 1}, **overrides}


def test_metadata_scalars_become_strings() -> None:
    run = ok(options={"additional_metadata": {"i": 5, "f": 2.5, "t": True, "n": False, "s": "x"}})
    msg = trigger_pb2.TriggerWorkflowRequest.FromString(RunEncoder("", MAX).encode_request(run, 0))
    assert json.loads(msg.additional_metadata) == {"i": "5", "f": "2.5", "t": "true", "n": "false", "s": "x"}


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (["W", {}], "run 4: run: expected a dict, got list"),
        ({"input": {}}, "run 4: workflow_name: missing"),
        ({"workflow_name": "W"}, "run 4: input: missing"),
        ({"workflow_name": "W", "options": {}}, "run 4: input: missing"),  # three keys, one of them missing
        ({"input": {}, "options": {}}, "run 4: workflow_name: missing"),
        (ok(key="k"), "run 4: key: unknown key (expected workflow_name, input, options)"),
        ({"workflow_name": "", "input": {}}, "run 4: workflow_name: expected a non-empty string"),
        ({"workflow_name": 3, "input": {}}, "run 4: workflow_name: expected a non-empty string"),
        (ok(input=[1]), "run 4: input: expected a dict, got list"),
        (ok(input={"x": {1, 2}}), "run 4: input: not JSON-serialisable: Object of type set is not JSON serializable"),
        (
            ok(input={"x": math.nan}),
            "run 4: input: not JSON-serialisable: Out of range float values are not JSON compliant",
        ),
        (ok(input={"x": "a\x00b"}), "run 4: input: contains the NUL character (\\u0000), which Hatchet rejects"),
        (ok(input={"x": "\ud800"}), "run 4: input: not JSON-serialisable: a string holds a lone surrogate"),
        (ok(options=[]), "run 4: options: expected a dict, got list"),
        (ok(options={"sticky": True}), "run 4: options.sticky: unknown option"),
        (
            ok(options={"additional_metadata": {"k": None}}),
            "run 4: options.additional_metadata.k: expected a string or a scalar (int, float, bool), got NoneType",
        ),
        (
            ok(options={"additional_metadata": {"k": [1]}}),
            "run 4: options.additional_metadata.k: expected a string or a scalar (int, float, bool), got list",
        ),
        (
            ok(options={"additional_metadata": {"k": {"a": 1}}}),
            "run 4: options.additional_metadata.k: expected a string or a scalar (int, float, bool), got dict",
        ),
        (
            ok(options={"additional_metadata": {"k": math.inf}}),
            "run 4: options.additional_metadata.k: inf cannot be sent as a string value",
        ),
        (ok(options={"additional_metadata": {5: "x"}}), "run 4: options.additional_metadata: key 5 is not a string"),
        (ok(options={"additional_metadata": "k=v"}), "run 4: options.additional_metadata: expected a dict, got str"),
        (
            ok(options={"additional_metadata": {"k": "a\x00"}}),
            "run 4: options.additional_metadata: contains the NUL character (\\u0000), which Hatchet rejects",
        ),
        (ok(options={"priority": 4}), "run 4: options.priority: expected 1, 2 or 3, got 4"),
        (ok(options={"priority": True}), "run 4: options.priority: expected 1, 2 or 3, got True"),
        (ok(options={"desired_worker_id": "worker-1"}), "run 4: options.desired_worker_id: expected a UUID string"),
        (
            ok(options={"desired_worker_labels": {"z": {"value": 2**31}}}),
            "run 4: options.desired_worker_labels.z.value: expected a string or an int32",
        ),
        (
            ok(options={"desired_worker_labels": {"z": {"comparator": "ABOUT"}}}),
            "run 4: options.desired_worker_labels.z.comparator: expected one of EQUAL, NOT_EQUAL, GREATER_THAN, GREATER_THAN_OR_EQUAL, LESS_THAN, LESS_THAN_OR_EQUAL",
        ),
        (ok(options={"namespace": 5}), "run 4: options.namespace: expected a non-empty string"),
    ],
)
def test_invalid_runs_are_named(run: Any, message: str) -> None:
    assert invalid(run) == message


def test_circular_input_is_an_error_not_a_crash() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    assert invalid(ok(input=loop)) == "run 4: input: not JSON-serialisable: circular or too deeply nested"


def test_the_tag_is_named_with_the_index() -> None:
    assert invalid(ok(options={"priority": 0}), 2, "daily/2024-01-01") == (
        "run 2 ('daily/2024-01-01'): options.priority: expected 1, 2 or 3, got 0"
    )


def test_escaped_backslash_u0000_text_is_not_a_nul() -> None:
    # The 6 characters \u0000 typed literally are escaped to \\u0000: legitimate text, accepted.
    run = ok(input={"x": "\\u0000", "y": "\\\\u0000"})
    msg = trigger_pb2.TriggerWorkflowRequest.FromString(RunEncoder("", MAX).encode_request(run, 0))
    assert json.loads(msg.input) == {"x": "\\u0000", "y": "\\\\u0000"}
    assert invalid(ok(input={"x": "\\\x00"})).endswith("contains the NUL character (\\u0000), which Hatchet rejects")


@pytest.mark.parametrize("run", [r for r in RUNS if set(r.get("options", {})) <= {"additional_metadata", "priority"}])
@pytest.mark.parametrize("namespace", ["", "bench_"])
def test_json_items_encode_as_the_generated_message(run: dict[str, Any], namespace: str) -> None:
    """encode_json_item (the caller made the JSON texts) gives the bytes of the same run made with the generated
    messages, framed as an item of a bulk request."""
    options = run.get("options", {})
    metadata = options.get("additional_metadata") or None
    text = {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in (metadata or {}).items()}
    meta_json = json.dumps(text, separators=(",", ":"), ensure_ascii=False).encode() if metadata else None
    input_json = json.dumps(run["input"], separators=(",", ":"), ensure_ascii=False).encode()
    item = RunEncoder(namespace, MAX).encode_json_item(
        run["workflow_name"], input_json, meta_json, options.get("priority"), 0
    )
    reference_run = {**run, "options": {**options, "additional_metadata": text}} if metadata else run
    expected = reference(reference_run, namespace).SerializeToString(deterministic=True)
    assert item == b"\n" + varint(len(expected)) + expected


def test_json_items_are_checked_for_nul_priority_and_size() -> None:
    encoder = RunEncoder("", 200)
    with pytest.raises(RunValidationError, match=r"^run 4 \('k'\): input: contains the NUL character"):
        encoder.encode_json_item("W", b'{"x":"a\\u0000"}', None, None, 4, "k")
    with pytest.raises(RunValidationError, match=r"options.additional_metadata: contains the NUL character"):
        encoder.encode_json_item("W", b"{}", b'{"k":"\\u0000"}')
    assert encoder.encode_json_item("W", b'{"x":"\\\\u0000"}')  # an escaped backslash, then text: accepted
    with pytest.raises(RunValidationError, match=r"options.priority: expected 1, 2 or 3, got 4$"):
        encoder.encode_json_item("W", b"{}", None, 4)
    with pytest.raises(RunValidationError, match=r"over the max send size of 200 bytes$"):
        encoder.encode_json_item("W", b'{"x":"' + b"y" * 200 + b'"}')
