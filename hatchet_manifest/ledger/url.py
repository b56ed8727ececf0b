"""`--ledger URL`: which backend holds the ledger, and where; `open_ledger` opens it.

Above both backends: it imports them (lazily, so that the PostgreSQL backend and psycopg are loaded only for a
postgresql:// URL, the SQLite backend only for a file), and neither imports it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hatchet_manifest.errors import ConfigError
from hatchet_manifest.ledger.base import Ledger
from hatchet_manifest.ledger.redact import redact_url
from hatchet_manifest.ledger.values import Clock, utc_now

DEFAULT_FILE = "ledger.db"
POSTGRES_SCHEMES = ("postgresql", "postgres")


def sqlite_path(url: str | os.PathLike[str] | None, state_dir: Path) -> Path | None:
    """The SQLite file that `url` names, or None when it names a PostgreSQL ledger.

    None -> <state_dir>/ledger.db; a plain path (relative to the working directory); `sqlite:///abs/path`
    (absolute, as in file URLs); `sqlite:rel/path` (relative). Any other scheme is a ConfigError.
    """
    if url is None:
        return state_dir / DEFAULT_FILE
    if isinstance(url, os.PathLike):
        return Path(url)
    if not url:
        raise ConfigError("the ledger URL is empty")
    scheme, sep, rest = url.partition(":")
    if not sep or not scheme.isascii() or not scheme.replace("+", "").isalnum() or len(scheme) < 2:
        return Path(url)  # a plain path (a one-letter "scheme" would be a drive letter; not ours either way)
    scheme = scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        return None
    if scheme == "sqlite":
        if rest.startswith("//"):
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost") or not parts.path or parts.query or parts.fragment:
                raise ConfigError(f"bad SQLite ledger URL {url!r}: use sqlite:///absolute/path or sqlite:relative/path")
            path = unquote(parts.path)
            return Path("/" + path.lstrip("/"))
        if not rest:
            raise ConfigError(f"bad SQLite ledger URL {url!r}: no path")
        return Path(unquote(rest))
    if "://" not in url:
        return Path(url)  # e.g. "state:v2/ledger.db" is an odd but plain relative path
    raise ConfigError(
        f"unsupported ledger URL {redact_url(url)!r}: use a file path, sqlite:///path or postgresql://..."
    )


def open_ledger(
    url: str | os.PathLike[str] | None,
    state_dir: Path,
    *,
    create: bool = True,
    clock: Clock = utc_now,
) -> Ledger:
    """Open (creating and migrating its schema when needed) the ledger that `url` names.

    With `create=False` a missing SQLite file is a LedgerError instead of a new, empty ledger.
    """
    path = sqlite_path(url, state_dir)
    if path is not None:
        from hatchet_manifest.ledger.sqlite import SqliteLedger

        return SqliteLedger(path, clock=clock, create=create)
    from hatchet_manifest.ledger.postgres import PostgresLedger

    return PostgresLedger(str(url), clock=clock)
