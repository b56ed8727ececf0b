"""SIGTERM (what CI runners and Kubernetes send on cancel) stops an apply as cleanly as Ctrl-C: calls in flight
settled, unsent chunks recorded failed, the spool removed, exit 143 with "terminated"; the next apply sends the
rest and finds no run of unknown fate. And the spool, which holds secret values, is never left on disk: it has no
name while it lives (held open by the apply), and nothing is left after a normal exit, an error, a refusal or
SIGTERM.

Real apply processes against a served engine (tests/apply/conftest.py), real SQLite ledgers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from hatchet_client.engine import RunStore

from hatchet_manifest.ledger import open_ledger
from tests.apply.conftest import cli_args
from tests.apply.test_crash_safety import _apply, _assert_exactly_once

SECRET = "s3cr3t-value-for-the-spool"
SECRET_MANIFEST = """\
apiVersion: hatchet-manifest/v1
kind: TriggerManifest
metadata: {name: with-secret}
vars: {count: 10}
runs:
  - workflow_name: UsesSecret
    for_each: "{{ range(count) }}"
    as: i
    key: "s-{{ i }}"
    input: {i: "{{ i }}", password: "{{ secret('SPOOL_TEST_PASSWORD') }}"}
"""


def _states(state_dir: Path) -> Counter[str]:
    with open_ledger(None, state_dir) as ledger:
        return Counter(e.state for t in ledger.targets() for e in ledger.entries(t))


def _spools(state_dir: Path) -> list[Path]:
    """Spools left in the state directory (a spool has no name while it lives: there should never be any)."""
    return sorted(state_dir.glob("hatchet-manifest-*")) if state_dir.exists() else []


def _open_spool(pid: int, state_dir: Path) -> bool:
    """Whether process `pid` holds its spool open: a file of the state directory without a name."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        links = [os.readlink(fd) for fd in fds.iterdir()]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return any(link.startswith(str(state_dir)) and link.endswith("(deleted)") for link in links)


