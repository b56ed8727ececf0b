"""Workers as the scheduler sees them: their actions, slots, heartbeats and the stream their actions go out on.

A worker's record lives in the `workers` table (so that it reconnects after an engine restart with the id it was
given); what changes many times a second (slots in use, the last heartbeat, the stream) lives here, owned by the
scheduler thread. Heartbeats are written from RPC threads: one float assignment, read by the scheduler.
"""

from __future__ import annotations

import queue
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# What a stream's queue carries: an AssignedAction to send, or None: the stream is replaced or the engine stops.
StreamItem = Any


class WorkerStream:
    """One ListenV2 call: the scheduler puts actions in, the call's thread sends them."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.queue: queue.SimpleQueue[StreamItem] = queue.SimpleQueue()
        self.closed = False

    def send(self, action: Any) -> None:
        self.queue.put(action)

    def close(self) -> None:
        self.closed = True
        self.queue.put(None)

    def drain(self) -> list[Any]:
        """What was put in and never sent (the stream ended first)."""
        items: list[Any] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return items
            if item is not None:
                items.append(item)


@dataclass(eq=False)
class Worker:
    worker_id: str
    name: str
    actions: frozenset[str]
    capacity: Mapping[str, int]
    last_heartbeat: float
    stream: WorkerStream | None = None
    used: dict[str, int] = field(default_factory=dict)
    held: dict[int, Mapping[str, int]] = field(default_factory=dict)  # task id -> slots it holds
    assigned_total: int = 0

    def fits(self, slots: Mapping[str, int]) -> bool:
        return all(self.used.get(kind, 0) + units <= self.capacity.get(kind, 0) for kind, units in slots.items())

    def free(self, kind: str = "default") -> int:
        return self.capacity.get(kind, 0) - self.used.get(kind, 0)

    def has_free(self) -> bool:
        return any(self.free(kind) > 0 for kind in self.capacity)

    def hold(self, task_id: int, slots: Mapping[str, int]) -> None:
        if task_id in self.held:
            return
        self.held[task_id] = slots
        for kind, units in slots.items():
            self.used[kind] = self.used.get(kind, 0) + units
        self.assigned_total += 1

    def release(self, task_id: int) -> None:
        slots = self.held.pop(task_id, None)
        for kind, units in (slots or {}).items():
            self.used[kind] = self.used.get(kind, 0) - units

    @property
    def listening(self) -> bool:
        return self.stream is not None and not self.stream.closed


def slot_capacity(slot_config: Mapping[str, int], slots: int) -> dict[str, int]:
    """A worker's capacity per slot kind: its slot_config, or the legacy `slots` count as default slots."""
    capacity = {kind: units for kind, units in slot_config.items() if units > 0}
    if not capacity and slots > 0:
        capacity = {"default": slots}
    return capacity
