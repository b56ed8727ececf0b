"""env() and secret() read only what the operator allows, from the command line or the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.manifest.test_secrets import VALUE, S, manifest, one_input
from tests.manifest.test_secrets import secret_env as secret_env  # the autouse fixture

# -- allow lists ------------------------------------------------------------------------------------------------


def env_manifest(tmp_path: Path, *names: str) -> Path:
    leaves = "".join(f"      v{i}: \"{{{{ env('{n}') }}}}\"\n" for i, n in enumerate(names))
    return manifest(tmp_path, f"  - workflow_name: W\n    key: k\n    input:\n{leaves}")


def test_env_reads_only_what_the_operator_allows(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("REGION", "eu"), ("BACKFILL_FROM", "2026-01-01"), ("BACKFILL_DB_PASSWORD", "pgpw-1234")):
        monkeypatch.setenv(name, value)
    path = env_manifest(tmp_path, "REGION", "BACKFILL_FROM")
    refused = run_cli("render", str(path), "-o", "json")
    assert refused.exit_code == 1
    assert (
        f"{path}:8: runs[0]: input.v0: env('REGION') is not allowed: the operator allows variables with --allow-env "
        "REGION (or HATCHET_MANIFEST_ALLOW_ENV=REGION); a manifest cannot"
    ) in refused.stderr
    flags = run_cli("render", str(path), "-o", "json", "--allow-env", "REGION", "--allow-env", "BACKFILL_*")
    assert flags.exit_code == 0, flags.stderr
    assert json.loads(flags.stdout)["runs"][0]["input"] == {"v0": "eu", "v1": "2026-01-01"}
    from_env = run_cli("render", str(path), "-o", "json", env={"HATCHET_MANIFEST_ALLOW_ENV": "REGION, BACKFILL_*"})
    assert from_env.exit_code == 0 and from_env.stdout == flags.stdout
    joined = run_cli(  # the command line adds to the environment's list
        "render", str(path), "-o", "json", "--allow-env", "REGION", env={"HATCHET_MANIFEST_ALLOW_ENV": "BACKFILL_*"}
    )
    assert joined.exit_code == 0 and joined.stdout == flags.stdout
    # a prefix does not hand out what looks like a credential; the exact name does
    creds = env_manifest(tmp_path, "BACKFILL_DB_PASSWORD")
    result = run_cli("render", str(creds), "--allow-env", "BACKFILL_*")
    assert result.exit_code == 1 and "pgpw-1234" not in result.stdout + result.stderr
    assert (
        "env('BACKFILL_DB_PASSWORD') is refused: it matches --allow-env BACKFILL_* but looks like a credential"
        in result.stderr
    )
    exact = run_cli("render", str(creds), "-o", "json", "--allow-env", "BACKFILL_DB_PASSWORD")
    assert exact.exit_code == 0 and json.loads(exact.stdout)["runs"][0]["input"] == {"v0": "pgpw-1234"}


@pytest.mark.parametrize(
    "name",
    ["HATCHET_MANIFEST_LEDGER", "HATCHET_CLIENT_TOKEN", "HATCHET_CLIENT_HOST_PORT", "DB_PASS", "MYSQL_PWD", "PGPASS"],
)
def test_env_never_reads_the_tools_settings_nor_unlisted_credentials(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "postgresql://u:pw-9876@db/x")
    path = manifest(
        tmp_path, f"  - workflow_name: W\n    key: k\n    input: {{v: \"{{{{ env('{name}') | reverse }}}}\"}}\n"
    )
    result = run_cli("render", str(path), "--allow-env", "DB_*", "--allow-env", "MYSQL_*", "--allow-env", "PG*")
    assert result.exit_code == 1
    assert "pw-9876" not in result.stdout + result.stderr and "6789-wp" not in result.stdout + result.stderr
    assert f"env('{name}') is refused" in result.stderr


def test_a_name_allowed_as_a_secret_is_not_readable_by_env(tmp_path: Path, run_cli: RunCli) -> None:
    path = env_manifest(tmp_path, "HM_TEST_SECRET")
    result = run_cli("render", str(path), "--allow-env", "HM_*", "--allow-secret", "HM_TEST_SECRET")
    assert result.exit_code == 1 and VALUE not in result.stdout + result.stderr
    assert "env('HM_TEST_SECRET') is refused: HM_TEST_SECRET is allowed as a secret: use secret('HM_TEST_SECRET')" in (
        result.stderr
    )


def test_secret_reads_only_what_the_operator_allows(tmp_path: Path, run_cli: RunCli) -> None:
    path = one_input(tmp_path, f"{{{{ {S} }}}}")
    refused = run_cli("render", str(path))
    assert refused.exit_code == 1
    assert (
        "secret('HM_TEST_SECRET') is not allowed: the operator allows secrets with --allow-secret HM_TEST_SECRET (or "
        "HATCHET_MANIFEST_ALLOW_SECRETS=HM_TEST_SECRET); a manifest cannot"
    ) in refused.stderr
    for args, env in (
        (["--allow-secret", "HM_TEST_SECRET"], None),
        (["--allow-secret", "HM_TEST_*"], None),
        ([], {"HATCHET_MANIFEST_ALLOW_SECRETS": "OTHER,HM_TEST_SECRET"}),
    ):
        result = run_cli("render", str(path), "-o", "json", *args, env=env)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["runs"][0]["input"] == {"x": "***"}


def test_a_values_file_or_manifest_cannot_allow_anything(tmp_path: Path, run_cli: RunCli) -> None:
    path = manifest(
        tmp_path,
        "  - workflow_name: W\n    key: k\n    input: {x: \"{{ env('REGION', 'none') }}\"}\n",
        extra="vars: {allow_env: [REGION], HATCHET_MANIFEST_ALLOW_ENV: REGION}\n",
    )
    values = tmp_path / "values.yaml"
    values.write_text("allow_env: [REGION]\nallow-env: REGION\nHATCHET_MANIFEST_ALLOW_ENV: REGION\n")
    result = run_cli("render", str(path), "-f", str(values))
    assert result.exit_code == 1 and "env('REGION') is not allowed" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--allow-env", "*", "'*': not a variable name"),
        ("--allow-env", "A-B", "'A-B': not a variable name"),
        ("--allow-env", "HATCHET_MANIFEST_LEDGER", "are the tool's own settings"),
        ("--allow-secret", "HATCHET_CLIENT_*", "are the tool's own settings"),
    ],
)
def test_bad_allow_names_are_config_errors(
    tmp_path: Path, run_cli: RunCli, flag: str, value: str, message: str
) -> None:
    path = one_input(tmp_path, "x")
    result = run_cli("validate", str(path), flag, value)
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["validate", "render", "diff", "apply"])
def test_every_rendering_command_takes_the_allow_lists(run_cli: RunCli, command: str) -> None:
    result = run_cli(command, "--help")
    assert "--allow-env NAME" in result.stdout and "--allow-secret NAME" in result.stdout
    assert "HATCHET_MANIFEST_ALLOW_ENV" in result.stdout and "HATCHET_MANIFEST_ALLOW_SECRETS" in result.stdout
