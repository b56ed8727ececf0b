"""`--ledger URL`: which backend, which file; errors that never show a password."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from hatchet_manifest.errors import ConfigError, LedgerError
from hatchet_manifest.ledger import Target, open_ledger, redact_url
from hatchet_manifest.ledger.postgres import PostgresLedger
from hatchet_manifest.ledger.sqlite import SqliteLedger
from hatchet_manifest.ledger.url import sqlite_path
from tests.pgserver import require_psycopg


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "state/ledger.db"),
        ("ledger.db", "ledger.db"),
        ("dir/ledger.db", "dir/ledger.db"),
        ("/abs/ledger.db", "/abs/ledger.db"),
        ("sqlite:///abs/ledger.db", "/abs/ledger.db"),
        ("sqlite:////abs/ledger.db", "/abs/ledger.db"),
        ("sqlite://localhost/abs/ledger.db", "/abs/ledger.db"),
        ("SQLITE:///abs/my%20ledger.db", "/abs/my ledger.db"),
        ("sqlite:rel/ledger.db", "rel/ledger.db"),
        ("odd:name.db", "odd:name.db"),
        ("postgresql://u@h/db", None),
        ("postgres://u@h/db", None),
    ],
)
def test_urls_name_a_backend_and_a_file(url: str | None, expected: str | None) -> None:
    assert sqlite_path(url, Path("state")) == (None if expected is None else Path(expected))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the ledger URL is empty"),
        ("sqlite:", "bad SQLite ledger URL sqlite:: no path"),
        (
            "sqlite://server/x.db",
            "bad SQLite ledger URL sqlite://server/x.db: a SQLite ledger is a local file, on no host",
        ),
        ("mysql://root:hunter2@db/ledger", "unsupported ledger URL mysql://root:***@db/ledger: use a file path"),
        ("https://example.com/ledger", "unsupported ledger URL https://example.com/ledger"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_ledger(url, Path("state"))
    assert str(caught.value).startswith(message)
    assert "hunter2" not in str(caught.value)


def test_the_default_ledger_lives_in_the_state_dir(tmp_path: Path) -> None:
    with open_ledger(None, tmp_path / "state") as ledger:
        assert isinstance(ledger, SqliteLedger) and ledger.path == tmp_path / "state" / "ledger.db"
    assert (tmp_path / "state" / "ledger.db").is_file()


def test_relative_paths_are_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("sub").mkdir()
    with (
        open_ledger("sqlite:sub/l.db", Path("ignored")) as ledger,
        open_ledger(f"sqlite://{tmp_path}/abs.db", Path("x")),
    ):
        ledger.record_pending(Target("t", "a"), [])
    assert (tmp_path / "sub" / "l.db").is_file() and (tmp_path / "abs.db").is_file()
    assert not Path("ignored").exists()


def test_create_false_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match=f"^no ledger at {tmp_path}/nothing.db$"):
        open_ledger(tmp_path / "nothing.db", tmp_path, create=False)
    assert not (tmp_path / "nothing.db").exists()


def test_a_file_that_is_not_a_database_is_a_ledger_error(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_text("this is not SQLite, but long enough to look like a header" * 20)
    with pytest.raises(LedgerError, match=r"^the ledger .*/ledger.db is not a SQLite database"):
        open_ledger(None, tmp_path)


def test_a_naive_clock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match=r"^the ledger clock returned a naive datetime; it must be timezone-aware$"):
        open_ledger(None, tmp_path, clock=lambda: datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:s3cret@db:5432/ledger", "postgresql://user:***@db:5432/ledger"),
        ("postgresql://user@db/ledger", "postgresql://user@db/ledger"),
        ("postgresql://:s3cret@db/ledger", "postgresql://:***@db/ledger"),
        ("postgresql://db/ledger?sslmode=require", "postgresql://db/ledger?sslmode=require"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_postgres_connection_errors_never_show_the_password() -> None:
    require_psycopg()
    url = "postgresql://ledger:s3cret-pw@127.0.0.1:1/ledger?connect_timeout=2"
    with pytest.raises(LedgerError) as caught:
        PostgresLedger(url)
    message = str(caught.value)
    assert message.startswith(
        "cannot connect to the ledger postgresql://ledger:***@127.0.0.1:1/ledger?connect_timeout=2: "
    )
    assert "s3cret" not in message and "s3cret" not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no traceback shows the URL


def test_postgres_ledger_repr_hides_the_password(pg_url: str, tmp_path: Path) -> None:
    url = pg_url.replace("postgresql://ledger@", "postgresql://ledger:anything-secret@")
    with open_ledger(url, tmp_path) as ledger:  # trust authentication: the password is ignored
        assert "anything-secret" not in repr(ledger) and "***" in ledger.location
