"""Who waits for which run to finish (Dispatcher/SubscribeToWorkflowRuns): the scheduler announces settled runs."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any


class Subscription:
    """One SubscribeToWorkflowRuns call: WorkflowRunEvents to send (None: the engine stops)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.sent: set[str] = set()


class RunWatchers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_run: dict[str, set[Subscription]] = {}

    def watch(self, run_id: str, sub: Subscription) -> None:
        with self._lock:
            self._by_run.setdefault(run_id, set()).add(sub)

    def forget(self, sub: Subscription) -> None:
        with self._lock:
            for run_id in [r for r, subs in self._by_run.items() if sub in subs]:
                subs = self._by_run[run_id]
                subs.discard(sub)
                if not subs:
                    del self._by_run[run_id]

    def announce(self, finished: Iterable[tuple[str, int]], event: Callable[[str, int], Any]) -> None:
        """Hand each watched run's WorkflowRunEvent to its subscriptions (each run once: it is settled)."""
        for run_id, seq in finished:
            with self._lock:
                subs = self._by_run.pop(run_id, set())
            if subs:
                message = event(run_id, seq)
                for sub in subs:
                    sub.queue.put(message)

    def close(self) -> None:
        with self._lock:
            subs = {s for group in self._by_run.values() for s in group}
            self._by_run.clear()
        for sub in subs:
            sub.queue.put(None)
