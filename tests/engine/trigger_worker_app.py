"""An official hatchet-sdk worker for the cron, schedule and event tests, run as a real process:

    python tests/engine/trigger_worker_app.py NAME

HATCHET_CLIENT_TOKEN / HATCHET_CLIENT_TLS_STRATEGY=none point it at the engine. Its workflows:

- `Tick`: does nothing but complete (what API crons and schedules start);
- `Declared`: declares a cron in code (`on_crons`, with `cron_input`), which the engine lists as DEFAULT;
- `UserCreated` (`on_events=["user:created"]`), `UserAny` (`user:*`), `OrderPaid` (`order:paid`, `order:refunded`):
  each returns its input, so a test sees the payload arrive as the run's input.
"""

from __future__ import annotations

import sys
from typing import Any

from hatchet_sdk import Context, EmptyModel, Hatchet
from pydantic import BaseModel

NAME = sys.argv[1]
hatchet = Hatchet()


class Payload(BaseModel):
    id: int = 0
    note: str = ""


@hatchet.task(name="Tick")
def tick(input: EmptyModel, ctx: Context) -> dict[str, Any]:
    return {"ticked": True}


declared = hatchet.workflow(
    name="Declared",
    on_crons=["0 0 1 1 *", "@daily"],
    cron_input=Payload(id=7, note="from code"),
    input_validator=Payload,
)


@declared.task()
def declared_task(input: Payload, ctx: Context) -> dict[str, Any]:
    return {"id": input.id}


@hatchet.task(name="UserCreated", on_events=["user:created"], input_validator=Payload)
def user_created(input: Payload, ctx: Context) -> dict[str, Any]:
    return {"id": input.id, "note": input.note}


@hatchet.task(name="UserAny", on_events=["user:*"], input_validator=Payload)
def user_any(input: Payload, ctx: Context) -> dict[str, Any]:
    return {"id": input.id}


@hatchet.task(name="OrderPaid", on_events=["order:paid", "order:refunded"], input_validator=Payload)
def order_paid(input: Payload, ctx: Context) -> dict[str, Any]:
    return {"id": input.id}


def main() -> None:
    worker = hatchet.worker(NAME, slots=20, workflows=[tick, declared, user_created, user_any, order_paid])
    worker.start()


if __name__ == "__main__":
    main()
