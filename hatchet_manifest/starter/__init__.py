"""The files `hatchet-manifest init` lays out in a repository: a starter manifest, the manifest JSON Schema
(generated from the models, so it never drifts), a pre-commit config and the GitHub Actions example.

`ci/` is a copy of the repository's `examples/ci/` (a test keeps them equal), shipped as package data. Nothing
here prints: `write_starter` returns what it wrote or raises.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from hatchet_manifest.errors import ConfigError

CI_DIR = "ci"
WORKFLOW = "hatchet-manifest.yaml"
WORKFLOW_PATH = PurePosixPath(".github/workflows") / WORKFLOW
CI_SUPPORT_DIR = PurePosixPath(".github/hatchet-manifest")


@dataclass(frozen=True, slots=True)
class StarterFile:
    """A file to write: its path relative to the target directory, its bytes, whether it is a script."""

    path: PurePosixPath
    content: bytes
    executable: bool = False


class FilesExistError(ConfigError):
    """Some of the files to write exist already: nothing was written."""

    def __init__(self, directory: Path, paths: list[PurePosixPath]) -> None:
        self.paths = paths
        listed = "\n".join(f"  {directory / p}" for p in paths)
        super().__init__(
            f"{len(paths)} of the files init writes exist already, so nothing was written (init never overwrites a "
            f"file; move them away or pick another directory):\n{listed}"
        )


def schema_text() -> str:
    """The manifest JSON Schema, exactly as `hatchet-manifest schema` prints it."""
    from hatchet_manifest.manifest.model import manifest_json_schema

    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n"


def ci_files() -> dict[str, bytes]:
    """The shipped CI example: file name -> bytes."""
    root = resources.files(__name__).joinpath(CI_DIR)
    return {entry.name: entry.read_bytes() for entry in root.iterdir() if entry.is_file()}


def _data(name: str) -> bytes:
    return resources.files(__name__).joinpath("files", name).read_bytes()


def starter_files() -> list[StarterFile]:
    """Every file init writes, in the order it writes them."""
    found = [
        StarterFile(PurePosixPath("manifests/example.yaml"), _data("example.yaml")),
        StarterFile(PurePosixPath("schemas/manifest.schema.json"), schema_text().encode()),
        StarterFile(PurePosixPath(".pre-commit-config.yaml"), _data("pre-commit-config.yaml")),
    ]
    ci = [
        StarterFile(WORKFLOW_PATH if name == WORKFLOW else CI_SUPPORT_DIR / name, content, name.endswith(".sh"))
        for name, content in ci_files().items()
    ]
    return found + sorted(ci, key=lambda f: f.path)


def conflicts(directory: Path, files: list[StarterFile]) -> list[PurePosixPath]:
    """The paths in the way: files that exist (symlinks included, even dangling ones), and parents that are not
    directories."""
    seen: list[PurePosixPath] = []
    for f in files:
        for parent in reversed(f.path.parents[:-1]):  # .github, then .github/workflows
            target = directory / parent
            if (target.exists() or target.is_symlink()) and not target.is_dir() and parent not in seen:
                seen.append(parent)
        target = directory / f.path
        if (target.exists() or target.is_symlink()) and f.path not in seen:
            seen.append(f.path)
    return seen


def write_starter(directory: Path) -> list[StarterFile]:
    """Write the starter files under `directory` (created when missing) and return them; ConfigError when
    `directory` is not a directory, FilesExistError (naming them all, writing nothing) when any is in the way."""
    if (directory.exists() or directory.is_symlink()) and not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory: init writes its files into a directory")
    files = starter_files()
    taken = conflicts(directory, files)
    if taken:
        raise FilesExistError(directory, taken)
    written: list[Path] = []
    made: list[Path] = []
    try:
        _mkdirs(directory, made)
        for f in files:
            target = directory / f.path
            _mkdirs(target.parent, made)
            _write_new(target, f.content, 0o755 if f.executable else 0o644)
            written.append(target)
    except FileExistsError:  # created by someone else since the check: undo, and name them all
        _undo(written, made)
        raise FilesExistError(directory, conflicts(directory, files)) from None
    except OSError as exc:
        _undo(written, made)
        raise ConfigError(f"cannot write the starter files in {directory}: {exc.strerror or exc}") from None
    return files


def _mkdirs(path: Path, made: list[Path]) -> None:
    """mkdir -p, remembering the directories it made (deepest last)."""
    missing = []
    for p in [path, *path.parents]:
        if p.is_dir():
            break
        missing.append(p)
    for p in reversed(missing):
        p.mkdir()
        made.append(p)


def _write_new(path: Path, content: bytes, mode: int) -> None:
    """Create `path` (never replacing anything there, nor following a symlink) with `content`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, mode)  # the umask may have taken bits away
        out.write(content)


def _undo(written: list[Path], made: list[Path]) -> None:
    for path in written:
        with contextlib.suppress(OSError):
            path.unlink()
    for path in reversed(made):
        with contextlib.suppress(OSError):
            path.rmdir()
