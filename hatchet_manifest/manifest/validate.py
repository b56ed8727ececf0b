"""Per-run checks of rendered values: JSON types, metadata strings, priority, size, input schemas."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Undefined

from hatchet_manifest.text import QUOTE_LIMIT, quote, shorten, unsafe_char_problem

if TYPE_CHECKING:
    import jsonschema

MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Bytes a run's request needs besides its JSON texts (field tags, lengths, priority, framing).
REQUEST_OVERHEAD = 64
_SCALARS = (str, int, float, bool, type(None))


def describe(value: Any) -> str:
    if isinstance(value, Undefined):
        return (
            shorten(value._undefined_hint, 200)
            if value._undefined_hint
            else f"{quote(value._undefined_name)} is undefined"
        )
    if value is None:
        return "null"
    names = {
        dict: "an object",
        list: "a list",
        tuple: "a tuple",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), "a value that is not JSON")


def check_json(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield (path, message) for everything in `value` that is not plain JSON (objects with string keys)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path, "contains a NUL character (\\u0000), which Hatchet rejects"
    elif isinstance(value, dict):
        for k, v in value.items():
            shown = k if type(k) is str and len(k) <= QUOTE_LIMIT else shorten(str(k))
            sub = f"{path}.{shown}" if path else shown
            if not isinstance(k, str):
                yield sub, f"object keys must be strings, got {describe(k)}"
            elif "\x00" in k:
                yield sub, "key contains a NUL character (\\u0000)"
            if type(v) is str:  # fast path for the common leaves
                if "\x00" in v:
                    yield sub, "contains a NUL character (\\u0000), which Hatchet rejects"
            elif type(v) is not int:
                yield from check_json(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if type(v) is not int and type(v) is not str:
                yield from check_json(v, f"{path}[{i}]")
            elif type(v) is str and "\x00" in v:
                yield f"{path}[{i}]", "contains a NUL character (\\u0000), which Hatchet rejects"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, f"{value} is not a JSON number"
    elif isinstance(value, Undefined):
        yield path, describe(value)
    elif not isinstance(value, _SCALARS):
        hint = " (add `| list`)" if isinstance(value, tuple | range) or hasattr(value, "__next__") else ""
        yield path, f"{describe(value)} is not a JSON value{hint}"


def metadata_value(value: Any) -> str | None:
    """The string a metadata value is sent as, or None when it cannot be one."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return None


MAX_KEY_LEN = 512


def check_key(value: Any) -> tuple[str | None, str | None]:
    """(the key, None) or (None, the problem): a run key is a non-empty printable string (an int is taken as text).

    Printable excludes every control, bidi and invisible character (hatchet_manifest.text.UNSAFE): keys are shown
    in plans and tables, and must not be able to forge them."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip() and len(value) <= MAX_KEY_LEN and value.isprintable():
        return value, None
    problem = unsafe_char_problem(value) if isinstance(value, str) and len(value) <= MAX_KEY_LEN else None
    if problem is not None:
        return None, f"{problem}: a key must be printable, got {quote(value)}"
    return None, f"must be a non-empty string of at most {MAX_KEY_LEN} printable characters, got {quote(value)}"


def check_workflow_name(value: Any) -> str | None:
    """The problem with a workflow name, if any: a non-empty string without control, bidi or invisible characters
    (names are shown in plans and tables, and must not be able to forge them)."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a non-empty string, got {quote(value)}"
    if value.isprintable():  # the common case, in C
        return None
    problem = unsafe_char_problem(value)
    if problem is not None:
        return f"{problem}, got {quote(value)}"
    return None


def check_priority(value: Any) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3:
        return None, f"priority must be 1, 2 or 3, got {quote(value)}"
    return value, None


