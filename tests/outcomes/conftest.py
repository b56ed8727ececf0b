"""One served engine and one official-SDK worker process for the outcome tests (module-shared: they are the
expensive part), and a way to write manifests of `Launch` runs."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hatchet_client.engine import Engine

from tests.engine.dispatch_helpers import sdk_env, sdk_worker

WORKER = Path(__file__).with_name("launch_worker.py")


@pytest.fixture(scope="package")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with Engine(tmp_path_factory.mktemp("outcomes") / "engine.db", port=0, worker_timeout=10) as eng:
        yield eng


@pytest.fixture(scope="package")
def worker(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    pytest.importorskip("hatchet_sdk")
    with sdk_worker(engine, WORKER, "w-launch", "40", log=tmp_path_factory.mktemp("logs") / "worker.log"):
        yield


def cli_env(engine: Engine, state: Path) -> dict[str, str]:
    """The CLI pointed at the served engine, with its own state dir (ledger)."""
    env = sdk_env(engine)
    env["HATCHET_MANIFEST_STATE_DIR"] = str(state)
    return env


def launch_manifest(
    path: Path, name: str, count: int, *, failing: str = "", seconds: float = 0.0, every: int = 0
) -> Path:
    """A manifest of `count` Launch runs keyed `<name>-<i>`; with `every`, runs whose i is a multiple of it fail
    while the file `failing` exists."""
    fail = f"{{{{ '{failing}' if i % {every} == 0 else '' }}}}" if every else ""
    path.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: hatchet-manifest/v1
            kind: TriggerManifest
            metadata:
              name: {name}
            runs:
              - workflow_name: Launch
                for_each: "{{{{ range({count}) }}}}"
                as: i
                key: "{name}-{{{{ i }}}}"
                input:
                  n: "{{{{ i }}}}"
                  seconds: {seconds}
                  fail_while: "{fail}"
            """
        )
    )
    return path