def _wait_for(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _engine_count(db: str) -> int:
    store = RunStore(db)
    try:
        return store.count()
    finally:
        store.close()


def _communicate(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    try:
        return proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # say where it is stuck (PYTHONFAULTHANDLER dumps every thread on SIGABRT)
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        raise AssertionError("the terminated apply did not stop:\n" + err.decode()[-20000:]) from None


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    from tests.conftest import ROOT

    (tmp_path / "bulk-parent.yaml").write_text((ROOT / "manifests" / "bulk-parent.yaml").read_text())
    return tmp_path / "bulk-parent.yaml"


# The 60th call stalls for 3 s: the apply is surely still sending when SIGTERM comes, however slow the machine.
@pytest.mark.engine_faults('[{"kind": "stall", "on_call": 60, "seconds": 3}]')
def test_sigterm_stops_like_ctrl_c_exits_143_and_the_next_apply_sends_the_rest(
    tmp_path: Path, engine: dict[str, str], manifest: Path
) -> None:
    state = tmp_path / "state"
    proc = _apply(tmp_path, {**engine, "PYTHONFAULTHANDLER": "1"}, count=20_000)
    _wait_for(lambda: _engine_count(engine["ENGINE_DB"]) >= 500, "the apply to be well into the submission")
    assert _open_spool(proc.pid, state) and _spools(state) == []  # held, with no name
    proc.send_signal(signal.SIGTERM)
    out, err = _communicate(proc)
    assert proc.returncode == 143, err.decode()
    assert b"terminated: what was submitted is recorded; run apply again to continue" in err
    assert b"Traceback" not in err
    assert b"sent 20000/20000" not in err
    assert _spools(state) == []  # removed on the way out
    states = _states(state)
    assert states["pending"] == 0, states  # every chunk recorded before it was sent has an outcome
    assert 0 < states["submitted"] < 20_000
    assert states["failed"] > 0  # chunks recorded ahead but never sent, or never recorded: the next apply sends them
    assert sum(states.values()) < 20_000 or states["failed"] + states["submitted"] + states["unknown"] == 20_000

    time.sleep(0.6)  # older than --settle-grace: the last call started before SIGTERM has long been committed
    again = _apply(tmp_path, engine, "-o", "json", count=20_000)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["unknown"] == 0 and result["skipped_unknown"] == 0, result
    assert result["failed"] == 0 and result["submitted"] + result["plan"].get("unchanged", 0) == 20_000, result
    assert _states(state) == Counter(submitted=20_000)
    _assert_exactly_once(engine, count=20_000)
    assert _spools(state) == []


def test_sigterm_during_rendering_exits_143_and_leaves_no_spool(
    tmp_path: Path, engine: dict[str, str], manifest: Path
) -> None:
    """SIGTERM while the runs are rendered and spooled (pass 1): nothing sent, nothing recorded, no spool left."""
    state = tmp_path / "state"
    proc = _apply(tmp_path, engine, "--max-runs", "2000000", count=1_000_000)
    _wait_for(lambda: _open_spool(proc.pid, state), "the spool to be made", timeout=120)
    proc.send_signal(signal.SIGTERM)
    _, err = _communicate(proc)
    assert proc.returncode == 143, err.decode()
    assert err.decode().rstrip().endswith("terminated"), err.decode()
    assert b"Traceback" not in err
    assert _spools(state) == []
    assert _engine_count(engine["ENGINE_DB"]) == 0


def _secret_apply(tmp_path: Path, env: dict[str, str], *extra: str, manifest: str = SECRET_MANIFEST) -> tuple[int, str]:
    (tmp_path / "secret.yaml").write_text(manifest)
    args = cli_args(
        "apply",
        str(tmp_path / "secret.yaml"),
        "--engine",
        "remote",
        "--state-dir",
        str(tmp_path / "state"),
        "--allow-secret",
        "SPOOL_TEST_PASSWORD",
        *extra,
    )
    proc = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True, cwd=tmp_path, timeout=120)
    assert SECRET.encode() not in proc.stdout + proc.stderr
    assert b"Traceback" not in proc.stderr
    return proc.returncode, proc.stderr.decode()


def test_no_spool_remains_after_refusals_errors_and_normal_exit(tmp_path: Path, engine: dict[str, str]) -> None:
    state = tmp_path / "state"
    with_secret = {**engine, "SPOOL_TEST_PASSWORD": SECRET}
    # everything spooled, then the confirmation refused (no terminal, no --yes)
    code, err = _secret_apply(tmp_path, with_secret)
    assert code == 1 and "pass --yes to confirm" in err, err
    assert _spools(state) == []
    # a run fails to render while the others are spooled
    broken = SECRET_MANIFEST.replace('"{{ i }}", password', '"{{ 1 // (i - 5) }}", password')
    code, err = _secret_apply(tmp_path, with_secret, "--yes", manifest=broken)
    assert code == 1 and "ZeroDivisionError" in err, err
    assert _spools(state) == []
    # the secret is missing at apply
    code, err = _secret_apply(tmp_path, engine, "--yes")
    assert code == 1 and "secret SPOOL_TEST_PASSWORD is not set in the environment" in err, err
    assert _spools(state) == []
    assert _engine_count(engine["ENGINE_DB"]) == 0
    # normal exit: everything submitted
    code, err = _secret_apply(tmp_path, with_secret, "--yes")
    assert code == 0, err
    assert _spools(state) == []
    assert _engine_count(engine["ENGINE_DB"]) == 10


def test_sigterm_to_the_whole_group_during_a_parallel_render(tmp_path: Path, engine: dict[str, str]) -> None:
    """A cancelled CI job signals the whole process group: the render workers leave the stopping to the apply,
    which stops them, removes its spool and exits 143."""
    import psutil

    state = tmp_path / "state"
    (tmp_path / "secret.yaml").write_text(SECRET_MANIFEST)
    args = cli_args(
        "apply",
        str(tmp_path / "secret.yaml"),
        "--set",
        "count=1000000",
        "--max-runs",
        "2000000",
        "--yes",
        "--workers",
        "2",
        "--engine",
        "remote",
        "--state-dir",
        str(state),
        "--allow-secret",
        "SPOOL_TEST_PASSWORD",
    )
    env = {**engine, "SPOOL_TEST_PASSWORD": SECRET, "HATCHET_MANIFEST_PARALLEL_THRESHOLD": "0"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_for(lambda: _open_spool(proc.pid, state), "the spool to be made", timeout=120)
        children = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = _communicate(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, err.decode()
    assert err.decode().rstrip().endswith("terminated"), err.decode()
    assert b"Traceback" not in err and SECRET.encode() not in err
    assert _spools(state) == []
    assert _engine_count(engine["ENGINE_DB"]) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"render workers outlived their apply: {alive}"
