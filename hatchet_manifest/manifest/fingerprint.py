"""What a manifest's rendering depends on, as one digest: its fingerprint. Equal fingerprints mean the manifest
renders the same runs with the same problems, so a record of its last render can stand in for rendering it again.

A fingerprint covers:
- the tool: its version and a digest of its code (a reinstall from another commit under the same version is another
  tool), the versions of the libraries that parse, render and validate, Python's;
- what the manifests of one command share: each values file (as named, and its content), `--set` and
  `--set-string` in order, `--schema-dir`, `--max-runs`, the namespace, the allow lists, the local time zone, the
  render's crash hook; and the variables `secret()` may read, through scrypt with a salt, so that no plain digest of
  a secret is ever kept: every manifest depends on them (a key that holds a secret's value is refused);
- the manifest: its name, its file as named, its parsed document with types (1 and "1" differ, comments do not);
- what its rendering read (`Detail`, kept with the record): when its templates name `env`, every variable `env()`
  may read (names, and digests salted like the secrets'); the input schemas that validated its runs (the schema
  file of each workflow it triggered, its `input_schema:` paths), by place in their tree and by content.

A manifest whose render may differ from one process to the next has no fingerprint (`scan`): the `random` filter,
or a helper, a cycler or a joiner written out as text (their text holds a memory address).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.metadata
import json
import os
import sys
import time
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, nodes

import hatchet_manifest
from hatchet_manifest.files import FileProblem, read_bounded
from hatchet_manifest.manifest.access import Access
from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.schema_registry import MAX_SCHEMA_BYTES, SchemaRegistry
from hatchet_manifest.manifest.values import MAX_VALUES_FILE, Values

SCHEME = b"hatchet-manifest fingerprint 1\n"
LIBRARIES = ("jinja2", "markupsafe", "pydantic", "pydantic-core", "PyYAML", "orjson", "jsonschema", "google-re2")
UNRENDERED = frozenset({"apiVersion", "kind", "metadata", "vars"})  # data, never rendered as templates
CRASH_ENV = "HATCHET_MANIFEST_CRASH_AT"  # the render's test hook (build.py): part of what a render reads
# Globals whose text is a Python object's repr, with its address: written out (not called), they render differently
# in every process.
_CALLABLES = frozenset({"range", "env", "secret", "date_range", "datetime_range", "month_range", "lipsum"})
_OBJECTS = frozenset({"cycler", "joiner"})  # their results' text holds an address too
_MARKS = ("{{", "{%", "{#")
SCRYPT = {"n": 1 << 14, "r": 8, "p": 1, "dklen": 32, "maxmem": 64 << 20}  # ~0.1 s: a guess costs as much


@dataclass(frozen=True)
class Detail:
    """What a manifest's fingerprint needs besides the command's inputs, learnt when it was rendered: kept with its
    record (JSON, nothing secret) to compute the fingerprint again without rendering."""

    env: bool  # its templates name env()
    workflows: tuple[str, ...]  # the workflows its runs trigger: their schema files validated them
    schemas: tuple[str, ...]  # its input_schema: paths
    declared: int  # the runs its entries declare (before `when`): they count against --max-runs

    def to_json(self) -> str:
        body = {"env": self.env, "workflows": list(self.workflows), "schemas": list(self.schemas)}
        return json.dumps({"v": 1, **body, "declared": self.declared}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Detail | None:
        """None for a detail this version cannot read (another version's, a damaged one)."""
        try:
            raw = json.loads(text)
            if raw.get("v") != 1:
                return None
            workflows, schemas = tuple(raw["workflows"]), tuple(raw["schemas"])
            if not all(isinstance(x, str) for x in (*workflows, *schemas)) or not isinstance(raw["env"], bool):
                return None
            return cls(raw["env"], workflows, schemas, int(raw["declared"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


@dataclass(frozen=True)
class Scan:
    """What a manifest's text says of its rendering."""

    env: bool  # a template names env
    deterministic: bool  # its render is the same in every process
    schemas: tuple[str, ...]  # its input_schema: paths


_PARSER = Environment()  # parsing only (the same syntax as the sandbox's): nothing is compiled or run


def scan(m: LoadedManifest) -> Scan:
    """Parse every template of the manifest (the strings of what is rendered: keys and values)."""
    env = False
    deterministic = True
    schemas: set[str] = set()
    for text in _strings(m.doc.data, schemas):
        if not any(mark in text for mark in _MARKS):
            continue
        try:
            ast = _PARSER.parse(text)
        except TemplateSyntaxError:  # it cannot render: nothing can be said of it
            return Scan(True, False, tuple(sorted(schemas)))
        called = {id(call.node) for call in ast.find_all(nodes.Call)}
        for name in ast.find_all(nodes.Name):
            normal = unicodedata.normalize("NFKC", name.name)
            env = env or normal == "env"
            if (normal in _CALLABLES and id(name) not in called) or normal in _OBJECTS:
                deterministic = False
        for f in ast.find_all(nodes.Filter):
            if f.name == "random" or (f.name == "map" and not _named_filter(f)):
                deterministic = False
    return Scan(env, deterministic, tuple(sorted(schemas)))


def _named_filter(f: nodes.Filter) -> bool:
    """`map` given a constant filter name other than random, or an attribute (not a filter) to map."""
    if f.dyn_args is not None or f.dyn_kwargs is not None:
        return False
    if not f.args:
        return True
    first = f.args[0]
    return isinstance(first, nodes.Const) and isinstance(first.value, str) and first.value != "random"


def _strings(data: Any, schemas: set[str]) -> Iterator[str]:
    """Every string of what is rendered (keys and values); collects the input_schema: paths on the way."""
    stack: list[Any] = [v for k, v in data.items() if k not in UNRENDERED] if isinstance(data, dict) else [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for k, v in value.items():
                if k == "input_schema" and isinstance(v, str):
                    schemas.add(v)
                if isinstance(k, str):
                    yield k
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)


def document_digest(data: Any) -> bytes:
    """sha256 of a parsed YAML document with its types: 1, 1.0, "1" and true all differ; mapping order counts."""
    out: list[bytes] = []
    stack: list[Any] = [data]
    while stack:
        v = stack.pop()
        if v is None or v is True or v is False:
            out.append(b"n" if v is None else b"t" if v else b"f")
        elif isinstance(v, int):
            out.append(b"i%d;" % v)
        elif isinstance(v, float):
            out.append(b"d" + repr(v).encode() + b";")
        elif isinstance(v, str):
            raw = v.encode("utf-8", "surrogatepass")
            out.append(b"s%d:" % len(raw) + raw)
        elif isinstance(v, list):
            out.append(b"[%d:" % len(v))
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            out.append(b"{%d:" % len(v))
            for key, item in reversed(list(v.items())):
                stack.extend((item, key))
        else:  # the YAML reader makes none other
            raise TypeError(f"a manifest holds a {type(v).__name__}")
    return hashlib.sha256(b"".join(out)).digest()


@functools.lru_cache(maxsize=1)
def tool_identity() -> bytes:
    """The tool that renders: its version, its code, its libraries, Python."""
    h = hashlib.sha256()
    for name in ("hatchet-manifest", *LIBRARIES):
        h.update(f"{name} {_version(name)}\n".encode())
    h.update(sys.version.encode() + b"\n")
    root = Path(hatchet_manifest.__file__).parent
    import hatchet_client.config  # the namespace rules digests apply (pure: no gRPC)

    sources = sorted(root.rglob("*.py")) or sorted(root.rglob("*.pyc"))
    for path in [*sources, Path(hatchet_client.config.__file__)]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.digest()


def _version(distribution: str) -> str:
    """The installed version of a distribution, read off its metadata's Version line (parsing the whole of it, as
    importlib.metadata.version does, costs a few milliseconds a package)."""
    try:
        found = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"
    text = found.read_text("METADATA") or found.read_text("PKG-INFO") or ""  # PKG-INFO: an egg-info (a source tree)
    for line in text.splitlines():
        if line.startswith("Version:"):
            return line.removeprefix("Version:").strip()
    return "?"


def _framed(*parts: str | bytes) -> bytes:
    """Parts joined so that no two lists of parts give the same bytes."""
    out = []
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        out.append(b"%d:" % len(raw) + raw)
    return b"".join(out)


class Fingerprints:
    """The fingerprints of one command's manifests: the inputs they share are read once (`common`, when made:
    before rendering), the secrets' scrypt computed once per salt.

    `common` raises nothing: an input that cannot be read (a values file) makes every fingerprint None, and the
    render says what is wrong with it."""

    def __init__(
        self,
        values: Values,
        schema_dir: Path | None,
        max_runs: int,
        access: Access,
        namespace: str,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.access = access
        self.schemas = SchemaRegistry(schema_dir)
        self._environ = dict(os.environ if environ is None else environ)
        self._tokens: dict[tuple[str, str], bytes] = {}
        self.common = self._common(values, schema_dir, max_runs, namespace)

    def _common(self, values: Values, schema_dir: Path | None, max_runs: int, namespace: str) -> bytes | None:
        # an absolute --schema-dir (a checkout's path in CI) counts by the files it holds (see `of`), not by where
        where = "none" if schema_dir is None else "absolute" if schema_dir.is_absolute() else str(schema_dir)
        parts: list[str | bytes] = [SCHEME, tool_identity(), namespace, where, str(max_runs)]
        for f in values.files:
            try:
                parts += [str(f), hashlib.sha256(read_bounded(Path(f), MAX_VALUES_FILE)).digest()]
            except FileProblem:
                return None
        parts += ["--set", *values.set, "--set-string", *values.set_string, json.dumps(values.extra, sort_keys=True)]
        parts += ["--allow-env", *self.access.env, "--allow-secret", *self.access.secrets]
        parts += [self._environ.get("TZ", "-"), repr((time.timezone, time.altzone, time.daylight, time.tzname))]
        parts += [self._environ.get(CRASH_ENV, "-")]
        return hashlib.sha256(_framed(*parts)).digest()

    def _token(self, kind: str, salt: str) -> bytes:
        """The secrets (`secret`: scrypt) or the variables env() may read (`env`: HMAC), salted."""
        cached = self._tokens.get((kind, salt))
        if cached is not None:
            return cached
        if kind == "secret":
            names = sorted(self.access.secret_names(self._environ))
        else:
            names = sorted(n for n in self._environ if self.access.env_refusal(n) is None)
        text = _framed(*(x for n in names for x in (n, self._environ[n])))
        if kind == "secret" and names:
            token = hashlib.scrypt(text, salt=bytes.fromhex(salt), **SCRYPT)
        else:
            token = hmac.new(bytes.fromhex(salt), text, hashlib.sha256).digest()
        self._tokens[kind, salt] = token
        return token

    def of(self, m: LoadedManifest, detail: Detail, salt: str, unchanged_since: int | None = None) -> str | None:
        """The manifest's fingerprint; None when it cannot be computed (an input was unreadable), or when
        `unchanged_since` (time.time_ns() before its render) is given and a schema file changed after it."""
        if self.common is None:
            return None
        parts: list[str | bytes] = [self.common, self._token("secret", salt), m.name, m.file]
        parts += [document_digest(m.doc.data), json.dumps([detail.env, detail.workflows, detail.schemas])]
        if detail.env:
            parts.append(self._token("env", salt))
        base = m.base_dir
        try:
            for workflow in detail.workflows if self.schemas.schema_dir is not None else ():
                place = self.schemas.workflow_path(workflow, base)
                parts += ["workflow", workflow, *_schema_file(*place, unchanged_since)]
            for source in detail.schemas:
                parts += ["path", source, *_schema_file(*SchemaRegistry.source_path(source, base), unchanged_since)]
        except _ChangedDuringRender:
            return None
        except (OSError, RuntimeError):  # an absolute --schema-dir that cannot be resolved: the render says so
            parts.append("unresolved")
        return hashlib.sha256(_framed(*parts)).hexdigest()


class _ChangedDuringRender(Exception):
    """A file read after the render was changed since it started: what the render read is not known."""


def _schema_file(path: Path | None, root: Path, unchanged_since: int | None) -> tuple[str, bytes]:
    """A schema file as a fingerprint sees it: its place in its tree, and its content (or why there is none)."""
    if path is None:
        return "outside", b""
    place = str(path.relative_to(root))
    try:
        data = read_bounded(path, MAX_SCHEMA_BYTES, follow_links=False)
    except FileProblem as exc:
        return place, f"{exc.kind} {exc.detail}".encode()
    if unchanged_since is not None:  # read after the render: it must not have changed since the render began
        try:
            changed = os.stat(path).st_mtime_ns >= unchanged_since
        except OSError:
            changed = True
        if changed:
            raise _ChangedDuringRender
    return place, hashlib.sha256(data).digest()
