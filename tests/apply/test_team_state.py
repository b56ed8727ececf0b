"""Team state: the engine as the source of truth for fresh runners, and concurrent applies on a shared
PostgreSQL ledger. Engines are served by `hatchet-manifest engine serve`; applies are real subprocesses."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from hatchet_client.engine import RunStore

from tests.apply.conftest import cli_args
from tests.conftest import ROOT


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_args(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def stored_keys(env: dict[str, str]) -> Counter[str]:
    store = RunStore(env["ENGINE_DB"])
    try:
        return Counter(r.additional_metadata["hatchet-manifest/key"] for r in store.list_runs())
    finally:
        store.close()


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return tmp_path


def test_fresh_ledger_relies_on_the_engine_lookup(manifests: Path, engine: dict[str, str]) -> None:
    first = run(engine, manifests, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "runner-1")
    assert first.returncode == 0, first.stderr
    assert "32 submitted" in first.stdout

    diff = run(
        engine, manifests, "diff", "manifests", "--engine", "remote", "--state-dir", "runner-2", "--detailed-exitcode"
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert diff.stdout.splitlines()[-1] == "Plan: 0 to create, 0 changed, 32 unchanged, 0 removed, 0 unknown."
    assert (
        "the ledger had no record of this target" in diff.stderr
        and "32 were found there (apply records them in the ledger)" in diff.stderr
    )

    blind = run(
        engine, manifests, "diff", "manifests", "--engine", "remote", "--state-dir", "runner-3", "--no-engine-lookup"
    )
    assert blind.stdout.splitlines()[-1].startswith("Plan: 32 to create")
    assert "--no-engine-lookup" in blind.stderr

    for runner in ("runner-4", "runner-5", "runner-6"):  # three fresh CI runners in turn, no shared ledger
        again = run(engine, manifests, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", runner)
        assert again.returncode == 0, again.stderr
        assert "0 submitted" in again.stdout and "32 unchanged" in again.stdout
    keys = stored_keys(engine)
    assert len(keys) == 32 and set(keys.values()) == {1}


def test_the_token_never_appears_in_output_plans_or_errors(manifests: Path, engine: dict[str, str]) -> None:
    token = engine["HATCHET_CLIENT_TOKEN"]
    outputs = [
        run(engine, manifests, "apply", "manifests", "--yes", "--engine", "remote", "--state-dir", "s", "-o", "json"),
        run(
            engine,
            manifests,
            "diff",
            "manifests",
            "--engine",
            "remote",
            "--state-dir",
            "s",
            "-o",
            "json",
            "--out",
            "p.json",
        ),
        run(engine, manifests, "apply", "p.json", "--yes", "--engine", "remote", "--state-dir", "s"),
        run(
            {**engine, "HATCHET_CLIENT_TOKEN": token[:-3] + "xyz"},
            manifests,
            "apply",
            "manifests",
            "--yes",
            "--engine",
            "remote",
            "--state-dir",
            "s2",
        ),
        run(
            {**engine, "HATCHET_CLIENT_TOKEN": "not-a-jwt-" + token},
            manifests,
            "diff",
            "manifests",
            "--engine",
            "remote",
        ),
    ]
    assert outputs[0].returncode == 0 and outputs[2].returncode == 0
    assert outputs[3].returncode == 1 and "token signature is invalid" in outputs[3].stderr  # refused, and said
    assert outputs[4].returncode == 1 and "Traceback" not in outputs[4].stderr
    for out in outputs:
        assert token not in out.stdout + out.stderr
        assert token[-20:] not in out.stdout + out.stderr
    assert token not in (manifests / "p.json").read_text()
    for path in (manifests / "s").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes()


@pytest.mark.parametrize("attempt", range(3))
def test_two_concurrent_applies_on_one_postgres_ledger(
    manifests: Path, engine: dict[str, str], pg_url: str, attempt: int
) -> None:
    url = pg_url
    rng = random.Random(attempt)
    common = ["--yes", "--engine", "remote", "--ledger", url, "--lock-wait", "120", "--batch-size", "50"]
    small = cli_args("apply", "manifests/bulk-parent.yaml", "--set", "count=300", *common, "--state-dir", "a")
    big = cli_args("apply", "manifests", "--set", "count=500", *common, "--state-dir", "b")
    procs: list[subprocess.Popen[str]] = []
    try:
        for args in (small, big) if attempt % 2 == 0 else (big, small):
            procs.append(
                subprocess.Popen(
                    args, env=engine, cwd=manifests, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
            time.sleep(rng.uniform(0, 0.4))
        errs = []
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, out + err
            errs.append(err)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    waited = [e for e in errs if "waiting up to 120s for the ledger lock" in e]
    assert all("got the ledger lock" in e for e in waited)
    keys = stored_keys(engine)
    assert len(keys) == 500 + 12
    assert [k for k, n in keys.items() if n > 1] == []


def test_stamp_lookups_one_by_one_and_by_listing_agree(manifests: Path, engine: dict[str, str]) -> None:
    from datetime import UTC, datetime, timedelta

    from hatchet_manifest.plan.lookup import FEW_KEYS, StampIndex
    from hatchet_manifest.plan.target import connect

    applied = run(
        engine,
        manifests,
        "apply",
        "manifests/bulk-parent.yaml",
        "--set",
        "count=60",
        "--yes",
        "--engine",
        "remote",
        "--state-dir",
        "s",
    )
    assert applied.returncode == 0, applied.stderr
    store = RunStore(engine["ENGINE_DB"])
    try:
        ids = {
            r.additional_metadata["hatchet-manifest/key"]: (r.run_id, r.additional_metadata["hatchet-manifest/digest"])
            for r in store.list_runs()
        }
    finally:
        store.close()
    few = ["bulk-parent-3", "bulk-parent-59", "absent"]
    many = [f"bulk-parent-{i}" for i in range(0, 60, 2)] + ["absent"]
    assert len(few) <= FEW_KEYS < len(many)
    with connect("remote", manifests / "s", environ=engine) as conn:
        index = StampIndex(conn, datetime.now(UTC) - timedelta(hours=1))
        try:
            assert index.find("bulk-parent", few) == {k: ids[k] for k in few[:2]}
            assert "bulk-parent" not in index.stamped  # asked key by key: the listing was not read
            assert index.find("bulk-parent", many) == {k: ids[k] for k in many[:-1]}
            assert index.stamped["bulk-parent"] == 60
        finally:
            index.close()
