"""What reaches a reviewer's terminal cannot be forged: control, bidi and invisible characters are refused in
identities (workflow names, keys, the namespace) and escaped in every human-readable output; JSON and YAML stay
valid and equal to the data; messages quoting values are bounded; and json/yaml stdout is a whole document or
nothing. Through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hatchet_client import ClientConfig, Hatchet
from hatchet_client.engine import Engine

from hatchet_manifest.text import UNSAFE
from tests.conftest import CliResult, RunCli

FORGED = "Deploy\x1b[2K\rPlan: 0 to create\x1b[8m"
NASTY = "\x1b[31mred\x1b[0m \u202eevil\u202c \x9b2J \x7f \u2028 \U000e0041"


def raw_unsafe(text: str) -> list[str]:
    """The unsafe characters written as they are (newlines between lines are not)."""
    return UNSAFE.findall(text.replace("\n", ""))


def clean(result: CliResult) -> CliResult:
    assert "Traceback" not in result.stderr
    assert raw_unsafe(result.stdout) == [], result.stdout
    assert raw_unsafe(result.stderr) == [], result.stderr
    return result


def write_manifest(path: Path, runs: str, name: str = "t") -> None:
    path.write_text(
        f"apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {{name: {name}}}\nruns:\n{runs}"
    )


def test_a_forged_workflow_name_is_refused_by_every_command(project: Path, run_cli: RunCli) -> None:
    write_manifest(
        project / "manifests" / "forged.yaml", '  - workflow_name: "Deploy\\e[2K\\rPlan: 0 to create\\e[8m"\n'
    )
    expected = (
        "manifests/forged.yaml:5: runs[0]: workflow_name: contains the control character \\x1b at offset 6, got "
        "'Deploy\\x1b[2K\\rPlan: 0 to create\\x1b[8m'"
    )
    for args in (["validate"], ["render", "-o", "table"], ["render", "-o", "json"], ["diff"], ["apply", "--yes"]):
        result = clean(run_cli(*args, "manifests/forged.yaml"))
        assert result.exit_code == 1, (args, result.stderr)
        assert result.stdout == ""
        assert expected in result.stderr.splitlines(), (args, result.stderr)


def test_a_namespace_with_control_characters_is_refused(project: Path, run_cli: RunCli, engine: dict[str, str]) -> None:
    for namespace, shown in (
        ("ns\x1b[2K", "contains the control character \\x1b at offset 2, got 'ns\\x1b[2k_'"),
        ("team\u202e", "contains the bidi control character \\u202e at offset 4, got 'team\\u202e_'"),
    ):
        env = {**engine, "HATCHET_CLIENT_NAMESPACE": namespace}
        for command in ("diff", "apply"):
            result = clean(
                run_cli(
                    command,
                    "manifests/bulk-parent.yaml",
                    "--yes" if command == "apply" else "-o",
                    *([] if command == "apply" else ["text"]),
                    env=env,
                )
            )
            assert result.exit_code == 1
            assert result.stderr == f"error: HATCHET_CLIENT_NAMESPACE {shown}\n"


def nasty_manifest(project: Path) -> Path:
    path = project / "manifests" / "nasty.yaml"
    text = '"' + "".join(c if c.isprintable() else f"\\U{ord(c):08x}" for c in NASTY) + '"'  # YAML escapes
    write_manifest(
        path,
        f"  - workflow_name: Report\n    key: nasty\n    input: {{text: {text}}}\n"
        f"    options: {{additional_metadata: {{note: {text}}}}}\n",
    )
    return path


def test_values_are_escaped_in_tables_and_diff_and_exact_in_json_and_yaml(project: Path, run_cli: RunCli) -> None:
    nasty_manifest(project)
    table = clean(run_cli("render", "manifests/nasty.yaml", "-o", "table"))
    assert table.exit_code == 0
    assert "\\u202eevil" in table.stdout and "\\x9b2J" in table.stdout
    for fmt in ("json", "jsonl", "yaml"):
        result = clean(run_cli("render", "manifests/nasty.yaml", "-o", fmt))
        assert result.exit_code == 0, result.stderr
        if fmt == "yaml":
            [run] = yaml.safe_load(result.stdout)["runs"]
        elif fmt == "json":
            [run] = json.loads(result.stdout)["runs"]
        else:
            run = json.loads(result.stdout)
        assert run["input"] == {"text": NASTY} and run["options"]["additional_metadata"] == {"note": NASTY}
    diff = clean(run_cli("diff", "manifests/nasty.yaml"))
    assert diff.exit_code == 0
    assert diff.stdout.splitlines()[0].startswith('+ nasty  Report  {"text":"\\u001b[31mred\\u001b[0m \\u202eevil')
    plan = clean(run_cli("diff", "manifests/nasty.yaml", "-o", "json"))
    assert json.loads(plan.stdout)["runs"][0]["input"] == {"text": NASTY}
    applied = clean(run_cli("apply", "manifests/nasty.yaml", "--yes"))
    assert applied.exit_code == 0, applied.stderr


def test_engine_runs_escapes_what_other_clients_sent(tmp_path: Path, run_cli: RunCli) -> None:
    db = tmp_path / "engine.db"
    with Engine(db, port=0) as eng:
        config = ClientConfig(
            token=eng.token(), host_port=eng.address, server_url=eng.server_url, tls_strategy="none", environ={}
        )
        hatchet = Hatchet(config)
        try:
            hatchet.admin.run_workflow(FORGED, {"x": NASTY}, options={"additional_metadata": {"m": NASTY}})
        finally:
            hatchet.admin.close()
    table = clean(run_cli("engine", "runs", "--db", str(db)))
    assert table.exit_code == 0
    assert "Deploy\\x1b[2K\\rPlan: 0 to create\\x1b[8m" in table.stdout
    for fmt in ("json", "jsonl"):
        result = clean(run_cli("engine", "runs", "--db", str(db), "-o", fmt))
        runs: list[dict[str, Any]] = json.loads(result.stdout) if fmt == "json" else [json.loads(result.stdout)]
        assert (runs[0]["workflow_name"], runs[0]["input"]) == (FORGED, {"x": NASTY})


def test_messages_quoting_values_are_bounded(project: Path, run_cli: RunCli) -> None:
    """50 runs with a 4 MB key once wrote 200 MB of stderr."""
    write_manifest(
        project / "manifests" / "huge.yaml",
        '  - workflow_name: A\n    for_each: "{{ range(50) }}"\n    key: "{{ \'k\' * 4000000 }}{{ item }}"\n'
        "  - workflow_name: B\n    key: b\n    input_schema: {type: object, properties: {s: {type: integer}}}\n"
        "    input: {s: \"{{ 's' * 4000000 }}\"}\n",
    )
    result = clean(run_cli("validate", "manifests/huge.yaml", "--max-runs", "10000000"))  # a work budget for 200 MB
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 52 and len(result.stderr) < 20_000
    assert lines[0] == (
        "manifests/huge.yaml:7: runs[0] (item=0): key: must be a non-empty string of at most 512 printable "
        f"characters, got '{'k' * 77}...'"
    )
    assert lines[50] == f"manifests/huge.yaml:11: runs[1]: input.s: '{'s' * 77}...' is not of type 'integer'"


def test_json_and_yaml_stdout_are_whole_documents_or_nothing(project: Path, run_cli: RunCli) -> None:
    write_manifest(
        project / "manifests" / "half.yaml",
        '  - workflow_name: A\n    for_each: "{{ range(3000) }}"\n    key: "a-{{ item }}"\n    input: {n: "{{ item }}"}\n'
        '  - workflow_name: B\n    key: b\n    input: {n: "{{ undefined_thing }}"}\n',
    )
    for args in (["render", "-o", "json"], ["render", "-o", "yaml"], ["diff", "-o", "json"]):
        result = clean(run_cli(*args, "manifests/half.yaml"))
        assert result.exit_code == 1, args
        assert result.stdout == "", args
        assert "'undefined_thing' is undefined" in result.stderr
    result = clean(run_cli("render", "-o", "jsonl", "manifests/half.yaml"))
    assert result.exit_code == 1
    assert result.stdout.endswith("\n")
    assert [json.loads(line)["key"] for line in result.stdout.splitlines()] == [f"a-{i}" for i in range(3000)]
