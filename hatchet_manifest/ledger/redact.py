"""Keeping a ledger URL's secrets out of messages: the URL as shown, and foreign error text scrubbed of them.

Nothing here trusts the text to parse. `redact_url` masks, in whatever it is given (a URL that parses or not, a
libpq keyword/value string, a path), every stretch that could hold a password: the user information of an
authority (`user:***@`, up to the last `@`, so that a password holding `@`, `/` or `[` is masked whole), the
value of every query parameter whose name (percent-decoded) says password, secret or token, and the value of such
keywords in a `keyword=value` string (quoted or not; after such a keyword without its `=`, everything). It errs on
the side of masking too much. `Secrets` keeps what was masked (as written and percent-decoded, and PGPASSWORD)
to scrub the error texts of psycopg and libpq, which quote a URL they cannot parse, or a token of it.

A leaf module (the standard library and the text helpers only), so that both `url` and the PostgreSQL backend
can use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import unquote

from hatchet_manifest.text import escape, shorten

MASK = "***"
SHOWN_LIMIT = 300  # characters of a (redacted) location in a message

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+:")
_SECRET_NAME = re.compile(r"pass|secret|token", re.IGNORECASE)
_WHITESPACE = " \t\n\r\f\v"


def _secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(unquote(name)))


def _url_spans(text: str, start: int) -> list[tuple[int, int]]:
    """What to mask in `text[start:]`, the part of a URL after its scheme: the password of the authority and the
    values of secret query parameters, each found without parsing the rest."""
    spans: list[tuple[int, int]] = []
    at = text.rfind("@", start)
    if at >= 0:
        colon = text.find(":", start, at)
        if colon >= 0:
            spans.append((colon + 1, at))
    query = text.find("?", start)
    if query >= 0:
        end = text.find("#", query)
        end = len(text) if end < 0 else end
        pos = query + 1
        while pos <= end:
            amp = text.find("&", pos, end)
            stop = end if amp < 0 else amp
            equals = text.find("=", pos, stop)
            if equals >= 0 and _secret_name(text[pos:equals]):
                spans.append((equals + 1, stop))
            pos = stop + 1
    return spans


def _conninfo_spans(text: str) -> list[tuple[int, int]]:
    """What to mask in a libpq `keyword=value ...` string: the values of secret keywords; after a secret keyword
    not followed by `=` (libpq refuses the string, and where its value ends cannot be told), the rest."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    i = 0
    while i < n:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            break
        key_start = i
        while i < n and text[i] != "=" and text[i] not in _WHITESPACE:
            i += 1
        key = text[key_start:i]
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n or text[i] != "=":
            if _secret_name(key):  # libpq refuses it, and where its value ends cannot be told: the rest
                spans.append((i, n))
                break
            continue
        i += 1
        while i < n and text[i] in _WHITESPACE:
            i += 1
        value_start = i
        quoted = i < n and text[i] == "'"
        if quoted:
            i += 1
        while i < n:
            if text[i] == "\\":
                i += 2
                continue
            if (quoted and text[i] == "'") or (not quoted and text[i] in _WHITESPACE):
                break
            i += 1
        i = min(i + (1 if quoted else 0), n)
        if _secret_name(key):
            spans.append((value_start, i))
    return spans


def secret_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) stretches of `text` that `redact_url` masks, merged and sorted."""
    scheme = _SCHEME.match(text)
    if scheme:
        spans = _url_spans(text, scheme.end())
    elif "=" in text:
        spans = _conninfo_spans(text)
    else:
        spans = []
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _masked(text: str) -> str:
    out = []
    pos = 0
    for start, end in secret_spans(text):
        out.append(text[pos:start] + MASK)
        pos = end
    return "".join(out) + text[pos:]


def redact_url(url: str) -> str:
    """A ledger location for messages and reprs: every stretch that could hold a password masked (whether or not
    it parses), control characters escaped, and at most SHOWN_LIMIT characters."""
    return shorten(escape(_masked(url)), SHOWN_LIMIT)


class Secrets:
    """What a ledger location hides, to scrub foreign error texts (psycopg's, libpq's) of it: the location as
    written (shown redacted instead) and each masked stretch, as written and percent-decoded, and PGPASSWORD."""

    SHORT = 4  # shorter values are masked only inside the quotes where libpq and psycopg quote what they echo

    def __init__(self, location: str, extra: Iterable[str] = ()) -> None:
        self.location = location
        self.shown = redact_url(location)
        values = set(extra)
        pgpassword = os.environ.get("PGPASSWORD")
        if pgpassword:
            values.add(pgpassword)
        for start, end in secret_spans(location):
            raw = location[start:end]
            values.update({raw, unquote(raw), raw.strip("'"), raw.strip("'").replace("\\", "")})
        self.values = sorted((v for v in values if v), key=len, reverse=True)

    def scrub(self, message: str) -> str:
        """`message` (foreign text) without the location in clear or any of its secrets; on one line (libpq's
        hints follow a line break and a tab), without Python's "[Errno N]", escaped, bounded."""
        text = re.sub(r"\s*\n\s*", " ", message.strip())
        text = re.sub(r"\[Errno -?\d+\]\s*", "", text)  # psycopg quotes Python's OSError texts
        if self.location:
            text = text.replace(self.location, self.shown)
        short = [v for v in self.values if len(v) < self.SHORT]
        for value in self.values:
            if len(value) >= self.SHORT:
                text = text.replace(value, MASK)
        if short:

            def quoted(m: re.Match[str]) -> str:
                inner = m.group(2)
                return m.group(1) + MASK + m.group(3) if any(v in inner for v in short) else m.group()

            text = re.sub(r"([\"'])(.*?)(\1)", quoted, text)
        return shorten(escape(text), 2000)
