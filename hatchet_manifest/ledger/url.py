"""`--ledger URL`: which backend holds the ledger, and where; `open_ledger` opens it.

What `--ledger` takes, and refuses (a ConfigError naming what is wrong, the location shown redacted):
  - nothing: `<state-dir>/ledger.db`, the one ledger whose directory (the state dir) is created when missing;
  - a path (relative to the working directory), `sqlite:///absolute/path` or `sqlite:relative/path`
    (percent-decoded): a SQLite file, in a directory that must exist. In-memory databases (`:memory:`), empty
    paths, paths ending in `/`, query strings (`?mode=memory`), fragments and hosts are refused;
  - `postgresql://...` or `postgres://...`: a PostgreSQL database (libpq's URI syntax);
  - refused: any other `scheme://` (`mysql://`), control characters, and what looks like a libpq keyword/value
    string (`host=db dbname=ledger`; text with `=` and blanks, or starting with a libpq keyword and `=`): it is
    refused with a hint to write a postgresql:// URL, rather than taken for a file name or for PostgreSQL (one
    syntax for every backend; a path is written `./host=x` or `/abs/...` to force it).

Above both backends: it imports them (lazily, so that the PostgreSQL backend and psycopg are loaded only for a
postgresql:// URL, the SQLite backend only for a file), and neither imports it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from hatchet_manifest.errors import ConfigError
from hatchet_manifest.ledger.base import Ledger
from hatchet_manifest.ledger.redact import redact_url
from hatchet_manifest.ledger.values import Clock, utc_now
from hatchet_manifest.text import unsafe_char_problem

DEFAULT_FILE = "ledger.db"
POSTGRES_SCHEMES = ("postgresql", "postgres")
MEMORY = ":memory:"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+):")
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")
# libpq's connection keywords (PQconndefaults): `dbname=x` names a database, not a file
LIBPQ_KEYWORDS = frozenset(
    [
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "require_auth",
        "channel_binding",
        "connect_timeout",
        "client_encoding",
        "options",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "replication",
        "gssencmode",
        "sslmode",
        "sslnegotiation",
        "requiressl",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcertmode",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "requirepeer",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
        "gssdelegation",
        "service",
        "target_session_attrs",
        "load_balance_hosts",
    ]
)
CONNINFO_HINT = (
    "give a postgresql:// URL instead, e.g. postgresql://user@host:5432/dbname (the password in PGPASSWORD or "
    "~/.pgpass, or percent-encoded in the URL); for a file of that name, write ./NAME"
)


@dataclass(frozen=True)
class Location:
    """Where a ledger lives: a SQLite file (`path`) or a PostgreSQL URL (`url`); `default`: the state dir's."""

    path: Path | None = None
    url: str | None = None
    default: bool = False


def _sqlite_url(url: str, rest: str) -> Path:
    shown = redact_url(url)
    if rest.startswith("//"):  # sqlite://[localhost]/absolute/path, split by hand: it need not parse
        body = rest[2:]
        slash = body.find("/")
        host, path = (body, "") if slash < 0 else (body[:slash], body[slash:])
        if host.lower() not in ("", "localhost"):
            raise ConfigError(
                f"bad SQLite ledger URL {shown}: a SQLite ledger is a local file, on no host: use "
                "sqlite:///absolute/path or sqlite:relative/path"
            )
        path = "/" + path.lstrip("/")
    else:
        path = rest
    if "?" in path or "#" in path:
        raise ConfigError(
            f"bad SQLite ledger URL {shown}: query strings and fragments are not supported "
            "(a file name holding ? or # is written %3F, %23)"
        )
    path = unquote(path)
    if path in ("", "/"):
        raise ConfigError(
            f"bad SQLite ledger URL {shown}: no path: use sqlite:///absolute/path or sqlite:relative/path"
        )
    return Path(path)


def _check_path(text: str, path: Path) -> Path:
    shown = redact_url(text)
    if path.name == MEMORY or text == MEMORY:
        raise ConfigError(
            f"the ledger {shown} is an in-memory database: nothing would be recorded once the command ends; "
            "give a file path"
        )
    if text.endswith(("/", os.sep)) or path.name in ("", ".", ".."):
        raise ConfigError(
            f"the ledger {shown} names a directory: give the path of a file, e.g. {shown.rstrip('/')}/ledger.db"
        )
    return path


def _looks_like_conninfo(text: str) -> bool:
    if text.startswith(("/", "./", "../")):
        return False  # path syntax, whatever it holds
    keyword = _KEYWORD.match(text)
    if keyword and keyword.group(1).lower() in LIBPQ_KEYWORDS:
        return True
    return "=" in text and any(c.isspace() for c in text)


def parse_location(url: str | os.PathLike[str] | None, state_dir: Path) -> Location:
    """What `--ledger` names (see the module docstring); a ConfigError for anything else."""
    if url is None:
        return Location(path=state_dir / DEFAULT_FILE, default=True)
    if isinstance(url, os.PathLike):
        text = os.fspath(url)
        return Location(path=_check_path(text, Path(text)))
    if not url.strip():
        raise ConfigError("the ledger URL is empty")
    problem = unsafe_char_problem(url)
    if problem:
        raise ConfigError(f"the ledger URL {redact_url(url)} {problem}")
    scheme_match = _SCHEME.match(url)
    if scheme_match:
        scheme, rest = scheme_match.group(1).lower(), url[scheme_match.end() :]
        if scheme in POSTGRES_SCHEMES:
            if not rest.startswith("//"):
                raise ConfigError(
                    f"bad PostgreSQL ledger URL {redact_url(url)}: write {scheme}://[user@]host[:port]/dbname"
                )
            return Location(url=url)
        if scheme == "sqlite":
            return Location(path=_check_path(url, _sqlite_url(url, rest)))
        if rest.startswith("//"):
            raise ConfigError(
                f"unsupported ledger URL {redact_url(url)}: use a file path, sqlite:///path or postgresql://..."
            )
        # e.g. "state:v2/ledger.db": an odd but plain relative path
    if _looks_like_conninfo(url):
        raise ConfigError(
            f"the ledger {redact_url(url)} looks like a libpq connection string (keyword=value), which --ledger "
            f"does not take: {CONNINFO_HINT}"
        )
    return Location(path=_check_path(url, Path(url)))


def sqlite_path(url: str | os.PathLike[str] | None, state_dir: Path) -> Path | None:
    """The SQLite file that `url` names, or None when it names a PostgreSQL ledger (ConfigError if neither)."""
    return parse_location(url, state_dir).path


def open_ledger(
    url: str | os.PathLike[str] | None,
    state_dir: Path,
    *,
    create: bool = True,
    readonly: bool = False,
    clock: Clock = utc_now,
) -> Ledger:
    """Open the ledger that `url` names, creating it and migrating its schema when needed.

    `create=False`: a ledger that does not exist yet (no SQLite file, no ledger tables in the PostgreSQL database)
    is a NoLedgerError instead of a new, empty ledger. `readonly=True` (implies `create=False`): nothing is written,
    not even a migration, and a ledger whose schema is not this version's is refused; writing calls fail.
    """
    where = parse_location(url, state_dir)
    if where.path is not None:
        from hatchet_manifest.ledger.sqlite import SqliteLedger

        return SqliteLedger(
            where.path, clock=clock, create=create and not readonly, readonly=readonly, make_dir=where.default
        )
    from hatchet_manifest.ledger.postgres import PostgresLedger

    assert where.url is not None
    return PostgresLedger(where.url, clock=clock, create=create and not readonly, readonly=readonly)
