"""The tenant's workflows, from the REST workflow listing, and a preflight check of workflow names.

Why check: the real engine's bulk trigger builds runs only for the workflow names it knows and still returns a run
id for every item, so runs of a misspelt or undeployed workflow vanish without an error. `check_workflows` asks the
engine which of the names exist before anything is sent.

The listing is Hatchet's `GET /api/v1/tenants/{tenant}/workflows?name=&limit=&offset=` (the official SDK's
`WorkflowApi.workflow_list`), answering `WorkflowList{rows: [Workflow{metadata{id}, name, isPaused?, ...}],
pagination{current_page, num_pages, next_page}}`. Its `name` filter is a case-insensitive substring match (on
Hatchet, an SQL ILIKE: `_` and `%` are wildcards, `\\` escapes), so the listing only narrows the search; names are
compared exactly here (`BulkParent` is not `bulkparent`, nor `BulkParentV2`).

The embedded engine (hatchet_client.engine) adds `embeddedEngine: {recorder, unknownWorkflows}` to its listing.
`recorder: true` means it knows no workflow and accepts every name: `check_workflows` then reports `recorder`
instead of reporting every name missing.
"""

from __future__ import annotations

import re
import ssl
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hatchet_client.errors import ListWorkflowsError
from hatchet_client.rest import Answer, RestClient, RestLimits

DEFAULT_PAGE_SIZE = 100
MAX_SCANNED_PER_NAME = 100_000  # rows matching one search term before the listing is taken to never end


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    """One workflow of the listing. `is_paused` is None when the engine does not say."""

    workflow_id: str
    name: str
    is_paused: bool | None


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    """One page of the listing. `embedded` is what only the embedded engine adds (None from Hatchet itself)."""

    rows: tuple[WorkflowRow, ...]
    current_page: int | None
    num_pages: int | None
    embedded: EmbeddedEngineInfo | None


@dataclass(frozen=True, slots=True)
class EmbeddedEngineInfo:
    """The embedded engine's mode. `recorder`: it knows no workflow and stores runs of every name;
    `unknown_workflows`: what it does with a name it does not know once it knows some (`drop` or `refuse`)."""

    recorder: bool
    unknown_workflows: str


@dataclass(frozen=True, slots=True)
class WorkflowCheck:
    """Which of the checked (full, namespaced) workflow names exist in the tenant.

    - `found`: names the engine lists exactly;
    - `missing`: names it does not list: their runs would be dropped silently (Hatchet) or refused;
    - `recorder`: the embedded engine in recorder mode (it knows no workflow and accepts every name): nothing was
      checked, `found` and `missing` are empty;
    - `listed_none`: the engine lists no workflow at all (worth saying when names are missing: wrong tenant or
      namespace, or no worker ever registered them). Only looked up when a name is missing, or in recorder mode;
    - `embedded`: the answer came from the embedded engine.
    """

    found: frozenset[str]
    missing: frozenset[str]
    recorder: bool = False
    listed_none: bool = False
    embedded: bool = False

    @property
    def ok(self) -> bool:
        """Nothing is known to be missing (always true in recorder mode, where nothing was checked)."""
        return not self.missing

    def describe(self) -> str:
        """One line for a person: what was checked and what is missing."""
        if self.recorder:
            return "embedded engine in recorder mode: workflow names not checked"
        if not self.missing:
            return f"{len(self.found)} workflow name(s) checked: all exist"
        names = ", ".join(sorted(self.missing))
        if self.listed_none:
            return f"the engine lists no workflows at all; not found: {names}"
        return f"workflow(s) not found in the tenant: {names}"


def _tenant_path(tenant: str) -> str:
    return f"/api/v1/tenants/{urllib.parse.quote(tenant, safe='')}/workflows"


def _client(
    server_url: str, token: str, timeout: float | None, limits: RestLimits | None, ssl_context: ssl.SSLContext | None
) -> RestClient:
    return RestClient(server_url, token, limits=(limits or RestLimits()).with_timeout(timeout), ssl_context=ssl_context)


