"""The live board of `status --watch`, `apply --wait` and `retry --wait`, on stderr: on a terminal, one line per
manifest (counts, a bar, rate and ETA) and a total, redrawn in place; without one, a summary line every few
seconds (CI logs, and TERM=dumb). Manifest names are escaped: they come from files under review."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from hatchet_manifest.outcomes.read import Snapshot
from hatchet_manifest.outcomes.tally import Tally
from hatchet_manifest.output import redraws
from hatchet_manifest.text import escape, shorten

BAR = 20  # cells
WINDOW = 30.0  # seconds of history the rate is taken over


def counts_text(t: Tally) -> str:
    text = (
        f"{t.completed} completed, {t.failed} failed, {t.cancelled} cancelled, {t.running} running, {t.queued} queued"
    )
    if t.not_found:
        text += f", {t.not_found} not found"
    return text


def bar(t: Tally, cells: int = BAR) -> str:
    """Completed as '#', failed or cancelled as 'x', the rest as '.'."""
    whole = max(t.recorded, t.finished + t.unfinished, 1)
    good = round(cells * t.completed / whole)
    bad = min(cells - good, round(cells * (t.failed + t.cancelled) / whole))
    return "#" * good + "x" * bad + "." * (cells - good - bad)


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class Rate:
    """Finished runs per second over the last WINDOW seconds, per manifest name."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[tuple[float, int]]] = {}

    def add(self, name: str, at: float, finished: int) -> float:
        """Runs/s after noting `finished` runs at `at`."""
        seen = self._seen.setdefault(name, deque())
        seen.append((at, finished))
        while len(seen) > 2 and at - seen[0][0] > WINDOW:
            seen.popleft()
        first_at, first = seen[0]
        elapsed = at - first_at
        return (finished - first) / elapsed if elapsed > 0 else 0.0


class Board:
    def __init__(self, stream: TextIO, every: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.tty = redraws(stream)
        self.every = every
        self._clock = clock
        self._rate = Rate()
        self._drawn = 0  # lines drawn last time (terminal)
        self._last_line = -float("inf")

    def update(self, snapshot: Snapshot, *, final: bool = False) -> None:
        now = self._clock()
        if self.tty:
            self._draw(snapshot, now, final)
        elif final or now - self._last_line >= self.every:
            self._last_line = now
            self.stream.write(self.summary(snapshot, now) + "\n")
            self.stream.flush()

    def line(self, t: Tally, now: float, width: int) -> str:
        rate = self._rate.add(t.manifest, now, t.finished)
        eta = f"ETA {duration(t.unfinished / rate)}" if rate > 0 and t.unfinished else ""
        name = shorten(escape(t.manifest), width)
        pct = 100 * t.finished // t.recorded if t.recorded else 100
        return f"{name:<{width}} [{bar(t)}] {pct:3d}%  {counts_text(t)}  {rate:,.1f}/s {eta}".rstrip()

    def summary(self, snapshot: Snapshot, now: float) -> str:
        t = snapshot.total
        rate = self._rate.add("\0total", now, t.finished)
        eta = f", ETA {duration(t.unfinished / rate)}" if rate > 0 and t.unfinished else ""
        return f"runs: {t.finished}/{t.recorded} finished: {counts_text(t)}; {rate:,.1f} runs/s{eta}"

    def _draw(self, snapshot: Snapshot, now: float, final: bool) -> None:
        rows = list(snapshot.tallies)
        if len(rows) > 1:
            rows.append(snapshot.total)
        width = min(40, max(len(escape(t.manifest)) for t in rows))
        lines = [self.line(t, now, width) for t in rows]
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")  # back to the first line drawn
        out.extend(f"\x1b[2K{line}\n" for line in lines)
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = 0 if final else len(lines)
