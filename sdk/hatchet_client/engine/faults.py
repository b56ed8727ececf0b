"""Faults the engine injects on request, so clients can prove their no-duplicate and partial-failure rules.

A fault hits the N-th trigger call (TriggerWorkflow or BulkTriggerWorkflow, 1-based) counted from the moment it
was injected, and the `times - 1` calls after it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal

import grpc

from hatchet_client.engine.errors import EngineError

FaultKind = Literal["refuse", "fail_after_commit", "stall"]
ENV_VAR = "HATCHET_ENGINE_FAULTS"
_KINDS = ("refuse", "fail_after_commit", "stall")


@dataclass(frozen=True, slots=True)
class Fault:
    """`refuse`: abort with `code` before writing; `fail_after_commit`: commit, then abort with `code`;
    `stall`: sleep `seconds`, then handle the call normally."""

    kind: FaultKind
    on_call: int = 1
    times: int = 1
    seconds: float = 0.0
    code: str = "UNAVAILABLE"

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise EngineError(f"fault kind {self.kind!r} is not one of {', '.join(_KINDS)}")
        if self.on_call < 1 or self.times < 1:
            raise EngineError("fault on_call and times must be at least 1")
        if self.seconds < 0:
            raise EngineError("fault seconds must not be negative")
        if self.code not in grpc.StatusCode.__members__ or self.code == "OK":
            raise EngineError(f"fault code {self.code!r} is not a gRPC status code name other than OK")

    @property
    def status_code(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.code]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def faults_from_json(text: str) -> list[Fault]:
    """Parse the HATCHET_ENGINE_FAULTS value: a JSON list of Fault objects."""
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise EngineError(f"{ENV_VAR} is not valid JSON: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise EngineError(f"{ENV_VAR} must be a JSON list of objects")
    try:
        return [Fault(**item) for item in items]
    except TypeError as exc:
        raise EngineError(f"{ENV_VAR}: {exc}") from None


class FaultSchedule:
    """Counts trigger calls and says which armed faults hit each one. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._armed: list[tuple[int, Fault]] = []  # (calls counted when injected, fault)

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._armed.append((self._calls, fault))

    def next_call(self) -> list[Fault]:
        """Count one trigger call; return the faults that hit it (in injection order)."""
        with self._lock:
            self._calls += 1
            n = self._calls
            hits = [f for base, f in self._armed if base + f.on_call <= n < base + f.on_call + f.times]
            self._armed = [(base, f) for base, f in self._armed if n < base + f.on_call + f.times - 1]
            return hits
