"""Validation of trigger requests, the way the Hatchet engine does it, into rows ready to store.

Each stored run's metadata gets a `traceparent` key (W3C trace context, random ids), as the real engine adds one to
every run, unless the caller set one.

This is the engine's hot path (one pass per run at 100k+ runs/s), hence the direct use of the C JSON scanner
and the cheap substring tests before any precise check.
"""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from collections.abc import Callable, Sequence
from json import scanner
from typing import Any, Protocol

import grpc

MAX_BULK_RUNS = 1000


class RequestError(Exception):
    """A request the engine answers with a non-OK gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TriggerRequest(Protocol):
    """The fields of `v1.TriggerWorkflowRequest` the engine reads (a generated message satisfies it)."""

    name: str
    input: str
    additional_metadata: str
    priority: int
    parent_id: str
    parent_task_run_external_id: str
    desired_worker_id: str

    def HasField(self, field_name: str) -> bool: ...


# One run as stored: (run_id, workflow_name, input JSON text, additional_metadata JSON text, priority).
# A plain tuple: building a NamedTuple per run costs more than the rest of the validation of a small run.
RunRow = tuple[str, str, str, str, int | None]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN: Callable[[str, int], tuple[Any, int]] = scanner.make_scanner(_DECODER)  # type: ignore[arg-type]
_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL (Postgres jsonb refuses it) and lone surrogates
_VERSION_BITS = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT_BITS = bytes((b & 0x3F) | 0x80 for b in range(256))
_UUID_FIELDS = ("parent_id", "parent_task_run_external_id", "desired_worker_id")


# Where each of the 32 hex digits of a UUID goes in its 36-character text form (hyphens at 8, 13, 18, 23).
_HEX_TO_TEXT = [j + (j >= 8) + (j >= 12) + (j >= 16) + (j >= 20) for j in range(32)]


def new_run_ids(n: int) -> list[str]:
    """`n` random (version 4) UUID strings, made in bulk: one urandom call, one hex conversion, and 32 strided
    copies into the hyphenated layout, instead of formatting each id."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = raw[6::16].translate(_VERSION_BITS)
    raw[8::16] = raw[8::16].translate(_VARIANT_BITS)
    digits = raw.hex().encode("ascii")
    text = bytearray(b"-" * (36 * n))
    for j, k in enumerate(_HEX_TO_TEXT):
        text[k::36] = digits[j::32]
    joined = text.decode("ascii")
    return [joined[i : i + 36] for i in range(0, 36 * n, 36)]


_LOW_BIT = bytes(b | 1 for b in range(256))
_TRACE_RANDOM = random.Random(os.urandom(32))  # not the global generator: a test's random.seed() leaves it alone
_NOT_PLAIN_SECOND = frozenset(" \t\r\n}")


def new_trace_hex(n: int) -> str:
    """The hex digits of `n` random W3C trace contexts, 48 per run (a 32-digit trace id, a 16-digit span id), in one
    call of a generator of the engine's own (trace ids need randomness, not secrecy: no system call per trigger
    call). The lowest bit of each id is set: neither can be the all-zero id W3C forbids."""
    raw = bytearray(_TRACE_RANDOM.randbytes(24 * n))
    raw[15::24] = raw[15::24].translate(_LOW_BIT)  # last byte of the 16-byte trace id
    raw[23::24] = raw[23::24].translate(_LOW_BIT)  # last byte of the 8-byte span id
    return raw.hex()


def traceparent(trace_hex: str, i: int) -> str:
    """The `traceparent` value of run `i` (`00-<trace id>-<span id>-01`) from new_trace_hex's digits."""
    k = 48 * i
    return f"00-{trace_hex[k : k + 32]}-{trace_hex[k + 32 : k + 48]}-01"


def with_traceparent(meta_text: str, value: str) -> str:
    """The metadata object text (valid JSON, an object) with a `traceparent` key first, as the real engine adds
    one to every run; a `traceparent` the caller set is kept. The caller's text follows as received."""
    if ("traceparent" in meta_text or "\\u" in meta_text) and "traceparent" in _decode(meta_text):
        return meta_text
    body = meta_text.lstrip()
    rest = body[1:].lstrip()
    if rest.startswith("}"):  # an empty object
        return f'{{"traceparent":"{value}"{rest}'
    return f'{{"traceparent":"{value}",{body[1:]}'


