"""Per-target locks across processes: exclusion, waiting, a clear message, and release when the holder dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import Ledger, LedgerLockedError, Target
from tests.ledger.conftest import FakeClock, OpenLedger, spawn_worker, stop_worker

T = Target("tenant", "127.0.0.1:7070")
OTHER = Target("tenant", "127.0.0.1:7071")


@pytest.fixture
def holder(ledger_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding T's lock until its stdin closes."""
    proc = spawn_worker("hold", ledger_url, str(tmp_path / "state"), T.tenant_id, T.address)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "locked\n", proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        stop_worker(proc)


def test_a_held_lock_is_refused_naming_its_holder(ledger: Ledger, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LedgerLockedError) as caught, ledger.lock(T, wait=0.3):
        pytest.fail("got a lock another process holds")
    error = caught.value
    assert isinstance(error, LedgerError) and error.target == T and error.waited == 0.3
    assert error.holder is not None
    assert (error.holder.host, error.holder.pid) == (socket.gethostname(), holder.pid)
    assert str(error).startswith(
        f"the ledger for target {T.id} is locked (held by host {socket.gethostname()}, pid {holder.pid}, since "
    )
    assert str(error).endswith("another apply is running against this target; gave up after waiting 0.3s")
    with ledger.lock(OTHER):  # another target is not blocked
        pass


def test_a_waiter_gets_the_lock_once_the_holder_releases_it(ledger: Ledger, holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    threading.Timer(0.3, holder.stdin.close).start()
    with ledger.lock(T, wait=30):
        assert holder.stdout is not None and holder.stdout.readline() == "released\n"


def test_kill_9_releases_the_lock(ledger: Ledger, holder: subprocess.Popen[str]) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with ledger.lock(T, wait=30):
        pass


def test_two_handles_in_one_process_exclude_each_other(open_store: OpenLedger) -> None:
    first, second = open_store(), open_store()
    with first.lock(T):
        with pytest.raises(LedgerLockedError) as caught, second.lock(T):
            pytest.fail("two handles held one lock")
        assert caught.value.holder is not None and caught.value.holder.pid == os.getpid()
    with second.lock(T):
        pass


def test_the_lock_is_released_when_the_block_raises(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.lock(T):
        raise RuntimeError("boom")
    with ledger.lock(T):
        pass


def test_the_holder_is_recorded_with_the_time_it_took_the_lock(open_store: OpenLedger, clock: FakeClock) -> None:
    first, second = open_store(), open_store()
    with first.lock(T), pytest.raises(LedgerLockedError) as caught, second.lock(T):
        pass
    assert caught.value.holder is not None and caught.value.holder.since == clock.now


def test_processes_taking_turns_are_never_inside_together(ledger_url: str, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    workers = [
        spawn_worker("turns", ledger_url, str(tmp_path / "state"), T.tenant_id, T.address, str(counter), "8")
        for _ in range(3)
    ]
    results = []
    try:
        for worker in workers:
            _, err = worker.communicate(timeout=120)
            results.append((worker.returncode, err))
    finally:
        for worker in workers:
            stop_worker(worker)
    assert results == [(0, "")] * 3
    assert counter.read_text() == "0"