def request_size(workflow_name: str, input_json: bytes, metadata_json: bytes) -> int:
    """The size of a run's request, from the JSON texts as sent (compact, UTF-8)."""
    return len(workflow_name.encode()) + len(input_json) + len(metadata_json) + REQUEST_OVERHEAD


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

    def _workflow_schema(self, workflow_name: str, base: Path) -> jsonschema.protocols.Validator | _Refused | None:
        assert self.schema_dir is not None
        if self.schema_dir.is_absolute():
            try:
                root = directory = self.schema_dir.resolve()
            except (OSError, RuntimeError) as exc:
                return _Refused(f"--schema-dir {self.schema_dir} cannot be resolved: {exc}")
        else:
            root = repository_root(base)
            directory = root / self.schema_dir
        shown = f"{self.schema_dir}/{workflow_name}.json"
        path = _contained(directory, f"{workflow_name}.json", root)
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

    def _path_schema(self, source: str, base: Path) -> jsonschema.protocols.Validator | _Refused:
        root = repository_root(base)
        try:
            start = base.resolve()
        except (OSError, RuntimeError):
            return _Refused(f"{_OUTSIDE}, got {quote(source)}")
        path = _contained(start, source, root)
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
            # O_NONBLOCK: a FIFO put there since the stat does not hang the open; fstat checks what was opened
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise ValueError(f"cannot read {shown}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"{shown} is not a regular file")
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_SCHEMA_BYTES:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise ValueError(f"cannot read {shown}: {exc.strerror}") from None
        finally:
            os.close(fd)
        if size > MAX_SCHEMA_BYTES:
            raise ValueError(f"{shown} is larger than {MAX_SCHEMA_BYTES} bytes")
        try:
            schema = json.loads(b"".join(chunks).decode("utf-8"))
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


def schema_errors(validator: jsonschema.protocols.Validator, instance: Any) -> Iterator[tuple[str, str]]:
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    except RecursionError:  # a safety net: looping $refs are refused when the schema is loaded
        yield "input", "the input schema recursed too deeply to check this input"
        return
    except Exception as exc:  # noqa: BLE001 - jsonschema/referencing failures become the run's problem, located
        yield "input", f"the input schema cannot be applied: {shorten(str(exc), 200)}"
        return
    for err in errors:
        path = "input"
        for part in err.absolute_path:
            path += f"[{part}]" if isinstance(part, int) else f".{shorten(str(part))}"
        yield path, _schema_message(err.message, err.instance)


def _schema_message(message: str, instance: Any) -> str:
    """jsonschema's message with the instance it quotes (`'...' is not of type 'integer'`) shortened."""
    if len(message) <= 2 * QUOTE_LIMIT:
        return message
    try:
        shown = repr(instance)
    except RecursionError:
        shown = ""
    if shown and len(shown) > QUOTE_LIMIT and shown in message:
        message = message.replace(shown, quote(instance))
    return shorten(message, 4 * QUOTE_LIMIT)


def small_flat_json(data: dict[str, Any], limit: int) -> bool:
    """True when `data` is surely valid and small: string keys, int/bool/None or NUL-free string values."""
    budget = limit // 6 - 2
    for k, v in data.items():
        if type(k) is not str or "\x00" in k:
            return False
        t = type(v)
        if t is str:
            if "\x00" in v:
                return False
            budget -= len(v) + len(k) + 4
        elif (t is int and -(1 << 63) <= v < (1 << 64)) or t is bool or v is None:
            budget -= len(k) + 8
        else:
            return False
    return budget > 0


def may_be_large(value: Any, limit: int) -> bool:
    """A cheap upper bound on the JSON size: False when the value surely fits (6 bytes per char covers escapes)."""
    budget = limit // 6
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            budget -= len(v) + 2
        elif isinstance(v, dict):
            budget -= 2 * len(v)
            for k, x in v.items():
                budget -= len(k) + 3
                stack.append(x)
        elif isinstance(v, list):
            budget -= len(v) + 2
            stack.extend(v)
        elif type(v) is int and not -(10**20) < v < 10**20:
            budget -= len(str(v))
        else:
            budget -= 4  # other numbers are at most ~24 bytes; 6 * 4 covers them
        if budget < 0:
            return True
    return False
