"""The engine adds a W3C `traceparent` to every run's metadata, as Hatchet does: tests check it, then compare the rest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TRACEPARENT = re.compile(r"00-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-01")


def user_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata a run was sent with: the engine's `traceparent` is checked (W3C format, non-zero ids) and left
    out. Fails when there is none."""
    rest = dict(metadata)
    value = rest.pop("traceparent", None)
    assert isinstance(value, str), f"no traceparent in {dict(metadata)!r}"
    match = TRACEPARENT.fullmatch(value)
    assert match is not None, f"traceparent {value!r} is not W3C"
    assert match["trace"] != "0" * 32 and match["span"] != "0" * 16, value
    return rest
