"""The spool: private, deleted at the end, and never left on disk by an apply that was killed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from hatchet_client import RunEncoder

from hatchet_manifest.apply import spool as spool_module
from hatchet_manifest.apply.spool import Spool, remove_stale
from hatchet_manifest.apply.tags import Tag

RUN = {"workflow_name": "W", "input": {"password": "hunter2"}, "options": {"additional_metadata": {"k": "v"}}}


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_spool_is_private_and_gone_when_closed(tmp_path: Path) -> None:
    with Spool(RunEncoder("", 1 << 22), tmp_path, batch_size=2) as spool:
        spool.write((Tag(f"k{i}", "d", "m", "f"), RUN) for i in range(5))
        assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(spool.path.parent.stat().st_mode) == 0o700
        assert [len(tags) for tags, _ in spool.chunks(2) or []] == [2, 2, 1]
    assert list(tmp_path.iterdir()) == []


def test_a_killed_apply_spool_is_deleted_by_the_next_one(tmp_path: Path) -> None:
    """A process that made a spool and was killed (kill -9: no cleanup) leaves its secrets on disk until the next
    spool in the same state directory deletes them; a live spool in the directory is left alone."""
    script = (
        "import os, sys; from pathlib import Path\n"
        "from hatchet_client import RunEncoder\n"
        "from hatchet_manifest.apply.tags import Tag\n"
        "from hatchet_manifest.apply.spool import Spool\n"
        "s = Spool(RunEncoder('', 1 << 22), Path(sys.argv[1]))\n"
        "s.write([(Tag('k', 'd', 'm', 'f'), {'workflow_name': 'W', 'input': {'password': 'hunter2'}})])\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    [left] = list(tmp_path.iterdir())
    assert b"hunter2" in (left / "runs.bin").read_bytes()

    with Spool(RunEncoder("", 1 << 22), tmp_path) as live:
        assert left.exists()  # too young to tell from a spool being made: kept for now
        _age(left, spool_module.STALE_AFTER + 1)
        _age(live.path.parent, spool_module.STALE_AFTER + 1)
        with Spool(RunEncoder("", 1 << 22), tmp_path) as other:
            assert not left.exists()  # unlocked and old: deleted
            assert live.path.exists()  # locked by a live spool: kept, however old
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.path.parent.name, other.path.parent.name])


def test_remove_stale_leaves_what_is_not_a_spool(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_text("not a spool")
    (tmp_path / "hatchet-manifest-link").symlink_to(tmp_path)
    empty = tmp_path / "hatchet-manifest-empty"
    empty.mkdir()
    _age(empty, spool_module.STALE_AFTER + 1)  # killed between making its directory and its file
    assert remove_stale(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hatchet-manifest-link", "ledger.db"]
