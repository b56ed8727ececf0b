"""Input JSON Schemas loaded for validation: `SchemaRegistry` (by workflow name or by path, loaded once), the
containment that keeps every schema path inside the manifests' repository (`repository_root`), the bounds of a
schema file (size, nesting: `json_depth_over`), and compiling one (RE2 patterns, local finite `$ref`s)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatchet_manifest.files import FileProblem, read_bounded
from hatchet_manifest.text import quote

if TYPE_CHECKING:
    import jsonschema

MAX_SCHEMA_BYTES = 1 << 20
MAX_SCHEMA_DEPTH = 64
DEFAULT_SCHEMA_DIR = Path("schemas/inputs")
_OUTSIDE = "refused: input schema paths must lead to a file inside the repository that holds the manifest"


def repository_root(directory: Path) -> Path:
    """The tree input schemas of manifests in `directory` must stay in: the git work tree holding it (the nearest
    parent with a `.git`), or outside git the current directory when it holds `directory`, else `directory`."""
    start = directory.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    here = Path.cwd().resolve()
    return here if _inside(start, here) else start


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _contained(start: Path, relative: str, root: Path) -> Path | None:
    """`start / relative` with its symlinks resolved, when both it and its lexical form are inside `root` (which is
    resolved); None otherwise. The lexical check first: a path plainly outside is not even looked at."""
    joined = start / relative  # an absolute `relative` replaces `start`
    if not _inside(Path(os.path.normpath(joined)), root):
        return None
    try:
        real = joined.resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unreadable component, a NUL in the path
        return None
    return real if _inside(real, root) else None


def json_depth_over(value: Any, limit: int) -> bool:
    """True when a JSON value nests deeper than `limit` lists and objects (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth > limit:
                return True
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return False


class _Refused:
    """A cached failure: the same message for every run that asks."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


_MISSING = _Refused("")


class SchemaRegistry:
    """Input JSON Schemas by workflow name (`<dir>/<workflow_name>.json`) or by path, loaded once.

    `schema_dir`: an absolute directory is used as is (`--schema-dir`, relative to the current directory, is made
    absolute by the command); a relative one (the default, `schemas/inputs`) is relative to the repository root
    of each manifest (`repository_root`), wherever the command runs from; None: no schema by workflow name.

    Paths come from manifests, which arrive in pull requests: every schema file is resolved (symlinks included)
    and must be inside its tree (the repository root, or an absolute `schema_dir`), and is read only when it is
    a regular file of at most MAX_SCHEMA_BYTES, never blocking on a FIFO or a device. A path that leads outside
    is refused with one message, whether or not something exists there."""

    def __init__(self, schema_dir: Path | None) -> None:
        self.schema_dir = schema_dir
        self._by_key: dict[tuple[Any, ...], jsonschema.protocols.Validator | _Refused | None] = {}
        self._inline: dict[int, tuple[dict[str, Any], jsonschema.protocols.Validator | _Refused]] = {}

    def for_workflow(
        self, workflow_name: str, manifest_file: str | None = None
    ) -> jsonschema.protocols.Validator | None:
        """The schema `<schema_dir>/<workflow_name>.json` for the manifest `manifest_file` (default: one in the
        current directory), or None when there is no such file. Called for every run: a cache hit is one lookup."""
        if self.schema_dir is None:
            return None
        cache_key = ("workflow", workflow_name, manifest_file)
        found = self._by_key.get(cache_key, _MISSING)
        if found is _MISSING:
            base = Path(manifest_file).parent if manifest_file is not None else Path.cwd()
            found = self._by_key[cache_key] = self._workflow_schema(workflow_name, base)
        if isinstance(found, _Refused):
            raise ValueError(found.message)
        return found

    def workflow_path(self, workflow_name: str, base: Path) -> tuple[Path | None, Path]:
        """Where the schema of `workflow_name` is read from for manifests in `base`: the resolved file (None when
        the name leads outside its tree) and the tree's root. Raises OSError or RuntimeError when an absolute
        schema_dir cannot be resolved."""
        assert self.schema_dir is not None
        if self.schema_dir.is_absolute():
            root = directory = self.schema_dir.resolve()
        else:
            root = repository_root(base)
            directory = root / self.schema_dir
        return _contained(directory, f"{workflow_name}.json", root), root

    def _workflow_schema(self, workflow_name: str, base: Path) -> jsonschema.protocols.Validator | _Refused | None:
        assert self.schema_dir is not None
        try:
            path, _ = self.workflow_path(workflow_name, base)
        except (OSError, RuntimeError) as exc:
            return _Refused(f"--schema-dir {self.schema_dir} cannot be resolved: {exc}")
        shown = f"{self.schema_dir}/{workflow_name}.json"
        if path is None:
            return _Refused(
                f"refused: the input schema of workflow {quote(workflow_name)} would be read from outside "
                f"{'--schema-dir' if self.schema_dir.is_absolute() else 'the repository that holds the manifest'}"
            )
        try:
            return self._read(path, quote(shown), missing_ok=True)
        except ValueError as exc:
            return _Refused(str(exc))

    def for_source(self, source: str | dict[str, Any], base: Path) -> jsonschema.protocols.Validator:
        """The manifest's `input_schema:`: inline, or a path relative to the manifest's directory `base`."""
        if isinstance(source, dict):
            inline = self._inline.get(id(source))
            if inline is None or inline[0] is not source:  # compiled once per entry, not once per run
                try:
                    inline = (source, self._compile(source, "input_schema"))
                except ValueError as exc:
                    inline = (source, _Refused(str(exc)))
                self._inline[id(source)] = inline
            found: jsonschema.protocols.Validator | _Refused | None = inline[1]
        else:
            cache_key = ("path", source, base)
            if cache_key not in self._by_key:
                self._by_key[cache_key] = self._path_schema(source, base)
            found = self._by_key[cache_key]
        if isinstance(found, _Refused):
            raise ValueError(found.message)
        assert found is not None
        return found

    @staticmethod
    def source_path(source: str, base: Path) -> tuple[Path | None, Path]:
        """Where an `input_schema:` path of a manifest in `base` is read from: the resolved file (None when it leads
        outside the repository) and the repository's root."""
        root = repository_root(base)
        try:
            start = base.resolve()
        except (OSError, RuntimeError):
            return None, root
        return _contained(start, source, root), root

    def _path_schema(self, source: str, base: Path) -> jsonschema.protocols.Validator | _Refused:
        path, _ = self.source_path(source, base)
        if path is None:
            return _Refused(f"{_OUTSIDE}, got {quote(source)}")
        try:
            validator = self._read(path, quote(source), missing_ok=False)
        except ValueError as exc:
            return _Refused(str(exc))
        assert validator is not None
        return validator

    def _read(self, path: Path, shown: str, missing_ok: bool) -> jsonschema.protocols.Validator | None:
        """Read and compile the schema file at `path` (resolved, inside its tree); `shown` names it."""
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            if missing_ok:
                return None
            raise ValueError(f"no such file {shown}") from None
        except OSError as exc:
            raise ValueError(f"cannot read {shown}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{shown} is not a regular file")
        if info.st_size > MAX_SCHEMA_BYTES:
            raise ValueError(f"{shown} is larger than {MAX_SCHEMA_BYTES} bytes")
        try:
            data = read_bounded(path, MAX_SCHEMA_BYTES, follow_links=False)  # resolved already: a link is a swap
        except FileProblem as exc:
            if exc.kind == "special":
                raise ValueError(f"{shown} is not a regular file") from None
            if exc.kind == "too_large":
                raise ValueError(f"{shown} is larger than {MAX_SCHEMA_BYTES} bytes") from None
            raise ValueError(f"cannot read {shown}: {exc.detail}") from None
        try:
            schema = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{shown} is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{shown} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
        except RecursionError:
            raise ValueError(f"{shown} is nested deeper than {MAX_SCHEMA_DEPTH} levels") from None
        if json_depth_over(schema, MAX_SCHEMA_DEPTH):
            raise ValueError(f"{shown} is nested deeper than {MAX_SCHEMA_DEPTH} levels")
        return self._compile(schema, shown)

    @staticmethod
    def _compile(schema: Any, name: str) -> jsonschema.protocols.Validator:
        if not isinstance(schema, dict | bool):
            raise ValueError(f"{name}: a JSON Schema must be an object")
        import jsonschema  # here: most renders have no schema, and it costs ~60 ms to import

        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)  # type: ignore[arg-type]  # boolean schemas are valid too
        except jsonschema.SchemaError as exc:
            raise ValueError(f"{name} is not a valid JSON Schema: {exc.message}") from None
        from hatchet_manifest.manifest import schema_refs, schema_regex  # RE2 patterns; local, finite $refs

        schema_refs.check_refs(schema, name)
        schema_regex.check_patterns(schema, name)
        cls = schema_regex.linear(cls)
        validator: jsonschema.protocols.Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        return validator
