"""Hatchet: the entry point, shaped like the official SDK's (`hatchet.admin`, `hatchet.client.admin`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

from hatchet_client.admin import AdminClient
from hatchet_client.config import ClientConfig
from hatchet_client.crons import CronClient
from hatchet_client.events import EventClient
from hatchet_client.runs import RunRow, list_run_ids, list_runs
from hatchet_client.scheduled import ScheduledClient
from hatchet_client.tasks import DEFAULT_BATCH, cancel_runs, replay_runs, run_metrics
from hatchet_client.workflows import DEFAULT_PAGE_SIZE, WorkflowCheck, WorkflowRow, check_workflows, list_workflows


class Hatchet:
    """`Hatchet()` reads its settings from the environment; `Hatchet(config)` or `Hatchet(token=..., ...)` takes
    them explicitly (keyword arguments are ClientConfig's). `admin` and `client.admin` are the same AdminClient;
    `cron`, `scheduled` (REST) and `event` (pushes over the admin's gRPC channel, the listing over REST) are named
    as in the official SDK.
    Close it (or use it as a context manager) to release the gRPC channel."""

    def __init__(self, config: ClientConfig | None = None, **settings: Any) -> None:
        if config is not None and settings:
            raise TypeError("pass either a ClientConfig or settings as keyword arguments, not both")
        self.config = config if config is not None else ClientConfig(**settings)
        self.admin = AdminClient(self.config)
        self.cron = CronClient(self.config)
        self.scheduled = ScheduledClient(self.config)
        self.event = EventClient(self.admin)

    @property
    def client(self) -> Hatchet:
        """The official 0.x SDK's `hatchet.client` (so that `hatchet.client.admin` works)."""
        return self

    def list_runs(
        self,
        metadata: Mapping[str, str],
        operator: Literal["AND", "OR"] = "AND",
        *,
        since: datetime,
        until: datetime | None = None,
        limit: int = 1000,
        statuses: Collection[str] | None = None,
        include_payloads: bool = True,
    ) -> Iterator[RunRow]:
        """hatchet_client.runs.list_runs with this client's server_url, tenant, token and REST limits."""
        c = self.config
        return list_runs(
            c.server_url,
            c.tenant_id,
            c.token,
            metadata,
            operator,
            since=since,
            until=until,
            limit=limit,
            limits=c.rest_limits,
            ssl_context=c.rest_ssl_context(),
            statuses=statuses,
            include_payloads=include_payloads,
        )

    def run_metrics(
        self, metadata: Mapping[str, str], *, since: datetime, until: datetime | None = None
    ) -> dict[str, int]:
        """hatchet_client.tasks.run_metrics (runs per status; pairs combine with OR) for this client's tenant."""
        c = self.config
        return run_metrics(
            c.server_url,
            c.tenant_id,
            c.token,
            metadata,
            since=since,
            until=until,
            limits=c.rest_limits,
            ssl_context=c.rest_ssl_context(),
        )

    def cancel_runs(self, ids: Sequence[str], *, batch: int = DEFAULT_BATCH) -> list[str]:
        """hatchet_client.tasks.cancel_runs for this client's tenant: the echoed ids."""
        c = self.config
        return cancel_runs(
            c.server_url, c.tenant_id, c.token, ids, batch=batch, limits=c.rest_limits, ssl_context=c.rest_ssl_context()
        )

    def replay_runs(self, ids: Sequence[str], *, batch: int = DEFAULT_BATCH) -> list[str]:
        """hatchet_client.tasks.replay_runs for this client's tenant: the echoed (task) ids."""
        c = self.config
        return replay_runs(
            c.server_url, c.tenant_id, c.token, ids, batch=batch, limits=c.rest_limits, ssl_context=c.rest_ssl_context()
        )

    def list_run_ids(
        self, metadata: Mapping[str, str], operator: Literal["AND", "OR"] = "AND", *, since: datetime
    ) -> list[str]:
        c = self.config
        return list_run_ids(
            c.server_url,
            c.tenant_id,
            c.token,
            metadata,
            operator,
            since=since,
            limits=c.rest_limits,
            ssl_context=c.rest_ssl_context(),
        )

    def list_workflows(self, name: str | None = None, *, limit: int = DEFAULT_PAGE_SIZE) -> Iterator[WorkflowRow]:
        """The tenant's workflows whose name contains `name` (case-insensitive; every workflow when None), as the
        official SDK's `workflows.list`: the client's namespace is applied to `name` (unless it carries it)."""
        c = self.config
        return list_workflows(
            c.server_url,
            c.tenant_id,
            c.token,
            None if name is None else c.apply_namespace(name),
            limit=limit,
            limits=c.rest_limits,
            ssl_context=c.rest_ssl_context(),
        )

    def check_workflows(self, names: Iterable[str]) -> WorkflowCheck:
        """Which of these workflows exist, compared exactly (hatchet_client.workflows.check_workflows). Names are
        taken as `run_workflow` takes them: the client's namespace is applied (a name that already carries it is
        kept), and the result holds the full names."""
        c = self.config
        return check_workflows(
            c.server_url,
            c.tenant_id,
            c.token,
            {c.apply_namespace(name) for name in names},
            limits=c.rest_limits,
            ssl_context=c.rest_ssl_context(),
        )

    def close(self) -> None:
        self.admin.close()

    def __enter__(self) -> Hatchet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Hatchet({self.config!r})"
