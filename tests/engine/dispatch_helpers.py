"""Helpers for the dispatch tests: official hatchet-sdk workers and clients in real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from hatchet_client.engine import Engine

WORKER_APP = Path(__file__).with_name("worker_app.py")
T = TypeVar("T")


def sdk_env(engine: Engine) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATCHET_CLIENT_")}
    env.update(HATCHET_CLIENT_TOKEN=engine.token(), HATCHET_CLIENT_TLS_STRATEGY="none")
    return env


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60.0, every: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


class WorkerProcess:
    """`python worker_app.py NAME SLOTS MARKERS` in its own process group (the SDK spawns a listener child)."""

    def __init__(self, engine: Engine, name: str, slots: int, markers: Path, log: Path) -> None:
        self.name = name
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER_APP), name, str(slots), str(markers)],
            env=sdk_env(engine),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()


def active_workers(engine: Engine) -> list[str]:
    rows = engine.store.read(lambda conn: conn.execute("SELECT name FROM workers WHERE status = 'ACTIVE'").fetchall())
    return sorted(row[0] for row in rows)


def wait_listening(engine: Engine, name: str, timeout: float = 60.0) -> None:
    wait_for(f"worker {name} to register", lambda: name in active_workers(engine), timeout)


def run_sdk(engine: Engine, code: str, timeout: float = 120.0) -> dict[str, Any]:
    """Run official-SDK client code in a subprocess; it prints one `RESULT <json>` line."""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=sdk_env(engine), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return dict(json.loads(line.removeprefix("RESULT ")))


def run_status(engine: Engine, run_id: str) -> str | None:
    run = engine.store.get_run(run_id)
    return None if run is None else run.status


def settled(engine: Engine, run_id: str) -> str | None:
    status = run_status(engine, run_id)
    return status if status in ("COMPLETED", "FAILED", "CANCELLED") else None


@contextlib.contextmanager
def sdk_worker(engine: Engine, script: Path, name: str, *args: str, log: Path) -> Iterator[None]:
    """An official-SDK worker (`python SCRIPT NAME ARGS...`) in its own process group, registered before the block
    and killed after it; its output goes to `log`."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(script), name, *args],
            env=sdk_env(engine),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_listening(engine, name)
            yield
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
