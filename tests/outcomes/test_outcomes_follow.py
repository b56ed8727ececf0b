"""The follower against a scripted Hatchet REST server (real HTTP on 127.0.0.1), as the real engine answers when it
lags: a replay that shows up a poll late, runs not visible yet. Only the clock is faked."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from hatchet_client import Hatchet

from hatchet_manifest.ledger import PendingRow, Target, open_ledger
from hatchet_manifest.outcomes.follow import Follower, FollowOptions
from hatchet_manifest.outcomes.read import Reader, Scope
from tests.sdk.scripted_http import Request, ScriptedServer, http_answer, serve

__all__ = ["serve"]

TOKEN_TENANT = "707d0855-80ab-4e1f-a156-f1c4546cbf52"
T = Target(TOKEN_TENANT, "127.0.0.1:7077")


def metrics(**counts: int) -> list[dict[str, object]]:
    return [
        {"status": s, "count": counts.get(s.lower(), 0)}
        for s in ("QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED")
    ]


def scripted(answers: list[list[dict[str, object]]]) -> Callable[[socket.socket, Request], None]:
    """Answers the metrics in turn (the last one again once the script is used up); a listing of nothing."""
    turn = [0]

    def handle(conn: socket.socket, request: Request) -> None:
        if request.path.endswith("/task-metrics"):
            value: object = answers[min(turn[0], len(answers) - 1)]
            turn[0] += 1
        else:
            value = {"pagination": {"current_page": 1, "next_page": 2, "num_pages": 1}, "rows": []}
        conn.sendall(http_answer(json.dumps(value).encode()))

    return handle


def token() -> str:
    """An unsigned JWT-shaped token for the tenant (the scripted server checks nothing)."""
    body = {"sub": TOKEN_TENANT, "server_url": "http://127.0.0.1:1", "grpc_broadcast_address": "127.0.0.1:7077"}
    part = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{part}.c2ln"


def follow(server: ScriptedServer, tmp_path: Path, options: FollowOptions, recorded: int = 5) -> tuple[str, int]:
    with open_ledger(None, tmp_path / "state") as ledger:
        keys = [f"k{i}" for i in range(recorded)]
        ledger.record_pending(T, [PendingRow(k, "d", "m", "m.yaml") for k in keys])
        ledger.record_submitted(T, [(k, f"00000000-0000-4000-8000-00000000000{i}") for i, k in enumerate(keys)])
        now = [0.0]

        def sleep(seconds: float) -> None:
            now[0] += seconds

        with Hatchet(token=token(), tls_strategy="none", server_url=server.url, environ={}) as h:
            follower = Follower(Reader(h, Scope.of(ledger, T, ["m"]), ledger), options, lambda: now[0], sleep)
            polls = len(list(follower.follow()))
    assert follower.result is not None
    return follower.result.outcome, polls


def test_a_replay_seen_a_poll_late_is_waited_for(serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    server = serve(scripted([metrics(failed=5), metrics(failed=5), metrics(queued=5), metrics(completed=5)]))
    assert follow(server, tmp_path, FollowOptions(replayed_from=5)) == ("completed", 4)


def test_without_a_replay_failed_runs_end_the_wait_at_once(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    server = serve(scripted([metrics(failed=2, completed=3)]))
    outcome, polls = follow(server, tmp_path, FollowOptions())
    assert (outcome, polls) == ("failed", 1)


def test_runs_not_visible_yet_are_waited_for_then_counted_lost(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    visible = serve(scripted([metrics(completed=3), metrics(completed=5)]))
    assert follow(visible, tmp_path / "a", FollowOptions()) == ("completed", 2)
    lost = serve(scripted([metrics(completed=3)]))
    outcome, polls = follow(lost, tmp_path / "b", FollowOptions(interval=2.0, settle=30.0))
    assert outcome == "failed" and polls == 16  # every 2 s until 30 s have passed


def test_a_timeout_ends_with_the_runs_unfinished(serve: Callable[..., ScriptedServer], tmp_path: Path) -> None:
    server = serve(scripted([metrics(running=5)]))
    assert follow(server, tmp_path, FollowOptions(timeout=10.0, interval=2.0)) == ("unfinished", 6)


@pytest.mark.parametrize("manifests", [1, 8])
def test_polls_are_spaced_to_the_request_rate(manifests: int) -> None:
    class Stub:
        asked = tuple(f"m{i}" for i in range(manifests))

    class R:
        scope = Stub()

    follower = Follower(R(), FollowOptions(interval=2.0, max_rps=2.0))  # type: ignore[arg-type]
    assert follower.gap() == max(2.0, manifests / 2.0)
