"""The manifests as they were at a git revision (for `diff --base REV`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hatchet_manifest.errors import ConfigError


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except OSError as exc:
        raise ConfigError(f"--base needs git: {exc}") from None
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise ConfigError(f"git {' '.join(args)}: {why}")
    return done.stdout


def checkout_paths(rev: str, paths: list[str], dest: Path) -> list[str]:
    """Write the files under `paths` as they were at `rev` into `dest`; returns the paths to load there.

    A path that did not exist at `rev` yields nothing (everything in it is new)."""
    cwd = Path.cwd()
    if not rev or rev.startswith("-") or any(ord(c) < 32 or ord(c) == 127 for c in rev):
        raise ConfigError(f"--base {rev!r}: not a git revision")
    top = Path(_git(["rev-parse", "--show-toplevel"], cwd).decode().strip())
    try:
        _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], cwd)
    except ConfigError:
        raise ConfigError(
            f"--base {rev!r}: no such commit in the repository at {top} (a shallow CI checkout may need "
            f"`git fetch origin {rev}` or a fetch depth of 0)"
        ) from None
    out: list[str] = []
    for raw in paths:
        try:
            rel = Path(raw).resolve().relative_to(top.resolve())
        except ValueError:
            raise ConfigError(f"--base compares files in git: {raw} is outside the repository at {top}") from None
        listing = _git(["ls-tree", "-r", "--name-only", "-z", rev, "--", str(rel)], top).split(b"\0")
        files = [f.decode() for f in listing if f]
        for name in files:
            if not name.endswith((".yaml", ".yml")) and name != str(rel):
                continue
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git(["show", f"{rev}:{name}"], top))
        if files:
            out.append(str(dest / rel))
    return out
