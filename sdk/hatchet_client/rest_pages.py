"""What the REST clients of crons, scheduled runs and events share: arguments checked before anything is sent,
metadata filters, ids, and offset paging over `{rows, pagination}` listings."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from hatchet_client.errors import RestError
from hatchet_client.rest import Answer, RestClient

T = TypeVar("T")
MAX_PAGE_SIZE = 1000
MAX_PAGES = 100_000  # a listing that has not ended by then never will


def tenant_path(tenant: str, rest: str) -> str:
    return f"/api/v1/tenants/{urllib.parse.quote(tenant, safe='')}/{rest}"


def quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def check_id(value: object, what: str, error: type[RestError]) -> str:
    """A UUID as the API takes ids (canonical form); `error` otherwise, before anything is sent."""
    if not isinstance(value, str):
        raise error(f"{what} must be a string (a UUID), not {type(value).__name__}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise error(f"{what} is not a UUID: {value[:60]!r}") from None


def json_object(value: object, what: str, error: type[RestError]) -> dict[str, Any]:
    """A mapping with string keys that JSON can carry (no NaN or Infinity), as a dict; `error` otherwise."""
    if not isinstance(value, Mapping):
        raise error(f"{what} must be a mapping (a JSON object), not {type(value).__name__}")
    try:
        text = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise error(f"{what} cannot be sent as JSON: {exc}") from None
    result: dict[str, Any] = json.loads(text)
    return result


def priority(value: object, error: type[RestError]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3:
        raise error(f"priority must be 1, 2 or 3 (or None), not {value!r}")
    return value


def rfc3339(moment: object, what: str, error: type[RestError]) -> str:
    """An aware datetime (a naive one is taken as UTC) as RFC 3339 UTC text."""
    if not isinstance(moment, datetime):
        raise error(f"{what} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def metadata_filters(metadata: Mapping[str, str] | None, error: type[RestError]) -> list[tuple[str, str]]:
    """`additionalMetadata=key:value` query pairs. Hatchet splits each on EVERY ':' and wants two parts, so a key
    or a value containing ':' cannot be filtered on; values are compared as JSON strings."""
    if metadata is None:
        return []
    if not isinstance(metadata, Mapping):
        raise error(f"additional_metadata must be a mapping of strings, not {type(metadata).__name__}")
    pairs = []
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise error(f"metadata filters are strings: {key!r}: {value!r} is not")
        if ":" in key or ":" in value:
            raise error(
                f"cannot filter on metadata {key!r}: {value!r}: Hatchet splits `key:value` filters on every ':',"
                " so neither may contain one"
            )
        pairs.append(("additionalMetadata", f"{key}:{value}"))
    return pairs


def page_size(limit: object, error: type[RestError]) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise error(f"limit must be an integer between 1 and {MAX_PAGE_SIZE}, not {limit!r}")
    return limit


def pages(
    client: RestClient,
    path: str,
    params: Sequence[tuple[str, str]],
    limit: int,
    parse_row: Callable[[Answer, Any, str], T],
    error: type[RestError],
    *,
    trust_num_pages: bool = True,
) -> Iterator[T]:
    """Every row of an offset-paged listing, `limit` per request, fetched lazily; each page is checked whole
    before any of its rows is yielded. It ends on an empty or short page, or when `pagination` says the page was
    the last (`current_page >= num_pages`) unless `trust_num_pages` is False (a listing whose count is capped)."""
    offset = 0
    for _ in range(MAX_PAGES):
        page = client.get(path, [*params, ("offset", str(offset)), ("limit", str(limit))], error=error)
        body = page.as_object(page.value, "the answer")
        raw_rows = body.get("rows")
        rows = [] if raw_rows is None else page.as_list(raw_rows, "rows")  # Hatchet omits an empty list's rows
        parsed = [parse_row(page, raw, f"rows[{i}]") for i, raw in enumerate(rows)]
        pagination = page.optional_object(body, "pagination", "the answer")
        current = pages_total = None
        if pagination is not None:
            current = page.optional_int(pagination, "current_page", "pagination")
            pages_total = page.optional_int(pagination, "num_pages", "pagination")
            page.optional_int(pagination, "next_page", "pagination")
        yield from parsed
        if len(parsed) < limit:
            return
        if trust_num_pages and current is not None and pages_total is not None and current >= pages_total:
            return
        offset += len(parsed)
    raise error(f"the listing did not end after {MAX_PAGES} pages", reason="bad_shape", url=client.url(path))
