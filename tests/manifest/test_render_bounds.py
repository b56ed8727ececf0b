"""Renders bounded as a whole (--render-memory, --render-timeout) for what no per-operation cap names; the worker
that renders gives exactly what the in-process renderer gives; the caps hold in-process too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import hatchet_manifest as hm
from hatchet_manifest.manifest.sandbox import BoundedRenderer, RenderBounds, parse_seconds, parse_size
from tests.conftest import ROOT, RunCli

HEADER = "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\n"

# Four splits of a 3.9 MB string: each within every cap (a value of 1.3 million items), together ~300 MB.
MEMORY_HOG = "{% set s = 'ab ' * 1300000 %}{{ (s.split(), s.split(), s.split(), s.split()) | length }}"
# Comparing two lists of 100,000 items 100,000 times: `==` is not charged to the budget.
CPU_HOG = (
    "{% set a = range(100000) | list %}{% set b = range(100000) | list %}"
    "{% for i in range(100000) %}{% if a == b %}{% endif %}{% endfor %}"
)
TIMEOUT = re.compile(r"rendering (took more than 2s|used more than 2s of CPU time) \(--render-timeout\)")


def write(tmp_path: Path, runs: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "metadata: {name: hog}\nruns:\n" + runs)
    return path


def entry(key: str, expr: str) -> str:
    return f"  - workflow_name: W\n    key: {key}\n    input:\n      x: {json.dumps(expr)}\n"


def test_memory_bound_stops_a_hog_no_cap_names(tmp_path: Path, run_cli: RunCli) -> None:
    path = write(tmp_path, entry("fine", "{{ 1 }}") + entry("hog", MEMORY_HOG))
    result = run_cli("validate", str(path), "--render-memory", "200MiB")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"{path}:9: runs[1]: rendering used more than 200 MiB of memory (--render-memory)\nerror: 1 problem found\n"
    )
    # Under the default bound (1 GiB) the same manifest renders: no cap refuses it.
    assert run_cli("validate", str(path)).exit_code == 0


def test_memory_bound_from_the_environment(tmp_path: Path, run_cli: RunCli) -> None:
    path = write(tmp_path, entry("hog", MEMORY_HOG))
    result = run_cli("render", str(path), "-o", "jsonl", env={"HATCHET_MANIFEST_RENDER_MEMORY": "200MiB"})
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:5: runs[0]: rendering used more than 200 MiB of memory")


def test_timeout_stops_a_template_no_cap_names(tmp_path: Path, run_cli: RunCli) -> None:
    path = write(tmp_path, entry("first", "{{ 1 }}") + entry("second", "{{ 2 }}") + entry("hog", CPU_HOG))
    result = run_cli("validate", str(path), "--render-timeout", "2s")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    first, last = result.stderr.splitlines()
    assert first.startswith(f"{path}:13: runs[2]: ")
    assert TIMEOUT.fullmatch(first.split(": ", 2)[2]), first
    assert last == "error: 1 problem found"


def test_timeout_stops_an_exponential_schema(tmp_path: Path, run_cli: RunCli) -> None:
    """Input schemas run in the worker too: 2^40 subschema checks for one input."""
    defs = {"l0": {"type": "string"}}
    for level in range(1, 41):
        defs[f"l{level}"] = {"allOf": [{"$ref": f"#/$defs/l{level - 1}"}, {"$ref": f"#/$defs/l{level - 1}"}]}
    schema = {"type": "object", "properties": {"x": {"$ref": "#/$defs/l40"}}, "$defs": defs}
    path = write(
        tmp_path, f"  - workflow_name: W\n    key: k\n    input_schema: {json.dumps(schema)}\n    input: {{x: a}}\n"
    )
    result = run_cli("render", str(path), "-o", "jsonl", env={"HATCHET_MANIFEST_RENDER_TIMEOUT": "2s"})
    assert result.exit_code == 1
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{path}:5: runs[0]: ")
    assert TIMEOUT.fullmatch(first.split(": ", 2)[2]), first


@pytest.mark.parametrize(
    ("option", "value"),
    [("--render-memory", "10MiB"), ("--render-memory", "lots"), ("--render-timeout", "0"), ("--render-timeout", "1x")],
)
def test_bad_bounds_are_usage_errors(tmp_path: Path, run_cli: RunCli, option: str, value: str) -> None:
    path = write(tmp_path, entry("k", "{{ 1 }}"))
    result = run_cli("validate", str(path), option, value)
    assert result.exit_code == 2
    assert option in result.stderr


def test_sizes_and_durations() -> None:
    assert parse_size("1GiB") == parse_size("1G") == 1 << 30
    assert parse_size("200MiB") == 200 << 20
    assert parse_size("1GB") == 10**9
    assert parse_size("4096") == 4096
    assert parse_seconds("60s") == parse_seconds("1m") == parse_seconds("60") == 60
    assert parse_seconds("500ms") == 0.5
    for bad in ("1 GiBs", "-1", "MiB"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_the_worker_does_not_import_from_the_current_directory(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The current directory holds the pull request: a `jinja2.py` or `hatchet_manifest/` there must not run."""
    marker = tmp_path / "imported"
    for module in ("jinja2.py", "yaml.py", "hatchet_manifest/__init__.py"):
        (tmp_path / module).parent.mkdir(exist_ok=True)
        (tmp_path / module).write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    path = write(tmp_path, entry("k", "{{ 1 }}"))
    result = run_cli("validate", str(path), cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert not marker.exists()


def _rendered(make: type[hm.Renderer] | type[BoundedRenderer], manifests: list[hm.LoadedManifest]) -> object:
    renderer = make(manifests, hm.Values(), hm.Limits(), ROOT / "schemas" / "inputs")
    try:
        runs = list(renderer.runs())
    except hm.ManifestError as exc:
        return [str(p) for p in exc.problems], renderer.warnings
    finally:
        renderer.close()
    return runs, renderer.warnings


# The budget's bombs are left out: rendered twice they take seconds, and the corpus pins their messages.
CASES = [
    p
    for p in sorted((ROOT / "tests" / "data").glob("*/*.yaml")) + sorted((ROOT / "manifests").glob("*.yaml"))
    if not p.stem.startswith("cpu-bomb")
]


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_worker_renders_what_the_library_renders(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same runs in the same order, or the same problems with the same messages, whether rendered in this
    process (the library) or in a bounded worker (the commands)."""
    monkeypatch.chdir(ROOT)
    try:
        manifests = hm.load([path.relative_to(ROOT)])
    except hm.ManifestError:
        pytest.skip("does not load: nothing is rendered")
    assert _rendered(BoundedRenderer, manifests) == _rendered(hm.Renderer, manifests)


def test_a_bounded_renderer_renders_once_and_fresh_renders_again(tmp_path: Path) -> None:
    path = write(tmp_path, "  - workflow_name: W\n    for_each: '{{ range(700) }}'\n    key: 'k{{ item }}'\n")
    with BoundedRenderer(hm.load([path]), bounds=RenderBounds(256 << 20, 30)) as renderer:
        assert renderer.prepare() == 700
        assert [e.count for e in renderer.entries()] == [700]
        keys = [r.key for r in renderer.runs()]
    assert keys == [f"k{i}" for i in range(700)]
    with pytest.raises(RuntimeError, match="renders once"):
        list(renderer.runs())
    assert renderer.fresh().count() == 700


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (
            "{{ '{:>{}}'.format(1, 4000000000) }}",
            "str.format(): widths and precisions of a million or more are refused",
        ),
        ("{{ '%*d' % (999999999, 1) }}", "'%': widths and precisions of a million or more are refused"),
        ("{{ range(50000) | join('x' * 40000) }}", "the join filter would build a value longer than 4194304"),
        ("{{ (((10 ** 64) ** 64) ** 64) ** 64 }}", "'**' would build an integer of more than 4096 bits"),
        ("{{ [1, 2] | slice(10 ** 9) | list }}", "the slice filter's count is capped at 4194304"),
        ("{{ ('x\\n' * 1000000) | indent(4000000) }}", "the indent filter would build a value longer than 4194304"),
    ],
)
def test_the_caps_hold_in_process(tmp_path: Path, expr: str, message: str) -> None:
    """A library user renders in its own process, without the process bound: the per-operation caps still hold."""
    path = write(tmp_path, entry("k", expr))
    with pytest.raises(hm.ManifestError) as info:
        list(hm.render(hm.load([path]), schema_dir=None))
    assert [str(p) for p in info.value.problems] == [f"{path}:8: runs[0]: input.x: {message}"]
