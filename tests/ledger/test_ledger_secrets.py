"""No ledger URL's secret reaches any output: URLs that parse or not, query passwords, percent-encoding, libpq
keyword/value strings, psycopg's and libpq's own error texts (refused, timed out, authentication failed), reprs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchet_manifest.errors import LedgerError
from hatchet_manifest.ledger import open_ledger, redact_url
from hatchet_manifest.ledger import postgres as postgres_backend
from hatchet_manifest.ledger.redact import Secrets
from tests.conftest import RunCli
from tests.pgserver import PgServer, require_psycopg

SECRET = "Sup3r-Secret-PW"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:PW@[::1/x", "postgresql://u:***@[::1/x"),  # does not parse
        ("postgresql://u@h:1/x?password=PW", "postgresql://u@h:1/x?password=***"),
        ("postgresql://h/x?sslmode=require&password=PW&application_name=a", None),
        ("postgresql://h/x?pass%77ord=PW", "postgresql://h/x?pass%77ord=***"),  # libpq decodes the name too
        ("postgresql://h/x?PASSWORD=PW#frag", "postgresql://h/x?PASSWORD=***#frag"),
        ("postgres://u:PW%40x@h/x", "postgres://u:***@h/x"),
        ("postgresql://u:p@ss/w?rd@h/x", "postgresql://u:***@h/x"),  # up to the last @
        ("postgresql://h/x?password=p@ss", "postgresql://h/x?password=***"),
        ("postgresql:u:PW@h/x", "postgresql:u:***@h/x"),
        ("mysql://root:PW@db/x", "mysql://root:***@db/x"),
        ("sqlite://u:PW@host/x.db", "sqlite://u:***@host/x.db"),
        ("host=h port=1 password=PW user=u", "host=h port=1 password=*** user=u"),
        ("host=h password = 'P W\\' x' user=u", "host=h password = *** user=u"),
        ("host=h password PW", "host=h password ***"),  # no "=": the rest, whatever it is
        ("host=h sslpassword=PW", "host=h sslpassword=***"),
        ("host=h password='unterminated PW", "host=h password=***"),
        ("postgresql://u@h/x", "postgresql://u@h/x"),
        ("/srv/state/ledger.db", "/srv/state/ledger.db"),
        ("a\x1b[2Kb", "a\\x1b[2Kb"),  # escaped for the terminal
    ],
)
def test_redact_url_masks_every_place_a_password_can_be(url: str, shown: str | None) -> None:
    redacted = redact_url(url)
    assert "PW" not in redacted and "P W" not in redacted
    if shown is not None:
        assert redacted == shown


def test_redact_url_is_bounded() -> None:
    assert len(redact_url("postgresql://u:pw@h/" + "x" * 100_000)) <= 300


def test_secrets_scrub_foreign_texts_of_every_spelling() -> None:
    url = f"postgresql://u:{SECRET.replace('-', '%2D')}@h/x"
    secrets = Secrets(url)
    message = f'FATAL: something about "{url}" and {SECRET}\n\tHINT: again {SECRET.replace("-", "%2D")}'
    scrubbed = secrets.scrub(message)
    assert SECRET not in scrubbed and "%2D" not in scrubbed
    assert scrubbed == 'FATAL: something about "postgresql://u:***@h/x" and *** HINT: again ***'
    short = Secrets("postgresql://u:p%zz@h/x")  # a short password is masked where libpq quotes it
    assert short.scrub('invalid percent-encoded token: "p%zz"') == 'invalid percent-encoded token: "***"'


def test_pgpassword_is_scrubbed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", SECRET)
    assert Secrets("postgresql://u@h/x").scrub(f"it said {SECRET}") == "it said ***"


BAD_URLS = [
    f"postgresql://u:{SECRET}@[::1/x",  # libpq quotes the whole URI in its error
    f"postgresql://u@127.0.0.1:1/x?password={SECRET}",
    f"postgres://u:{SECRET}@127.0.0.1:1/x",
    f"postgresql://u:{SECRET.replace('S', '%53')}@127.0.0.1:1/x",
    f"postgresql://u:{SECRET}%zz@127.0.0.1:1/x",  # libpq quotes the bad token
    "postgresql://u:ab%zz@127.0.0.1:1/x",  # and a short one
    f"postgresql://127.0.0.1:1/x?password={SECRET}=more",  # libpq: extra "=" in a parameter
    f"postgresql://127.0.0.1:1/x?bogus=1&password={SECRET}",
    f"postgresql://u:{SECRET}@127.0.0.1:notaport/x",
    f"postgresql://u:{SECRET}@127.0.0.1:1/x?connect_timeout=soon",
    f"postgresql:u:{SECRET}@127.0.0.1/x",
    f"postgresql://u:{SECRET}@nonexistent.invalid/x",  # psycopg: failed to resolve host ...: [Errno -2] ...
    f"host=127.0.0.1 port=1 password={SECRET}",
    f"host=127.0.0.1 password '{SECRET}'",
    f"mysql://root:{SECRET}@db/x",
    f"sqlite://u:{SECRET}@host/x.db",
    f"sqlite://[u:{SECRET}@x/y.db",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", [["ledger", "export"], ["ledger", "import", "-"], ["ledger", "forget", "k"]])
def test_bad_ledger_urls_are_errors_that_never_show_the_password(
    run_cli: RunCli, tmp_path: Path, url: str, command: list[str]
) -> None:
    require_psycopg()
    result = run_cli(*command, "--ledger", url, "--state-dir", str(tmp_path / "s"), input="")
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for text in (result.stdout, result.stderr):
        assert SECRET not in text and SECRET.replace("S", "%53") not in text and "ab%zz" not in text
        assert "Traceback" not in text and "Error:" not in text and "Errno" not in text  # no Python wording
    assert not (tmp_path / "s").exists()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a firewall that drops, a hung server)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_an_unanswering_server_times_out_by_default(
    silent_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_psycopg()
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    monkeypatch.setattr(postgres_backend, "CONNECT_TIMEOUT_SECONDS", 1)
    started = time.monotonic()
    with pytest.raises(LedgerError) as caught:
        open_ledger(f"postgresql://u:{SECRET}@127.0.0.1:{silent_server}/x", tmp_path)
    assert time.monotonic() - started < 15
    assert str(caught.value) == (
        f"cannot connect to the ledger postgresql://u:***@127.0.0.1:{silent_server}/x: connection timeout expired "
        "(no answer within 1s; connect_timeout=SECONDS in the URL waits longer)"
    )


def test_the_urls_connect_timeout_is_honoured(silent_server: int, run_cli: RunCli) -> None:
    require_psycopg()
    url = f"postgresql://u:{SECRET}@127.0.0.1:{silent_server}/x?connect_timeout=1"
    started = time.monotonic()
    result = run_cli("ledger", "export", "--ledger", url)
    assert time.monotonic() - started < 15
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot connect to the ledger postgresql://u:***@127.0.0.1:{silent_server}/x?connect_timeout=1: "
        "connection timeout expired\n"
    )


PW_USER = "hm_pw_user"
PW = "Corr3ct-H0rse-Battery"


@pytest.fixture
def password_role(pg_server: PgServer) -> str:
    """A role that must give its password (scram-sha-256 for it alone on the test server; the others keep trust)."""
    import psycopg

    hba = pg_server.data / "pg_hba.conf"
    line = f"host all {PW_USER} 127.0.0.1/32 scram-sha-256\n"
    text = hba.read_text()
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        if line not in text:
            hba.write_text(line + text)  # the first matching line wins
            conn.execute(f"CREATE ROLE {PW_USER} LOGIN PASSWORD '{PW}'")  # type: ignore[call-overload]
            conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)
    return f"127.0.0.1:{pg_server.port}"


@pytest.mark.parametrize("spelling", ["authority", "query"])
def test_failed_authentication_never_shows_the_password(
    password_role: str, pg_url: str, run_cli: RunCli, spelling: str
) -> None:
    database = pg_url.rsplit("/", 1)[1]
    wrong = "Wr0ng-Password-Given"
    url = (
        f"postgresql://{PW_USER}:{wrong}@{password_role}/{database}"
        if spelling == "authority"
        else f"postgresql://{PW_USER}@{password_role}/{database}?password={wrong}"
    )
    result = run_cli("ledger", "export", "--ledger", url)
    assert result.exit_code == 1
    assert f'password authentication failed for user "{PW_USER}"' in result.stderr
    assert wrong not in result.stderr + result.stdout and "***" in result.stderr
    # the right password gets in: the database has no ledger, which export says without creating one
    right = url.replace(wrong, PW)
    result = run_cli("ledger", "export", "--ledger", right)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no ledger in postgresql://") and PW not in result.stderr


def test_a_missing_database_is_named(pg_server: PgServer, run_cli: RunCli) -> None:
    url = pg_server.url("no_such_db").replace("ledger@", f"ledger:{SECRET}@")
    result = run_cli("ledger", "export", "--ledger", url)
    assert result.exit_code == 1
    assert 'database "no_such_db" does not exist' in result.stderr and SECRET not in result.stderr


def test_reprs_and_locations_hide_the_password(pg_url: str, tmp_path: Path) -> None:
    url = pg_url.replace("postgresql://ledger@", f"postgresql://ledger:{SECRET}@") + f"?password={SECRET}"
    with open_ledger(url, tmp_path) as ledger:  # trust authentication: the password is ignored
        assert SECRET not in repr(ledger) and SECRET not in ledger.location
        assert ledger.location.endswith("?password=***")
