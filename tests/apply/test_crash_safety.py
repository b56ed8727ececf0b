"""Crash safety for real: an apply process killed at chosen and at random moments, then applied again,
leaves every key in the engine exactly once and none missing.

The engine runs in its own process (`hatchet-manifest engine serve`), the applies are subprocesses that use it
as a remote Hatchet (token from `engine token`), so reconciliation goes through the REST run listing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from hatchet_client.engine import RunStore

from tests.apply.conftest import cli_args as _cli
from tests.conftest import ROOT

COUNT = 400


def _apply(
    tmp_path: Path, env: dict[str, str], *extra: str, crash: str | None = None, count: int = COUNT
) -> subprocess.Popen[bytes]:
    run_env = dict(env)
    if crash:
        run_env["HATCHET_MANIFEST_CRASH_AT"] = crash
    args = _cli(
        "apply",
        str(tmp_path / "bulk-parent.yaml"),
        "--set",
        f"count={count}",
        "--batch-size",
        "10",
        "--concurrency",
        "2",
        "--yes",
        "--engine",
        "remote",
        "--state-dir",
        str(tmp_path / "state"),
        "--settle-grace",
        "0.5",
        *extra,
    )
    return subprocess.Popen(args, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)


def _finish(tmp_path: Path, env: dict[str, str], count: int = COUNT) -> None:
    """Apply again (resending what is settled as unknown) until everything is submitted."""
    for _ in range(5):
        time.sleep(0.6)  # older than --settle-grace: a killed apply's last call has long been committed
        proc = _apply(tmp_path, env, "--resubmit-unknown", count=count)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            return
        assert proc.returncode in (3,), err.decode()
    raise AssertionError("apply did not converge")


def _assert_exactly_once(env: dict[str, str], count: int = COUNT) -> None:
    store = RunStore(env["ENGINE_DB"])
    try:
        keys = Counter(r.additional_metadata["hatchet-manifest/key"] for r in store.list_runs())
    finally:
        store.close()
    assert len(keys) == count, f"{count - len(keys)} keys missing"
    twice = [k for k, n in keys.items() if n > 1]
    assert not twice, f"submitted twice: {twice[:10]}"


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "manifests" / "bulk-parent.yaml", tmp_path / "bulk-parent.yaml")
    return tmp_path / "bulk-parent.yaml"


@pytest.mark.parametrize("crash", ["after-pending:0", "after-pending:7", "before-outcome:3", "before-outcome:20"])
def test_crash_at_a_chosen_point_then_reapply(
    tmp_path: Path, engine: dict[str, str], manifest: Path, crash: str
) -> None:
    proc = _apply(tmp_path, engine, crash=crash)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 137, err.decode()
    if crash.startswith("after-pending"):  # a chunk recorded pending, never sent: its fate is unknown
        time.sleep(0.6)
        again = _apply(tmp_path, engine)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 3, err.decode()  # not "all submitted": those runs are listed, not resent
        # That chunk, and the ones before it that were recorded but not sent yet: the write-ahead runs one chunk
        # ahead of the sending, and the pipeline draws the next chunk before a slot frees.
        listed = out.decode().count("  unknown, not sent again (--resubmit-unknown sends it): bulk-parent-")
        assert listed in (10, 20, 30), out.decode()
    _finish(tmp_path, engine)
    _assert_exactly_once(engine)


def test_kill_9_at_random_moments_then_reapply(tmp_path: Path, engine: dict[str, str], manifest: Path) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    for _ in range(4):
        proc = _apply(tmp_path, engine)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.communicate(timeout=60)
    _finish(tmp_path, engine)
    _assert_exactly_once(engine)


# The 60th call stalls for 3 s: the apply is surely still sending when Ctrl-C comes, however slow the machine.
@pytest.mark.engine_faults('[{"kind": "stall", "on_call": 60, "seconds": 3}]')
def test_ctrl_c_records_what_was_submitted_and_exits_130(
    tmp_path: Path, engine: dict[str, str], manifest: Path
) -> None:
    proc = _apply(tmp_path, {**engine, "PYTHONFAULTHANDLER": "1"}, count=20_000)
    store = RunStore(engine["ENGINE_DB"])
    try:
        deadline = time.monotonic() + 60
        while store.count() < 500 and time.monotonic() < deadline:  # well into the submission
            time.sleep(0.02)
    finally:
        store.close()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # say where it is stuck (PYTHONFAULTHANDLER dumps every thread on SIGABRT)
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        raise AssertionError("the interrupted apply did not stop:\n" + err.decode()[-20000:]) from None
    assert proc.returncode == 130, err.decode()
    assert b"interrupted: what was submitted is recorded" in err
    assert b"Traceback" not in err
    assert b"sent 20000/20000" not in err
    # A call being started when Ctrl-C came has an unknown fate; the rest was recorded as it is.
    _finish(tmp_path, engine, count=20_000)
    _assert_exactly_once(engine, 20_000)
