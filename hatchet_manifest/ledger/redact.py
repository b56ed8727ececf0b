"""Keeping a ledger URL's password out of messages: the URL as shown, and error text scrubbed of the password.

A leaf module (the standard library only), so that both `url` and the PostgreSQL backend can use it.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL without its password, for messages and reprs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<unparseable ledger URL>"


def url_password(url: str) -> str:
    """The URL's password as the server sees it (percent-decoded), or "" if it has none."""
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def scrub(message: str, password: str) -> str:
    """`message` with every occurrence of `password` replaced by ***."""
    return message.replace(password, "***") if password else message
