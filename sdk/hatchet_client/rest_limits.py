"""The bounds of one REST request: a total deadline, a response-size cap, a JSON nesting depth."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hatchet_client.errors import ConfigError

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_DEPTH = 128
MAX_DEPTH_LIMIT = 500  # below the interpreter's recursion limit, which the JSON parser recurses against


@dataclass(frozen=True, slots=True)
class RestLimits:
    """Bounds of one REST request: `timeout` seconds in total, at most `max_response_bytes` of body, JSON nested
    at most `max_depth` levels (1..500)."""

    timeout: float = DEFAULT_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH

    def __post_init__(self) -> None:
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)):
            raise ConfigError(f"the REST timeout must be a number of seconds, not {self.timeout!r}")
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            raise ConfigError(f"the REST timeout must be a positive number of seconds, not {self.timeout!r}")
        if isinstance(self.max_response_bytes, bool) or not isinstance(self.max_response_bytes, int):
            raise ConfigError(f"the REST response size cap must be an integer, not {self.max_response_bytes!r}")
        if self.max_response_bytes <= 0:
            raise ConfigError(f"the REST response size cap must be positive, not {self.max_response_bytes}")
        if isinstance(self.max_depth, bool) or not isinstance(self.max_depth, int):
            raise ConfigError(f"the JSON depth limit must be an integer, not {self.max_depth!r}")
        if not 1 <= self.max_depth <= MAX_DEPTH_LIMIT:
            raise ConfigError(f"the JSON depth limit must be between 1 and {MAX_DEPTH_LIMIT}, not {self.max_depth}")

    def with_timeout(self, timeout: float | None) -> RestLimits:
        """These limits with another timeout (None: unchanged)."""
        return self if timeout is None else replace(self, timeout=timeout)
