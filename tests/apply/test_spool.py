"""The spool: private, without a name on disk, and so never left behind, even by an apply that was killed."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hatchet_client import RunEncoder

from hatchet_manifest.apply import spool as spool_module
from hatchet_manifest.apply.spool import Spool, remove_stale
from hatchet_manifest.apply.tags import Tag

RUN = {"workflow_name": "W", "input": {"password": "hunter2"}, "options": {"additional_metadata": {"k": "v"}}}


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_spool_is_private_and_has_no_name(tmp_path: Path) -> None:
    with Spool(RunEncoder("", 1 << 22), tmp_path, batch_size=2) as spool:
        spool.write((Tag(f"k{i}", "d", "m", "f"), RUN) for i in range(5))
        info = os.fstat(spool.fileno())
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_nlink == 0  # no name anywhere: nobody else can open it
        assert list(tmp_path.iterdir()) == []  # while it holds the runs (and their secrets)
        assert info.st_size > 0
        assert [len(tags) for tags, _ in spool.chunks(2) or []] == [2, 2, 1]
        assert [tag.key for tag, _ in spool] == [f"k{i}" for i in range(5)]  # read back twice
        assert [len(tags) for tags, _ in spool.chunks(2) or []] == [2, 2, 1]
        fd = spool.fileno()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with the spool


def test_a_killed_apply_leaves_no_spool(tmp_path: Path) -> None:
    """A process that made a spool and was killed (kill -9: no cleanup at all) leaves nothing on disk: the
    kernel frees a file without a name when its last descriptor closes."""
    script = (
        "import os, sys; from pathlib import Path\n"
        "from hatchet_client import RunEncoder\n"
        "from hatchet_manifest.apply.tags import Tag\n"
        "from hatchet_manifest.apply.spool import Spool\n"
        "s = Spool(RunEncoder('', 1 << 22), Path(sys.argv[1]))\n"
        "s.write([(Tag('k', 'd', 'm', 'f'), {'workflow_name': 'W', 'input': {'password': 'hunter2'}})])\n"
        "print(os.readlink(f'/proc/self/fd/{s.fileno()}'), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert proc.stdout.decode().rstrip().endswith("(deleted)"), proc.stdout  # it was held, nameless, in tmp_path
    assert proc.stdout.decode().startswith(str(tmp_path)), proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_spools_left_with_a_name_are_deleted_by_the_next_one(tmp_path: Path) -> None:
    """Left by a process killed between making a spool and unlinking it, or by an earlier version (a directory
    holding runs.bin): deleted by the next spool in the same directory, unless a live apply holds it (locked)."""
    named = tmp_path / f"{spool_module.PREFIX}abc{spool_module.SUFFIX}"
    named.write_bytes(b"hunter2")
    old = tmp_path / f"{spool_module.PREFIX}old"
    old.mkdir()
    (old / spool_module.FILE).write_bytes(b"hunter2")
    live = tmp_path / f"{spool_module.PREFIX}live"
    live.mkdir()
    (live / spool_module.FILE).write_bytes(b"hunter2")
    young = tmp_path / f"{spool_module.PREFIX}young{spool_module.SUFFIX}"
    young.write_bytes(b"being made")
    for path in (named, old, live):
        _age(path, spool_module.STALE_AFTER + 1)
    fd = os.open(live / spool_module.FILE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with Spool(RunEncoder("", 1 << 22), tmp_path):
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, young.name])
    finally:
        os.close(fd)


def test_remove_stale_leaves_what_is_not_a_spool(tmp_path: Path) -> None:
    (tmp_path / "ledger.db").write_text("not a spool")
    (tmp_path / "hatchet-manifest-link").symlink_to(tmp_path)
    (tmp_path / "hatchet-manifest-notes.txt").write_text("not a spool either")
    empty = tmp_path / "hatchet-manifest-empty"
    empty.mkdir()
    for path in (empty, tmp_path / "hatchet-manifest-notes.txt"):
        _age(path, spool_module.STALE_AFTER + 1)  # (the directory: killed between making it and its file)
    assert remove_stale(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hatchet-manifest-link",
        "hatchet-manifest-notes.txt",
        "ledger.db",
    ]
