"""What the engine's REST handlers share: the error of a bad request, parameter parsing, JSON answers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from hatchet_client.engine.store import RunStore, workflow_id

RUN_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED")


class BadRequest(Exception):
    """The request is malformed or asks for what the engine does not do: HTTP 400 with this description."""


class HttpError(Exception):
    """Any other refusal before the request is handled: HTTP `status` with this description."""

    def __init__(self, status: int, description: str) -> None:
        self.status = status
        super().__init__(description)


def parse_time(name: str, text: str) -> datetime:
    try:
        # A literal '+' in a query string decodes to a space: put the offset sign back.
        moment = datetime.fromisoformat(text.strip().replace(" ", "+"))
    except ValueError:
        raise BadRequest(f"{name} {text!r} is not an RFC 3339 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_int(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} {text!r} is not an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


def parse_uuid(name: str, value: object) -> str:
    """A UUID in its canonical form (lower case, with hyphens), as Hatchet echoes ids."""
    if not isinstance(value, str) or len(value) > 45:
        raise BadRequest(f"{name} must be UUIDs, not {_shown(value)}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequest(f"{name} must be UUIDs, not {_shown(value)}") from None


def metadata_pair(name: str, item: object) -> tuple[str, str]:
    """`key:value` split on the first ':' (a value may contain ':'); BadRequest without one, or without a key."""
    if not isinstance(item, str):
        raise BadRequest(f"{name} must be key:value strings, not {_shown(item)}")
    key, sep, value = item.partition(":")
    if not sep or not key:
        raise BadRequest(f"{name} {item!r} is not key:value")
    return key, value


def last(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def workflow_names(store: RunStore, tenant_id: str, ids: Iterable[str]) -> list[str]:
    """The names of the workflows with these ids (the engine's ids are derived from names: see store.workflow_id)."""
    wanted = set(ids)
    return [name for name in store.workflow_names() if workflow_id(tenant_id, name) in wanted]


dumps = json.JSONEncoder(separators=(",", ":")).encode


def errors(description: str) -> str:
    """Hatchet's APIErrors body."""
    return dumps({"errors": [{"description": description}]})


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
