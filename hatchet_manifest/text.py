"""Untrusted text shown to people: characters that can forge a terminal's display, and values quoted in messages.

Manifests arrive in pull requests, and runs, keys and names come back from files, ledgers and engines. A value
holding `\\x1b[2K\\r` (erase the line, back to its start) or a bidi override can make a reviewer's terminal show
another plan than the one computed. Such characters are refused in identities (workflow names, keys,
namespaces: see `unsafe_char_problem`), and shown escaped (`\\x1b`, `\\u202e`) in every human-readable output
and message (`escape`, `quote`). Values quoted in messages are shortened (`quote`), so that a 4 MB key costs
80 characters of stderr, not 4 MB per problem.

The bottom floor: imports nothing of the package.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

# C0 controls, DEL, C1 controls, and every format (Cf), line (Zl) and paragraph (Zp) separator: bidi overrides
# and isolates, zero-width characters, the byte order mark, interlinear annotations, tag characters.
# tests/test_text.py checks that every character of those Unicode categories is here.
_C0 = "\x00-\x1f"
_OTHERS = (
    "\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
UNSAFE = re.compile(f"[{_C0}{_OTHERS}]")
# The same without C0: JSON encoders escape C0 themselves, and JSON texts hold raw newlines between tokens.
_JSON_UNSAFE = re.compile(f"[{_OTHERS}]")

QUOTE_LIMIT = 80
MESSAGE_LIMIT = 2000

_NAMES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(ch: str) -> str:
    o = ord(ch)
    if ch in _NAMES:
        return _NAMES[ch]
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def escape(text: str, keep_newlines: bool = False) -> str:
    """`text` with every unsafe character written visibly (`\\x1b`, `\\u202e`); `keep_newlines` keeps `\\n`."""
    if text.isprintable():  # the common case, in C: no unsafe character is printable
        return text
    if keep_newlines:
        return UNSAFE.sub(lambda m: m.group() if m.group() == "\n" else _escaped(m.group()), text)
    return UNSAFE.sub(lambda m: _escaped(m.group()), text)


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` cut to `limit` characters, the cut marked with `...`."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


_REPR = reprlib.Repr()
_REPR.maxstring = QUOTE_LIMIT
_REPR.maxother = QUOTE_LIMIT
_REPR.maxlevel = 3


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A value as messages quote it: its repr (`'abc'`, `None`, `3`), escaped and shortened to about `limit`."""
    if isinstance(value, str):
        return repr(shorten(value, limit))  # repr escapes every character that is not printable
    return escape(shorten(_REPR.repr(value), limit))


def safe_message(text: str, limit: int = MESSAGE_LIMIT, keep_newlines: bool = True) -> str:
    """A whole message for the terminal: escaped (newlines kept unless told) and bounded."""
    return shorten(escape(text, keep_newlines), limit)


def unsafe_char_problem(text: str) -> str | None:
    """What is wrong with `text` as an identity shown to people (a control, bidi or invisible character), or None."""
    if text.isprintable():
        return None
    m = UNSAFE.search(text)
    if m is None:
        return None
    return f"contains {_kind(m.group())} {_escaped(m.group())} at offset {m.start()}"


_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _kind(ch: str) -> str:
    if ch in _BIDI:
        return "the bidi control character"
    if ch in "\u2028\u2029":
        return "the line or paragraph separator"
    if ch <= "\x1f" or "\x7f" <= ch <= "\x9f":
        return "the control character"
    return "the invisible formatting character"


def json_safe(text: str) -> str:
    """A JSON text (as json/orjson write it, C0 escaped already) with the other unsafe characters written as
    `\\uXXXX` escapes: the same JSON value, and nothing that moves a terminal's cursor or reorders its text."""
    if text.isascii() and "\x7f" not in text:  # isascii is O(1) on str
        return text
    return _JSON_UNSAFE.sub(_json_escape, text)


def _json_escape(m: re.Match[str]) -> str:
    o = ord(m.group())
    if o < 0x10000:
        return f"\\u{o:04x}"
    o -= 0x10000
    return f"\\u{0xD800 + (o >> 10):04x}\\u{0xDC00 + (o & 0x3FF):04x}"
