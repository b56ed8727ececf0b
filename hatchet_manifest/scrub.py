"""Secret values kept out of everything the tool writes, as CI systems mask the secrets registered with them.

Once a secret's value is read (`secret()` in a template, or the values of the secrets the operator allows, read
when a command starts), it is registered here for the life of the process. The CLI's output streams, its error
paths, the ledger's error texts and the messages render workers send back are scrubbed of every registered
value: each occurrence, in clear or as JSON, `repr`, bytes-`repr`, escaped or URL-encoded text shows, is
replaced by `***`; and where a message or a table shortened a value (`abc...`, or reprlib's `abc...xyz`), the part
of a secret next to the `...` is masked too. A stream keeps back the end of a write that could be the start of a
secret until the next write says whether it is (a value split across writes is still masked), and writes it when
it is released.

Values shorter than MIN_LENGTH are never registered: masking "ab" everywhere would make output unreadable, and
`secret()` refuses them (a secret that short cannot be kept out of output).

The bottom floor: imports nothing of the package.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any, TextIO, cast

MASK = "***"
MIN_LENGTH = 4

_lock = threading.Lock()
_values: set[str] = set()
_variants: set[str] = set()
_pattern: re.Pattern[str] | None = None
_by_first: dict[str, tuple[str, ...]] = {}  # first character -> variants starting with it (for the hold-back)
_longest = 0
_ordered: tuple[str, ...] = ()
CUT = "..."  # how text.shorten and reprlib mark a value cut short


def variants(value: str) -> set[str]:
    """The spellings of `value` that output can hold: as is, JSON-escaped (ASCII or not; YAML's double-quoted
    style too), repr and ascii, bytes repr, escaped for terminals (control characters as `\\x1b`), URL-encoded,
    YAML single-quoted."""
    out = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        ascii(value)[1:-1],
        "".join(c if c.isprintable() else repr(c)[1:-1] for c in value),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        value.replace("'", "''"),  # YAML's single-quoted style
    }
    with contextlib.suppress(UnicodeError):
        out.add(repr(value.encode("utf-8", "surrogateescape"))[2:-1])
    return {v for v in out if len(v) >= MIN_LENGTH}


def register(value: str) -> None:
    """Mask `value` (and its spellings) in everything scrubbed from now on, in this process."""
    global _pattern, _longest, _ordered, _by_first
    if len(value) < MIN_LENGTH or value in _values:
        return
    with _lock:
        _values.add(value)
        _variants.update(variants(value))
        ordered = sorted(_variants, key=len, reverse=True)  # the longest spelling wins where two overlap
        firsts: dict[str, list[str]] = {}
        for v in ordered:
            firsts.setdefault(v[0], []).append(v)
        # each replaced whole, never changed in place: streams written from other threads read them unlocked
        _by_first = {k: tuple(vs) for k, vs in firsts.items()}
        _ordered = tuple(ordered)
        _longest = len(ordered[0])
        _pattern = re.compile("|".join(map(re.escape, ordered)))  # last: registered() is true once all is ready


def registered() -> bool:
    return _pattern is not None


def scrub(text: str) -> str:
    """`text` with every registered secret (in any of its spellings) replaced by `***`."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    text = pattern.sub(MASK, text)
    return _mask_cuts(text) if CUT in text else text


def _mask_cuts(text: str) -> str:
    """`text` with the part of a secret's spelling that ends at a `...` or starts after one masked (at least
    MIN_LENGTH characters of it): what is left of a value that a message or a table cut short."""
    spans: list[tuple[int, int]] = []
    start = 0
    while (i := text.find(CUT, start)) != -1:
        start = i + len(CUT)
        before = max((_longest_run(text, i, v, backwards=True) for v in _ordered), default=0)
        after = max((_longest_run(text, start, v, backwards=False) for v in _ordered), default=0)
        if before:
            spans.append((i - before, i))
        if after:
            spans.append((start, start + after))
    if not spans:
        return text
    out, at = [], 0
    for a, b in sorted(spans):
        a = max(a, at)
        if a < b:
            out.append(text[at:a] + MASK)
            at = b
    return "".join(out) + text[at:]


def _longest_run(text: str, at: int, value: str, backwards: bool) -> int:
    """The longest run of `text` ending (backwards) or starting at `at` that is part of `value`, if it has at least
    MIN_LENGTH characters (else 0). Being part of `value` holds for every shorter run too: a binary search."""

    def part(k: int) -> bool:
        return (text[at - k : at] if backwards else text[at : at + k]) in value

    room = at if backwards else len(text) - at
    lo, hi = 0, min(room, len(value))
    if hi < MIN_LENGTH or not part(MIN_LENGTH):
        return 0
    lo = MIN_LENGTH
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if part(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def scrub_any(value: Any) -> Any:
    """`scrub` through the strings of a JSON-like value (dict keys included)."""
    if _pattern is None:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_any(k): scrub_any(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_any(v) for v in value]
    return value


def _held_back(text: str) -> int:
    """Where the end of `text` that may be the start of a secret begins (len(text) when none may be)."""
    start = max(0, len(text) - _longest + 1)
    for i in range(start, len(text)):
        candidates = _by_first.get(text[i])
        if candidates:
            tail = text[i:]
            if any(len(v) > len(tail) and v.startswith(tail) for v in candidates):
                return i
    return len(text)


class ScrubbingStream(io.TextIOBase):
    """A text stream writing to `stream` with every registered secret masked, even one split across writes."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._held = ""
        self._write_lock = threading.Lock()

    def write(self, s: Any) -> int:
        text = s if isinstance(s, str) else bytes(s).decode("utf-8", "replace")
        with self._write_lock:
            if _pattern is None and not self._held:
                self.stream.write(text)
                return len(s)
            text = scrub(self._held + text)
            cut = _held_back(text)
            self._held = text[cut:]
            if cut:
                self.stream.write(text[:cut])
        return len(s)

    def release(self) -> None:
        """Write what was kept back (the stream ends: it cannot be the start of a secret any more)."""
        with self._write_lock:
            held, self._held = self._held, ""
        if held:
            self.stream.write(held)
        self.flush()

    def flush(self) -> None:
        with contextlib.suppress(ValueError):  # closed by its owner (e.g. a test runner) already
            self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.stream, "errors", None)

    @property
    def name(self) -> Any:
        return getattr(self.stream, "name", "<scrubbed>")


@contextlib.contextmanager
def scrubbed_stdio() -> Iterator[None]:
    """sys.stdout and sys.stderr scrubbed while the block runs (what was kept back is written at its end)."""
    saved = sys.stdout, sys.stderr
    out, err = ScrubbingStream(sys.stdout), ScrubbingStream(sys.stderr)
    sys.stdout, sys.stderr = cast(TextIO, out), cast(TextIO, err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        for stream in (out, err):
            with contextlib.suppress(OSError, ValueError):
                stream.release()
