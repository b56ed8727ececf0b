"""When a REST request is sent again, and after how long: within the request's one total deadline, never past it.

Retried: HTTP 429 (the server asks to slow down: it did not handle the request), 502, 503 and 504 (a proxy, or
the server, is briefly unavailable), and a connection reset (ECONNRESET). A request that may have had an effect
is sent again only when it is idempotent: every GET, and the POSTs their callers declare idempotent (a cancel or
replay by ids: see tasks.py); otherwise only a 429, or a reset before the request left, is retried.

The wait doubles from 0.25 s (at most 4 s, with jitter so that clients do not retry in step), or is what the
answer's `Retry-After` says (seconds or an HTTP date), capped at 30 s. When the wait would pass the deadline the
last error is raised at once: a deadline is a promise to the caller.
"""

from __future__ import annotations

import email.utils
import math
import random
from datetime import UTC, datetime

from hatchet_client.errors import RestError

RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 8
FIRST_DELAY = 0.25
MAX_DELAY = 4.0
MAX_RETRY_AFTER = 30.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(min(int(text), 10**6))
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    wait = (moment - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, wait) if math.isfinite(wait) else None


def should_retry(error: RestError, *, sent: bool, reset: bool, idempotent: bool) -> bool:
    """Whether this failure of one attempt may be followed by another attempt."""
    if error.reason == "http_status" and error.status in RETRY_STATUSES:
        return error.status == 429 or idempotent
    if reset:
        return idempotent or not sent
    return False


def delay(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt 1 is the first)."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    backoff = min(MAX_DELAY, FIRST_DELAY * 2.0 ** (attempt - 1))
    return backoff * random.uniform(0.5, 1.0)  # jitter, not a secret