def _parse_page(page: Answer) -> WorkflowPage:
    body = page.as_object(page.value, "the answer")
    raw_rows = page.as_list(body.get("rows"), "rows")
    rows = []
    for i, raw in enumerate(raw_rows):
        where = f"rows[{i}]"
        row = page.as_object(raw, where)
        meta = page.as_object(row.get("metadata"), f"{where}.metadata")
        rows.append(
            WorkflowRow(
                workflow_id=page.string(meta, "id", f"{where}.metadata"),
                name=page.string(row, "name", where),
                is_paused=page.optional_bool(row, "isPaused", where),
            )
        )
    current = pages = None
    pagination = page.optional_object(body, "pagination", "the answer")
    if pagination is not None:
        current = page.optional_int(pagination, "current_page", "pagination")
        pages = page.optional_int(pagination, "num_pages", "pagination")
        page.optional_int(pagination, "next_page", "pagination")
    embedded = None
    info = page.optional_object(body, "embeddedEngine", "the answer")
    if info is not None:
        recorder = page.optional_bool(info, "recorder", "embeddedEngine")
        if recorder is None:
            page.fail("embeddedEngine.recorder is missing or null, not a boolean")
        embedded = EmbeddedEngineInfo(
            recorder=recorder, unknown_workflows=page.string(info, "unknownWorkflows", "embeddedEngine")
        )
    return WorkflowPage(tuple(rows), current, pages, embedded)


def _pages(client: RestClient, tenant: str, name: str | None, limit: int, offset: int) -> Iterator[WorkflowPage]:
    if limit < 1:
        raise ListWorkflowsError(f"limit must be positive, not {limit}")
    if offset < 0:
        raise ListWorkflowsError(f"offset must not be negative, not {offset}")
    path = _tenant_path(tenant)
    while True:
        params = [("offset", str(offset)), ("limit", str(limit))]
        if name is not None:
            params.append(("name", name))
        page = _parse_page(client.get(path, params, error=ListWorkflowsError))
        yield page
        if not page.rows:
            return
        offset += len(page.rows)
        if page.current_page is not None and page.num_pages is not None:
            if page.current_page >= page.num_pages:
                return
        elif len(page.rows) < limit:
            return


def list_workflows(
    server_url: str,
    tenant: str,
    token: str,
    name: str | None = None,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    offset: int = 0,
    timeout: float | None = None,
    limits: RestLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[WorkflowRow]:
    """The tenant's workflows whose name contains `name` (the engine's case-insensitive substring filter; every
    workflow when None), from `GET {server_url}/api/v1/tenants/{tenant}/workflows`, `limit` per request from
    `offset`, fetched lazily. Each request is bounded by `limits` (`timeout` replaces its deadline when given);
    every failure, an answer of the wrong shape included, raises ListWorkflowsError."""
    client = _client(server_url, token, timeout, limits, ssl_context)
    for page in _pages(client, tenant, name, limit, offset):
        yield from page.rows


def search_term(name: str) -> str:
    """A filter that the listing matches for `name` on any engine: its longest part without `\\` or `%` (which an
    ILIKE would read as an escape or a wildcard). `_` is left in: as a wildcard it only widens the match."""
    return max(re.split(r"[\\%]", name), key=len)


def check_workflows(
    server_url: str,
    tenant: str,
    token: str,
    names: Iterable[str],
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    timeout: float | None = None,
    limits: RestLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> WorkflowCheck:
    """Which of `names` (exact full names, namespace included, as sent on the wire) exist in the tenant.

    One filtered listing per name (paged until the name is found or the matches end), plus one request when a name
    is missing, to tell an engine that lists no workflow at all. Raises ListWorkflowsError when the listing fails
    or answers something else than a workflow listing."""
    wanted = frozenset(names)
    for name in wanted:
        if not isinstance(name, str) or not name:
            raise ListWorkflowsError(f"a workflow name must be a non-empty string, not {name!r}")
    if not wanted:
        return WorkflowCheck(frozenset(), frozenset())
    client = _client(server_url, token, timeout, limits, ssl_context)
    found: set[str] = set()
    embedded = False
    for name in sorted(wanted):
        if name in found:  # seen while looking for another name
            continue
        scanned = 0
        for page in _pages(client, tenant, search_term(name), page_size, 0):
            if page.embedded is not None:
                embedded = True
                if page.embedded.recorder:
                    return WorkflowCheck(frozenset(), frozenset(), recorder=True, listed_none=True, embedded=True)
            found.update(row.name for row in page.rows if row.name in wanted)
            if name in found:
                break
            scanned += len(page.rows)
            if scanned > MAX_SCANNED_PER_NAME:
                raise ListWorkflowsError(
                    f"more than {MAX_SCANNED_PER_NAME} workflows match {search_term(name)!r}: the listing does not end",
                    reason="bad_shape",
                    url=client.url(_tenant_path(tenant)),
                )
    missing = wanted - found
    listed_none = False
    if missing:
        first = next(_pages(client, tenant, None, 1, 0))
        listed_none = not first.rows
    return WorkflowCheck(frozenset(found), missing, listed_none=listed_none, embedded=embedded)
