"""`hatchet-manifest ledger export|import` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hatchet_manifest.commands.ledger import command
from hatchet_manifest.ledger import AdoptedRow, Ledger, PendingRow, Target, open_ledger
from tests.conftest import RunCli
from tests.ledger.conftest import FakeClock

T = Target("tenant", "127.0.0.1:7070")


def fill(ledger: Ledger) -> None:
    ledger.record_pending(T, [PendingRow(f"k{i}", f"d{i}", "m", "m.yaml") for i in range(5)])
    ledger.record_submitted(T, [("k0", "id-0"), ("k1", "id-1")])
    ledger.record_unknown(T, ["k2"], "timeout")
    ledger.adopt(Target("tenant", "prod:443"), [AdoptedRow("é", "d", "m", "m.yaml", "id-é")])


def test_export_writes_json_lines_to_stdout(tmp_path: Path, clock: FakeClock) -> None:
    with open_ledger(None, tmp_path / ".hatchet-manifest", clock=clock) as ledger:
        fill(ledger)
        expected = list(ledger.export_rows())
    result = CliRunner().invoke(command, ["export", "--state-dir", str(tmp_path / ".hatchet-manifest")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [json.loads(line) for line in lines] == expected and len(lines) == 6
    assert lines[0].startswith('{"tenant_id":"tenant","address":"127.0.0.1:7070","key":"k0","digest":"d0",')
    assert '"key":"é"' in lines[-1]  # UTF-8, not \\u escapes
    assert result.stderr == f"exported 6 row(s) from {tmp_path}/.hatchet-manifest/ledger.db\n"


def test_export_to_a_file_then_import_into_another_ledger(
    tmp_path: Path, run_cli: RunCli, clock: FakeClock, ledger_url: str
) -> None:
    with open_ledger(tmp_path / "source.db", tmp_path, clock=clock) as source:
        fill(source)
        expected = list(source.export_rows())
    out = tmp_path / "ledger.jsonl"
    result = run_cli("ledger", "export", "--ledger", f"sqlite://{tmp_path}/source.db", "-o", str(out))
    assert (result.exit_code, result.stdout) == (0, ""), result.stderr
    result = run_cli("ledger", "import", str(out), env={"HATCHET_MANIFEST_LEDGER": ledger_url})
    assert result.exit_code == 0, result.stderr
    with open_ledger(ledger_url, tmp_path) as copy:
        assert list(copy.export_rows()) == expected
        assert result.stderr == f"imported 6 row(s) into {copy.location}\n"
    result = run_cli("ledger", "export", env={"HATCHET_MANIFEST_LEDGER": ledger_url})
    assert result.stdout == out.read_text(encoding="utf-8")


LINE = json.dumps(
    {
        "tenant_id": "t",
        "address": "a:1",
        "key": "k",
        "digest": "d",
        "run_id": "r",
        "manifest": "m",
        "file": "m.yaml",
        "state": "submitted",
        "error": None,
        "created_at": "2024-05-01T12:00:00+00:00",
        "updated_at": "2024-05-01T12:00:00+00:00",
    }
)


def test_import_reads_stdin_and_the_state_dir_from_the_environment(tmp_path: Path, run_cli: RunCli) -> None:
    line = LINE
    state = tmp_path / "state"
    result = run_cli("ledger", "import", "-", input=line + "\n", env={"HATCHET_MANIFEST_STATE_DIR": str(state)})
    assert result.exit_code == 0, result.stderr
    with open_ledger(None, state) as ledger:
        assert [(e.key, e.run_id) for e in ledger.entries(Target("t", "a:1"))] == [("k", "r")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            LINE + "\n" + LINE.replace('"k"', '"k2"').replace("submitted", "sent") + "\n",
            'error: {file}:2: state: expected one of pending, submitted, failed, unknown, got "sent"; nothing imported',
        ),
        (LINE + "\n" + LINE + "\n", "error: {file}:2: the same target and key as row 1; nothing imported"),
        ("\n", "error: {file}:1: not valid JSON: Expecting value; nothing imported"),
        ('{"key": "k"\n', "error: {file}:1: not valid JSON: Expecting ',' delimiter; nothing imported"),
    ],
)
def test_import_errors_name_the_line_and_import_nothing(
    tmp_path: Path, run_cli: RunCli, content: str, message: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    result = run_cli("ledger", "import", str(bad), "--state-dir", str(tmp_path / "s"))
    assert result.exit_code == 1
    assert result.stderr.startswith(message.format(file=bad)), result.stderr
    with open_ledger(None, tmp_path / "s") as ledger:
        assert ledger.targets() == []


def test_import_of_a_missing_file(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("ledger", "import", str(tmp_path / "none.jsonl"), "--state-dir", str(tmp_path / "s"))
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot read {tmp_path}/none.jsonl: no such file or directory\n"
    assert not (tmp_path / "s").exists()  # nothing created


def test_export_of_a_missing_ledger_creates_nothing(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("ledger", "export", "--state-dir", str(tmp_path / "none"))
    assert result.exit_code == 1
    assert result.stderr == f"error: no ledger at {tmp_path}/none/ledger.db\n"
    assert not (tmp_path / "none").exists()


def test_an_unsupported_url_is_a_config_error(run_cli: RunCli) -> None:
    result = run_cli("ledger", "export", "--ledger", "mysql://root:pw@db/x")
    assert result.exit_code == 1
    assert "unsupported ledger URL mysql://root:***@db/x" in result.stderr and ":pw@" not in result.stderr


def test_help_lists_both_subcommands(run_cli: RunCli) -> None:
    result = run_cli("ledger", "--help")
    assert result.exit_code == 0
    assert "export" in result.stdout and "import" in result.stdout
