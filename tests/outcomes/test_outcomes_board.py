"""The live board on a real terminal (a pty), and following through an engine that stops answering."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from hatchet_client import Hatchet
from hatchet_client.engine import Engine

from hatchet_manifest.board import Board, bar, duration
from hatchet_manifest.ledger import PendingRow, Target, open_ledger
from hatchet_manifest.outcomes.follow import Follower, FollowOptions
from hatchet_manifest.outcomes.read import OutcomesError, Reader, Scope, Snapshot
from hatchet_manifest.outcomes.tally import Tally
from tests.conftest import RunCli
from tests.outcomes.conftest import cli_env, launch_manifest
from tests.outcomes.test_outcomes_cli import FAST


def read_pty(master: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


def test_the_board_redraws_in_place_on_a_terminal(
    run_cli: RunCli, engine: Engine, worker: None, tmp_path: Path
) -> None:
    manifest = launch_manifest(tmp_path / "m.yaml", "on-a-tty", 3, seconds=5)  # still running when watched
    env = cli_env(engine, tmp_path / "state")
    assert run_cli("apply", str(manifest), "--yes", "--engine", "remote", env=env).exit_code == 0
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hatchet_manifest", "status", str(manifest), "--watch", "--engine", "remote", *FAST],
        env={**env, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    try:
        shown = read_pty(master, proc, 60).decode()
        stdout = proc.communicate(timeout=30)[0].decode()
    finally:
        os.close(master)
    assert proc.returncode == 0, shown
    assert "\x1b[2Kon-a-tty [" in shown  # a board line
    assert "\x1b[1F" in shown  # drawn again over itself
    last = shown.rsplit("\x1b[2K", 1)[-1]
    assert last.startswith("on-a-tty [####################] 100%  3 completed, 0 failed")
    assert stdout.splitlines()[1].split() == ["on-a-tty", "0", "0", "3", "0", "0", "0"]


def test_bars_durations_and_summary_lines() -> None:
    t = Tally("m", recorded=10, completed=5, failed=2, running=3)
    assert bar(t, 10) == "#####xx..."
    assert [duration(s) for s in (5, 65, 3700)] == ["5s", "1m05s", "1h01m"]
    now = [0.0]

    class Lines:
        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> int:
            self.text += s
            return len(s)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    out = Lines()
    board = Board(out, every=5.0, clock=lambda: now[0])  # type: ignore[arg-type]
    board.update(Snapshot((t,)))
    now[0] = 1.0
    board.update(Snapshot((Tally("m", recorded=10, completed=6, failed=2, running=2),)))  # within 5 s: not shown
    now[0] = 10.0
    board.update(Snapshot((Tally("m", recorded=10, completed=8, failed=2),)))
    assert out.text.splitlines() == [
        "runs: 7/10 finished: 5 completed, 2 failed, 0 cancelled, 3 running, 0 queued; 0.0 runs/s",
        "runs: 10/10 finished: 8 completed, 2 failed, 0 cancelled, 0 running, 0 queued; 0.3 runs/s",
    ]


def test_following_gives_up_when_the_engine_stops_answering(engine: Engine, tmp_path: Path) -> None:
    """A real REST endpoint that refuses connections (the engine is asked on a closed port); only the clock is
    faked, so that the bound of 60 s passes at once."""
    target = Target(engine.tenant_id, "127.0.0.1:1")
    with open_ledger(None, tmp_path / "state") as ledger:
        ledger.record_pending(target, [PendingRow("k", "d", "gone", "gone.yaml")])
        ledger.record_submitted(target, [("k", "00000000-0000-4000-8000-000000000001")])
        hatchet = Hatchet(token=engine.token(), tls_strategy="none", server_url="http://127.0.0.1:1", environ={})
        now = [0.0]
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            now[0] += seconds

        follower = Follower(
            Reader(hatchet, Scope.of(ledger, target, ["gone"]), ledger),
            FollowOptions(interval=2.0, give_up=60.0),
            clock=lambda: now[0],
            sleep=sleep,
        )
        try:
            list(follower.follow())
        except OutcomesError as exc:
            message = str(exc)
        else:
            raise AssertionError("following an engine that never answers must give up")
        finally:
            hatchet.close()
    assert "no answer for 60s: gave up" in message
    assert engine.token() not in message
    assert 60.0 <= now[0] < 63.0 and all(s <= 2.0 for s in slept)
