"""Following runs to the end: poll at a bounded rate until every run has finished or a deadline passes, and
ride out an engine that stops answering for a while (up to a bound, then a clear error)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hatchet_manifest.outcomes.read import OutcomesError, Reader, Snapshot
from hatchet_manifest.outcomes.tally import Outcome

EXIT_CODES: dict[Outcome, int] = {"completed": 0, "failed": 5, "unfinished": 6}


@dataclass(frozen=True)
class FollowOptions:
    timeout: float | None = None  # seconds; None: until every run has finished
    interval: float = 2.0  # at least this many seconds between polls
    max_rps: float = 2.0  # requests per second, at most, on average (a poll costs one per manifest)
    give_up: float = 60.0  # seconds without an answer before giving up
    settle: float = 30.0  # seconds runs may stay not found (not visible yet) before counting as lost
    # After a replay of this many failed or cancelled runs: Hatchet replays asynchronously, so while as many are
    # still failed or cancelled as before, and for at most `settle` seconds, the replay has not been seen yet.
    replayed_from: int | None = None


@dataclass
class Followed:
    """Where following stopped: the last snapshot (with the failed runs listed) and why."""

    last: Snapshot
    outcome: Outcome
    timed_out: bool
    polls: int
    requests: int

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


class Follower:
    """`follow()` yields a snapshot per poll; `result` is set once it stops."""

    def __init__(
        self,
        reader: Reader,
        options: FollowOptions,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reader = reader
        self.options = options
        self._clock = clock
        self._sleep = sleep
        self.result: Followed | None = None

    def gap(self) -> float:
        """Seconds between polls: the interval, or longer when one poll costs more requests than the rate
        allows in it."""
        per_poll = max(1, len(self.reader.scope.asked))
        return max(self.options.interval, per_poll / self.options.max_rps)

    def follow(self) -> Iterator[Snapshot]:
        opts = self.options
        start = self._clock()
        deadline = None if opts.timeout is None else start + opts.timeout
        last_answer = start
        polls = 0
        while True:
            try:
                tallies, made = self.reader.tallies()
            except OutcomesError as exc:
                now = self._clock()
                if now - last_answer >= opts.give_up:
                    raise OutcomesError(f"{exc} (no answer for {opts.give_up:g}s: gave up)") from None
                self._pause(now, deadline, min(self.gap(), opts.give_up - (now - last_answer)))
                if deadline is not None and self._clock() >= deadline:
                    raise OutcomesError(f"{exc} (still no answer when the wait timed out)") from None
                continue
            self.reader.requests += made
            polls += 1
            now = last_answer = self._clock()
            settled = now - start >= opts.settle
            snapshot = Snapshot(tallies, requests=made)
            outcome = snapshot.total.outcome(settled=settled)
            stale = (
                opts.replayed_from is not None
                and snapshot.total.failed + snapshot.total.cancelled >= opts.replayed_from
            )
            if outcome == "failed" and not settled and stale:
                outcome = "unfinished"  # the replayed runs have not left their old status yet
            timed_out = deadline is not None and now >= deadline and outcome == "unfinished"
            if outcome != "unfinished" or timed_out:
                final = self.reader.snapshot(with_failed=True) if outcome == "failed" or timed_out else snapshot
                outcome = final.total.outcome(settled=settled or timed_out)  # by the newest counts
                self.result = Followed(final, outcome, timed_out, polls, self.reader.requests)
                yield final
                return
            yield snapshot
            self._pause(now, deadline, self.gap())

    def _pause(self, now: float, deadline: float | None, seconds: float) -> None:
        if deadline is not None:
            seconds = min(seconds, max(0.0, deadline - now))
        if seconds > 0:
            self._sleep(seconds)