def _decode(text: str) -> Any:
    """Parse JSON text; the C scanner directly when the text has no surrounding whitespace."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return _DECODER.decode(text)  # raises with a position
    if end != len(text):
        return _DECODER.decode(text)  # trailing whitespace is fine, anything else raises
    return value


def _has_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return _NOT_STORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_NOT_STORABLE.search(k) or _has_unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable(v) for v in value)
    return False


def _where(bulk: bool, i: int) -> str:
    return f"workflows[{i}]: " if bulk else ""


def _invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _json_object(text: str, what: str, bulk: bool, i: int) -> dict[str, Any] | None:
    """The decoded object, None if the JSON is valid but not an object; raises RequestError if invalid."""
    try:
        value = _decode(text)
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"{_where(bulk, i)}{what} is not valid JSON: {exc}") from None
    # Only a `\u` escape can put a NUL or a lone surrogate in a string; only then is the value walked.
    if "\\u" in text and ("\\u0000" in text or "\\ud" in text or "\\uD" in text) and _has_unstorable(value):
        raise _invalid(f"{_where(bulk, i)}{what} contains \\u0000 or an unpaired surrogate, which cannot be stored")
    return value if type(value) is dict else None


def _check_uuids(item: TriggerRequest, bulk: bool, i: int) -> None:
    for field in _UUID_FIELDS:
        if item.HasField(field):
            value = getattr(item, field)
            try:
                uuid.UUID(value)
            except ValueError:
                raise _invalid(f"{_where(bulk, i)}{field} {value!r} is not a UUID") from None


def _fast_object(text: str) -> bool:
    """True when `text` is certainly a storable JSON object (the common case, checked with the C scanner only)."""
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return False
    return end == len(text) and type(value) is dict and "\\u" not in text


def validate_runs(items: Sequence[TriggerRequest], bulk: bool) -> list[RunRow]:
    """Validate every item (the whole call before anything is written) and return the rows to store."""
    n = len(items)
    if bulk and n == 0:
        raise _invalid("no workflows to trigger: the bulk request is empty")
    if n > MAX_BULK_RUNS:
        raise _invalid(f"too many workflows in one bulk request: {n} (at most {MAX_BULK_RUNS})")
    ids = new_run_ids(n)
    trace_hex = new_trace_hex(n)
    rows: list[RunRow] = []
    append = rows.append
    fast = _fast_object
    for i, item in enumerate(items):
        name = item.name
        if not name:
            raise _invalid(f"{_where(bulk, i)}name is empty")
        input_text = item.input
        if not input_text:
            input_text = "{}"
        elif not fast(input_text) and _json_object(input_text, "input", bulk, i) is None:
            raise _invalid(f"{_where(bulk, i)}input is not a JSON object")
        # The engine's traceparent goes first in the metadata; the caller's text follows as sent.
        meta_text = item.additional_metadata
        k = 48 * i
        if meta_text and fast(meta_text):  # an object starting with `{`, without `\\u` escapes
            if meta_text[1] in _NOT_PLAIN_SECOND or "traceparent" in meta_text:
                meta_text = with_traceparent(meta_text, traceparent(trace_hex, i))
            else:  # the common case, inline: `{"key"...` with no traceparent of its own
                meta_text = (
                    f'{{"traceparent":"00-{trace_hex[k : k + 32]}-{trace_hex[k + 32 : k + 48]}-01",{meta_text[1:]}'
                )
        elif meta_text and _json_object(meta_text, "additional_metadata", bulk, i) is not None:
            meta_text = with_traceparent(meta_text, traceparent(trace_hex, i))
        else:  # absent, or not an object: the real engine replaces it
            meta_text = f'{{"traceparent":"{traceparent(trace_hex, i)}"}}'
        priority: int | None = item.priority
        if priority:
            if not 1 <= priority <= 3:
                raise _invalid(f"{_where(bulk, i)}priority must be between 1 and 3, got {priority}")
        elif item.HasField("priority"):
            raise _invalid(f"{_where(bulk, i)}priority must be between 1 and 3, got 0")
        else:
            priority = None
        # Set-but-empty UUID fields are rare enough to skip the per-item presence checks when all are empty.
        if item.parent_id or item.parent_task_run_external_id or item.desired_worker_id:
            _check_uuids(item, bulk, i)
        append((ids[i], name, input_text, meta_text, priority))
    return rows
