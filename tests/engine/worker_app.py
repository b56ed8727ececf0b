"""An official hatchet-sdk worker for the dispatch tests, run as a real process:

    python tests/engine/worker_app.py NAME SLOTS MARKER_DIR

HATCHET_CLIENT_TOKEN / HATCHET_CLIENT_TLS_STRATEGY=none point it at the engine. Tasks write marker files in
MARKER_DIR (`<task>-<run id>-<attempt>.<event>`) so tests can see what ran where, without timing assertions.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from hatchet_sdk import Context, EmptyModel, Hatchet, NonRetryableException
from pydantic import BaseModel

NAME, SLOTS, MARKERS = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
hatchet = Hatchet()


def mark(ctx: Context, task: str, event: str, text: str = "") -> None:
    (MARKERS / f"{task}-{ctx.workflow_run_id}-{ctx.retry_count}.{event}").write_text(f"{NAME} {os.getpid()} {text}")


class Numbers(BaseModel):
    n: int = 0
    fail_times: int = 0
    seconds: float = 0.0
    fatal: bool = False
    hold_on: str = ""  # the worker of this name sleeps 120 s instead of `seconds` (to be killed mid-task)


@hatchet.task(name="Echo", input_validator=Numbers)
def echo(input: Numbers, ctx: Context) -> dict[str, Any]:
    mark(ctx, "echo", "ran")
    return {"n": input.n, "worker": NAME}


dag = hatchet.workflow(name="Diamond", input_validator=Numbers)


@dag.task()
def top(input: Numbers, ctx: Context) -> dict[str, Any]:
    return {"v": input.n + 1}


@dag.task(parents=[top])
def left(input: Numbers, ctx: Context) -> dict[str, Any]:
    return {"v": ctx.task_output(top)["v"] * 2}


@dag.task(parents=[top])
def right(input: Numbers, ctx: Context) -> dict[str, Any]:
    return {"v": ctx.task_output(top)["v"] * 3}


@dag.task(parents=[left, right])
def bottom(input: Numbers, ctx: Context) -> dict[str, Any]:
    return {"sum": ctx.task_output(left)["v"] + ctx.task_output(right)["v"]}


flaky = hatchet.workflow(name="Flaky", input_validator=Numbers)


@flaky.task(retries=2, backoff_factor=1.5, backoff_max_seconds=2)
def attempt(input: Numbers, ctx: Context) -> dict[str, Any]:
    mark(ctx, "attempt", "ran")
    if input.fatal:
        raise NonRetryableException(f"fatal error for n={input.n}")
    if ctx.retry_count < input.fail_times:
        raise ValueError(f"boom {ctx.retry_count} for n={input.n}")
    return {"attempts": ctx.retry_count + 1}


@flaky.on_failure_task()
def cleanup(input: Numbers, ctx: Context) -> dict[str, Any]:
    mark(ctx, "cleanup", "ran", str(ctx.task_run_errors))
    return {"cleaned": True}


@hatchet.task(name="Slow", input_validator=Numbers, execution_timeout=timedelta(seconds=2))
async def slow(input: Numbers, ctx: Context) -> dict[str, Any]:
    mark(ctx, "slow", "started")
    try:
        await asyncio.sleep(input.seconds)
    except asyncio.CancelledError:
        mark(ctx, "slow", "cancelled")
        raise
    return {"slept": input.seconds}


@hatchet.task(name="Sleeper", input_validator=Numbers, execution_timeout=timedelta(seconds=60))
def sleeper(input: Numbers, ctx: Context) -> dict[str, Any]:
    mark(ctx, "sleeper", "started")
    deadline = time.monotonic() + (120.0 if input.hold_on == NAME else input.seconds)
    while time.monotonic() < deadline:
        if ctx.exit_flag:
            mark(ctx, "sleeper", "cancelled")
            return {"cancelled": True}
        time.sleep(0.05)
    mark(ctx, "sleeper", "done")
    return {"slept": input.seconds, "worker": NAME}


@hatchet.task(name="Outcome", input_validator=Numbers)
def outcome(input: Numbers, ctx: Context) -> dict[str, Any]:
    if input.n % 5 == 0:
        raise NonRetryableException(f"multiple of five: {input.n}")
    return {"double": 2 * input.n}


@hatchet.task(name="Noop")
def noop(input: EmptyModel, ctx: Context) -> dict[str, Any]:
    return {}


def main() -> None:
    worker = hatchet.worker(NAME, slots=SLOTS, workflows=[echo, dag, flaky, slow, sleeper, outcome, noop])
    worker.start()


if __name__ == "__main__":
    main()
