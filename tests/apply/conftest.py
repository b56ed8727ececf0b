"""Fixtures for diff/apply: a clean environment, a project directory with manifests, and ledger/engine readers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hatchet_client.engine import RunStore
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI", "HATCHET_CLIENT_TOKEN", "HATCHET_CLIENT_NAMESPACE", "HATCHET_MANIFEST_LEDGER", "HATCHET_MANIFEST_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped manifests and schemas in a fresh directory, which is the working directory."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def engine_runs(state_dir: Path) -> list[dict[str, object]]:
    store = RunStore(state_dir / "engine.db")
    try:
        return [
            {"workflow_name": r.workflow_name, "input": r.input, "metadata": r.additional_metadata, "run_id": r.run_id}
            for r in store.list_runs()
        ]
    finally:
        store.close()
