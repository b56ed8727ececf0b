"""Validate runs and encode them straight to protobuf wire bytes.

Encoding dominates the cost of a bulk launch, so a run is turned into the bytes of a `v1.TriggerWorkflowRequest`
by hand (field numbers from sdk/protos/v1/trigger.proto) instead of building generated messages; the JSON text
comes from one reused C encoder. tests/sdk/test_client_encode.py proves the bytes equal the generated messages'.

Rules (the issue's "validation before sending"), each failure a RunValidationError naming the run:
- a run is a dict with `workflow_name` (non-empty str), `input` (a dict) and optionally `options`; other keys
  are an error;
- `input` must encode as JSON (no NaN/Infinity, no circular references; int/float/bool/None keys become
  strings, as json.dumps does) and, like every JSON text
  sent, must not contain the NUL character (the engine rejects `\\u0000`);
- metadata keys are strings; values are strings, or scalars sent as strings: int and float as their decimal
  text (`5`, `2.5`; NaN/Infinity refused), bool as `true`/`false` (JSON spelling, so that the REST filter `k:true`
  finds them); None, lists and dicts are an error; an empty mapping is not sent;
- priority is an int in 1..3; desired_worker_id a UUID; label values str or int32;
- a run whose encoded request exceeds the max send size is an error.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from hatchet_client.config import apply_namespace, normalize_namespace
from hatchet_client.errors import RunValidationError

_RUN_KEYS = frozenset({"workflow_name", "input", "options"})
_OPTION_KEYS = frozenset({"additional_metadata", "priority", "desired_worker_id", "desired_worker_labels", "namespace"})
_LABEL_KEYS = frozenset({"value", "required", "comparator", "weight"})
COMPARATORS = {
    "EQUAL": 0,
    "NOT_EQUAL": 1,
    "GREATER_THAN": 2,
    "GREATER_THAN_OR_EQUAL": 3,
    "LESS_THAN": 4,
    "LESS_THAN_OR_EQUAL": 5,
}
_INT32 = range(-(2**31), 2**31)
# An escaped NUL preceded by an even number of backslashes (an odd number would make it literal text).
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_NUL_BYTES = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

_VARINT_1 = [bytes((i,)) for i in range(128)]


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    if n < 0x80:
        return _VARINT_1[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int32(n: int) -> bytes:
    return varint(n if n >= 0 else n + (1 << 64))


def _string_field(tag: int, text: str) -> bytes:
    data = text.encode()
    return bytes((tag,)) + varint(len(data)) + data


def _json_encoder() -> Callable[[object], str]:
    """Compact JSON (`,` `:`), NaN refused, no circular check (a cycle raises RecursionError instead)."""
    std = json.JSONEncoder(separators=(",", ":"), check_circular=False, allow_nan=False, ensure_ascii=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pure-Python json: slower, same output
        return std.encode
    c_encode = make(None, std.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)

    def encode(obj: object) -> str:
        return "".join(c_encode(obj, 0))

    return encode


class RunEncoder:
    """Encodes runs for one client: its namespace and its max send size. Not thread-safe (it caches names)."""

    def __init__(self, namespace: str, max_send: int) -> None:
        self.namespace = namespace
        self.max_send = max_send
        self._json = _json_encoder()
        self._names: dict[tuple[str, str | None], bytes] = {}
        self._plain_names: dict[str, bytes] = {}  # the same fields, for runs without a namespace override

    def encode_item(self, run: Mapping[str, Any], index: int, tag: object = None) -> bytes:
        """The run as one framed element of `BulkTriggerWorkflowRequest.workflows` (tag, length, message)."""
        return self._framed(self._body(run, index, tag), index, tag)

    def encode_request(self, run: Mapping[str, Any], index: int, tag: object = None) -> bytes:
        """The run as the bytes of a `v1.TriggerWorkflowRequest` (a TriggerWorkflow call's whole message)."""
        body = self._body(run, index, tag)
        if len(body) > self.max_send:
            self._too_big(len(body), index, tag)
        return body

    def encode_json_item(
        self,
        workflow_name: str,
        input_json: bytes,
        metadata_json: bytes | None = None,
        priority: int | None = None,
        index: int = 0,
        tag: object = None,
    ) -> bytes:
        """Like `encode_item`, for a caller that made the JSON texts itself (UTF-8): `input_json` a JSON object,
        `metadata_json` a JSON object of strings (None or empty: not sent). Their JSON is the caller's to vouch
        for; the NUL rule, the priority and the size are checked here."""
        prefix = self._plain_names.get(workflow_name) or self._name_field(workflow_name, None, index, tag)
        parts = [prefix, varint(len(input_json)), input_json]
        if b"\\u0000" in input_json:
            _check_nul_bytes(input_json, "input", index, tag)
        if metadata_json:
            if b"\\u0000" in metadata_json:
                _check_nul_bytes(metadata_json, "options.additional_metadata", index, tag)
            parts += (b":", varint(len(metadata_json)), metadata_json)
        if priority is not None:
            parts.append(_priority_field(priority, index, tag))
        return self._framed(b"".join(parts), index, tag)

    def _body(self, run: Mapping[str, Any], index: int, tag: object) -> bytes:
        body = self._fast(run) if type(run) is dict else None
        return self._general(run, index, tag) if body is None else body

    def _framed(self, body: bytes, index: int, tag: object) -> bytes:
        """`body` as an element of a bulk request: its tag and length first; within the max send size."""
        header = b"\n" + varint(len(body))
        if len(body) + len(header) > self.max_send:
            self._too_big(len(body) + len(header), index, tag)
        return header + body

    def _too_big(self, size: int, index: int, tag: object) -> None:
        raise RunValidationError(
            index, "run", f"encoded request is {size} bytes, over the max send size of {self.max_send} bytes", tag
        )

    def _fast(self, run: dict[str, Any]) -> bytes | None:
        """The common shape (no option but string metadata) encoded without detours; None for anything else,
        including anything invalid, which `_general` then encodes or reports."""
        get = run.get
        name = get("workflow_name")
        inp = get("input")
        options = get("options")
        if type(name) is not str or type(inp) is not dict or len(run) != (2 if options is None else 3):
            return None
        prefix = self._plain_names.get(name)
        if prefix is None:
            return None
        data = self._fast_json(inp)
        if data is None:
            return None
        if options is None:
            return b"".join((prefix, varint(len(data)), data))
        if type(options) is not dict or len(options) != 1:
            return None
        metadata = options.get("additional_metadata")
        if type(metadata) is not dict:
            return None
        if not metadata:
            return b"".join((prefix, varint(len(data)), data))
        for key, value in metadata.items():
            if type(key) is not str or type(value) is not str:
                return None
        meta = self._fast_json(metadata)
        if meta is None:
            return None
        return b"".join((prefix, varint(len(data)), data, b":", varint(len(meta)), meta))

    def _fast_json(self, value: object) -> bytes | None:
        """The JSON bytes of a value without a NUL; None for anything else (`_general` reports it)."""
        try:
            text = self._json(value)
            data = text.encode()
        except (ValueError, TypeError, RecursionError):
            return None
        return None if "\\u0000" in text else data

    def _general(self, run: Mapping[str, Any], index: int, tag: object) -> bytes:
        if type(run) is not dict and not isinstance(run, Mapping):
            raise RunValidationError(index, "run", f"expected a dict, got {type(run).__name__}", tag)
        self._check_run_keys(run, index, tag)
        options = run.get("options")
        ns_override: str | None = None
        if options is not None:
            if type(options) is not dict and not isinstance(options, Mapping):
                raise RunValidationError(index, "options", f"expected a dict, got {type(options).__name__}", tag)
            ns_override = options.get("namespace")
        prefix = self._name_field(run["workflow_name"], ns_override, index, tag)
        inp = run["input"]
        if type(inp) is not dict and not isinstance(inp, Mapping):
            raise RunValidationError(index, "input", f"expected a dict, got {type(inp).__name__}", tag)
        data = self._json_bytes(inp, "input", index, tag)
        parts = [prefix, varint(len(data)), data]
        if options:
            self._options(options, parts, index, tag)
        return b"".join(parts)

    def _check_run_keys(self, run: Mapping[str, Any], index: int, tag: object) -> None:
        for key in ("workflow_name", "input"):
            if key not in run:
                raise RunValidationError(index, key, "missing", tag)
        unknown = sorted(str(k) for k in run.keys() - _RUN_KEYS)
        if unknown:
            raise RunValidationError(index, unknown[0], "unknown key (expected workflow_name, input, options)", tag)

    def _name_field(self, name: object, ns_override: object, index: int, tag: object) -> bytes:
        if type(name) is not str or not name:
            raise RunValidationError(index, "workflow_name", "expected a non-empty string", tag)
        if ns_override is not None and (type(ns_override) is not str or not ns_override):
            raise RunValidationError(index, "options.namespace", "expected a non-empty string", tag)
        field = self._names.get((name, ns_override))
        if field is None:
            namespace = normalize_namespace(ns_override) if ns_override else self.namespace
            field = _string_field(0x0A, apply_namespace(name, namespace)) + b"\x12"  # name, then input's tag
            if len(self._names) < 10_000:  # bounded: names are few, but nothing stops a caller
                self._names[(name, ns_override)] = field
                if ns_override is None:
                    self._plain_names[name] = field
        return field

    def _json_bytes(self, value: object, field: str, index: int, tag: object) -> bytes:
        try:
            text = self._json(value)
            data = text.encode()
        except RecursionError:
            raise RunValidationError(
                index, field, "not JSON-serialisable: circular or too deeply nested", tag
            ) from None
        except UnicodeEncodeError:
            raise RunValidationError(
                index, field, "not JSON-serialisable: a string holds a lone surrogate", tag
            ) from None
        except (TypeError, ValueError) as exc:
            raise RunValidationError(index, field, f"not JSON-serialisable: {exc}", tag) from None
        if "\\u0000" in text and _NUL.search(text):
            raise RunValidationError(index, field, "contains the NUL character (\\u0000), which Hatchet rejects", tag)
        return data

    def _options(self, options: Mapping[str, Any], parts: list[bytes], index: int, tag: object) -> None:
        if not options.keys() <= _OPTION_KEYS:
            unknown = sorted(str(k) for k in options.keys() - _OPTION_KEYS)
            raise RunValidationError(index, f"options.{unknown[0]}", "unknown option", tag)
        metadata = options.get("additional_metadata")
        if metadata:
            if type(metadata) is not dict and not isinstance(metadata, Mapping):
                raise RunValidationError(
                    index, "options.additional_metadata", f"expected a dict, got {type(metadata).__name__}", tag
                )
            for key, value in metadata.items():
                if type(key) is not str or type(value) is not str:
                    metadata = _stringify_metadata(metadata, index, tag)
                    break
            data = self._json_bytes(metadata, "options.additional_metadata", index, tag)
            parts += (b":", varint(len(data)), data)
        elif metadata is not None and not isinstance(metadata, Mapping):
            raise RunValidationError(
                index, "options.additional_metadata", f"expected a dict, got {type(metadata).__name__}", tag
            )
        worker_id = options.get("desired_worker_id")
        if worker_id is not None:
            if type(worker_id) is not str or not _is_uuid(worker_id):
                raise RunValidationError(index, "options.desired_worker_id", "expected a UUID string", tag)
            parts.append(_string_field(0x42, worker_id))
        priority = options.get("priority")
        if priority is not None:
            parts.append(_priority_field(priority, index, tag))
        labels = options.get("desired_worker_labels")
        if labels:
            parts += _labels(labels, index, tag)


def _priority_field(priority: object, index: int, tag: object) -> bytes:
    if type(priority) is not int or not 1 <= priority <= 3:
        raise RunValidationError(index, "options.priority", f"expected 1, 2 or 3, got {priority!r}", tag)
    return b"H" + _VARINT_1[priority]


def _check_nul_bytes(data: bytes, field: str, index: int, tag: object) -> None:
    if _NUL_BYTES.search(data):
        raise RunValidationError(index, field, "contains the NUL character (\\u0000), which Hatchet rejects", tag)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _stringify_metadata(metadata: Mapping[Any, Any], index: int, tag: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if type(key) is not str:
            raise RunValidationError(index, "options.additional_metadata", f"key {key!r} is not a string", tag)
        where = f"options.additional_metadata.{key}"
        if isinstance(value, str):
            out[key] = str(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, int):
            out[key] = str(int(value))
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise RunValidationError(index, where, f"{value!r} cannot be sent as a string value", tag)
            out[key] = repr(float(value))
        else:
            raise RunValidationError(
                index, where, f"expected a string or a scalar (int, float, bool), got {type(value).__name__}", tag
            )
    return out


def _labels(labels: object, index: int, tag: object) -> list[bytes]:
    field = "options.desired_worker_labels"
    if not isinstance(labels, Mapping):
        raise RunValidationError(index, field, f"expected a dict, got {type(labels).__name__}", tag)
    out: list[bytes] = []
    for key in sorted(labels):  # the order of deterministic protobuf serialisation
        label = labels[key]
        where = f"{field}.{key}"
        if type(key) is not str:
            raise RunValidationError(index, field, f"key {key!r} is not a string", tag)
        if not isinstance(label, Mapping) or not label.keys() <= _LABEL_KEYS:
            raise RunValidationError(index, where, "expected a dict with value, required, comparator, weight", tag)
        value = b""
        val = label.get("value")
        if isinstance(val, str):
            value += _string_field(0x0A, val)
        elif type(val) is int and val in _INT32:
            value += b"\x10" + _int32(val)
        elif val is not None:
            raise RunValidationError(index, f"{where}.value", "expected a string or an int32", tag)
        required = label.get("required")
        if required is not None:
            if type(required) is not bool:
                raise RunValidationError(index, f"{where}.required", "expected true or false", tag)
            value += b"\x18" + _VARINT_1[required]
        comparator = label.get("comparator")
        if comparator is not None:
            if comparator not in COMPARATORS:
                raise RunValidationError(index, f"{where}.comparator", "expected one of " + ", ".join(COMPARATORS), tag)
            value += b"\x20" + _VARINT_1[COMPARATORS[comparator]]
        weight = label.get("weight")
        if weight is not None:
            if type(weight) is not int or weight not in _INT32:
                raise RunValidationError(index, f"{where}.weight", "expected an int32", tag)
            value += b"\x28" + _int32(weight)
        entry = _string_field(0x0A, key) + b"\x12" + varint(len(value)) + value
        out += (b"R", varint(len(entry)), entry)
    return out
