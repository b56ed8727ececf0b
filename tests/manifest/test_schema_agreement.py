"""The published manifest JSON Schema and the tool agree: what an editor flags with the schema, `validate`
refuses with file:line, and what the tool accepts, the schema accepts. Each case goes through both."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import hatchet_manifest as hm
from hatchet_manifest.manifest.compile import is_template as renderer_is_template
from hatchet_manifest.manifest.loader import load_partial
from hatchet_manifest.manifest.model import TEMPLATE_PATTERN, is_template
from hatchet_manifest.manifest.yamlsafe import YamlError, parse_documents
from tests.conftest import ROOT, RunCli

SCHEMA = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
HEAD = "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: t}\n"  # lines 1-3


def documents(path: Path) -> list[Any]:
    """The documents of a file as the tool reads them (YAML 1.2 core: `on` stays a string, merge keys merged)."""
    return [doc.data for doc in parse_documents(path.read_text(), str(path)) if doc.data is not None]


def schema_errors(data: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)]


def readme_manifests(tmp: Path) -> list[Path]:
    """The manifests the README shows (its ```yaml blocks that declare a TriggerManifest)."""
    found = []
    for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)):
        if "kind: TriggerManifest" in block:
            found.append(tmp / f"readme-{i}.yaml")
            found[-1].write_text(block)
    return found


SHIPPED = [
    *sorted((ROOT / "manifests").glob("*.yaml")),
    *sorted((ROOT / "tests" / "data" / "good").glob("*.yaml")),
    ROOT / "hatchet_manifest" / "starter" / "files" / "example.yaml",
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_and_good_manifests_match_the_schema(path: Path) -> None:
    docs = documents(path)
    assert docs
    for doc in docs:
        assert schema_errors(doc) == []


def test_the_readme_manifest_matches_the_schema(tmp_path: Path) -> None:
    paths = readme_manifests(tmp_path)
    assert paths, "the README shows no manifest any more"
    for path in paths:
        for doc in documents(path):
            assert schema_errors(doc) == []
        hm.load([path])


def test_every_bad_corpus_manifest_that_fails_to_load_fails_the_schema(run_cli: RunCli) -> None:
    """tests/data/bad: a manifest the loader refuses (not one refused only once rendered) breaks the schema."""
    refused_at_load = []
    for path in sorted((ROOT / "tests" / "data" / "bad").glob("*.yaml")):
        try:
            docs = list(parse_documents(path.read_text(), str(path)))
        except YamlError:  # invalid YAML: nothing for a schema to judge
            continue
        _, problems = load_partial([path])
        if problems:
            refused_at_load.append(path.stem)
            assert any(schema_errors(doc.data) for doc in docs if doc.data is not None), path.name
    assert {"metadata-types", "template-with-fields", "when-empty", "wrong-api-version"} <= set(refused_at_load)


# (id, the manifest after HEAD, the one problem `validate` reports: file:line: where: message)
BAD = [
    ("priority-4", "runs:\n  - workflow_name: W\n    options:\n      priority: 4\n",
     "7: runs[0]: options.priority: priority must be 1, 2 or 3, or a template, got 4"),
    ("priority-0", "runs:\n  - workflow_name: W\n    options: {priority: 0}\n",
     "6: runs[0]: options.priority: priority must be 1, 2 or 3, or a template, got 0"),
    ("priority-quoted", "runs:\n  - workflow_name: W\n    options: {priority: '2'}\n",
     "6: runs[0]: options.priority: priority must be 1, 2 or 3, or a template, got '2' (a number is written "
     "without quotes)"),
    ("priority-boolean", "runs:\n  - workflow_name: W\n    options: {priority: true}\n",
     "6: runs[0]: options.priority: priority must be 1, 2 or 3, or a template, got true"),
    ("workflow-name-empty", "runs:\n  - workflow_name: ''\n",
     "5: runs[0]: workflow_name: must be a non-empty string, got ''"),
    ("workflow-name-blank", "runs:\n  - workflow_name: '  '\n",
     "5: runs[0]: workflow_name: must be a non-empty string, got '  '"),
    ("workflow-name-null", "runs:\n  - workflow_name:\n    key: k\n",
     "5: runs[0]: workflow_name: must be a non-empty string, got null"),
    ("key-empty", "runs:\n  - workflow_name: W\n    key: ''\n", "6: runs[0]: key: must be a non-empty string, got ''"),
    ("key-null", "runs:\n  - workflow_name: W\n    key: ~\n", "6: runs[0]: key: must be a non-empty string, got null"),
    ("neither-workflow-nor-template", "runs:\n  - key: k\n    input: {a: 1}\n",
     "5: runs[0]: each run needs `workflow_name` (or a `template`)"),
    ("template-with-fields", "runs:\n  - template: '- workflow_name: A'\n    key: k\n",
     "5: runs[0]: `template` cannot be combined with key"),
    ("template-null", "runs:\n  - template: ~\n",
     "5: runs[0]: template: must be a Jinja block rendering a YAML list of runs, got null"),
    ("metadata-list", "runs:\n  - workflow_name: W\n    options:\n      additional_metadata: {a: [1, 2]}\n",
     "7: runs[0]: options.additional_metadata.a: metadata values must be strings, numbers or booleans, got a list"),
    ("metadata-null", "runs:\n  - workflow_name: W\n    options:\n      additional_metadata:\n        a: ~\n",
     "8: runs[0]: options.additional_metadata.a: metadata values must be strings, numbers or booleans, got null"),
    ("metadata-object", "runs:\n  - workflow_name: W\n    options:\n      additional_metadata: {a: {b: c}}\n",
     "7: runs[0]: options.additional_metadata.a: metadata values must be strings, numbers or booleans, got an "
     "object"),
    ("for-each-null", "runs:\n  - workflow_name: W\n    for_each:\n",
     "6: runs[0]: for_each: must be a list, or an expression yielding one (`{{ range(n) }}`), got null"),
    ("for-each-text", "runs:\n  - workflow_name: W\n    for_each: abc\n",
     "6: runs[0]: for_each: must be a list, or an expression yielding one (`{{ range(n) }}`), got 'abc'"),
    ("matrix-null", "runs:\n  - workflow_name: W\n    matrix: ~\n",
     "6: runs[0]: matrix: must be a mapping of names to lists, got null"),
    ("matrix-not-lists", "runs:\n  - workflow_name: W\n    matrix: {model: small}\n",
     "6: runs[0]: matrix: 'model' must be a list (or an expression yielding one), got 'small'"),
    ("matrix-include", "runs:\n  - workflow_name: W\n    matrix: {model: [a], include: [a]}\n",
     "6: runs[0]: matrix: include must be a list of mappings, got a list"),
    ("when-null", "runs:\n  - workflow_name: W\n    when: ~\n",
     "5: runs[0]: `when` is empty: give an expression or true/false, or leave it out"),
    ("when-number", "runs:\n  - workflow_name: W\n    when: 1\n",
     "6: runs[0]: when: must be true or false, or an expression such as `{{ x == 1 }}`, got 1"),
    ("when-text", "runs:\n  - workflow_name: W\n    when: 'yes'\n",
     "6: runs[0]: when: must be true or false, or an expression such as `{{ x == 1 }}`, got 'yes'"),
    ("input-schema-empty", "runs:\n  - workflow_name: W\n    input_schema: ''\n",
     "6: runs[0]: input_schema: must be a path (a non-empty string) or an inline JSON Schema (an object), got ''"),
    ("nothing-declared", "runs: []\n", "1: a manifest declares at least one of runs, crons, schedules or events"),
    ("cron-priority", "crons:\n  - {workflow_name: W, name: n, expression: '@daily', priority: 4}\n",
     "5: crons[0]: priority: priority must be 1, 2 or 3, or a template, got 4"),
    ("cron-name-empty", "crons:\n  - {workflow_name: W, name: '', expression: '@daily'}\n",
     "5: crons[0]: name: must be a non-empty string, got ''"),
    ("cron-expression-blank", "crons:\n  - workflow_name: W\n    name: n\n    expression: ' '\n",
     "7: crons[0]: expression: must be a non-empty string, got ' '"),
    ("cron-enabled-text", "crons:\n  - {workflow_name: W, name: n, expression: '@daily', enabled: 'yes'}\n",
     "5: crons[0]: enabled: must be true or false, or a template, got 'yes'"),
    ("cron-enabled-null", "crons:\n  - {workflow_name: W, name: n, expression: '@daily', enabled: ~}\n",
     "5: crons[0]: enabled: must be true or false, or a template, got null"),
    ("cron-metadata", "crons:\n  - workflow_name: W\n    name: n\n    expression: '@daily'\n"
     "    additional_metadata: {a: [1]}\n",
     "8: crons[0]: additional_metadata.a: metadata values must be strings, numbers or booleans, got a list"),
    ("schedule-allow-past-text", "schedules:\n  - {workflow_name: W, trigger_at: '2027-01-01T00:00:00Z', "
     "allow_past: 'on'}\n", "5: schedules[0]: allow_past: Input should be a valid boolean"),
    ("schedule-allow-past-number", "schedules:\n  - {workflow_name: W, trigger_at: '2027-01-01T00:00:00Z', "
     "allow_past: 1}\n", "5: schedules[0]: allow_past: Input should be a valid boolean"),
    ("schedule-trigger-at-empty", "schedules:\n  - {workflow_name: W, trigger_at: ''}\n",
     "5: schedules[0]: trigger_at: must be a non-empty string, got ''"),
    ("schedule-key-null", "schedules:\n  - {workflow_name: W, trigger_at: '2027-01-01T00:00:00Z', key: ~}\n",
     "5: schedules[0]: key: must be a non-empty string, got null"),
    ("event-event-key-empty", "events:\n  - {event_key: ''}\n", "5: events[0]: event_key: must be a non-empty string, got ''"),
    ("event-key-empty", "events:\n  - {event_key: e, key: ''}\n",
     "5: events[0]: key: must be a non-empty string, got ''"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "problem"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_refused_by_the_schema_and_by_validate(tmp_path: Path, run_cli: RunCli, body: str, problem: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + body)
    (doc,) = documents(path)
    assert schema_errors(doc), "the schema accepts what the tool refuses"
    result = run_cli("validate", "m.yaml", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"m.yaml:{problem}\nerror: 1 problem found\n"


# The manifest after HEAD: valid for the schema and for the tool.
GOOD_RUNS = [
    ("priorities", "vars: {p: 2, on: true}\nruns:\n"
     "  - {workflow_name: W, key: a, options: {priority: 1}}\n"
     "  - {workflow_name: W, key: b, options: {priority: 3}}\n"
     "  - {workflow_name: W, key: c, options: {priority: '{{ p }}'}}\n"
     "  - {workflow_name: W, key: d, options: {priority: '{% if on %}1{% else %}2{% endif %}'}}\n"
     "  - {workflow_name: W, key: e, options: {priority: ~}}\n"),
    ("metadata", "runs:\n  - workflow_name: W\n    options:\n      additional_metadata:\n"
     "        {n: 1, f: 1.5, b: false, s: x, '{{ \"t\" }}': '{{ 1 }}'}\n"),
    ("loops", "vars: {models: [a, b]}\nruns:\n"
     "  - {workflow_name: W, key: 'l-{{ item }}', for_each: [1, 2], when: '{{ item == 1 }}'}\n"
     "  - {workflow_name: W, key: 'r-{{ i }}', for_each: '{{ range(2) }}', as: i, when: true}\n"
     "  - workflow_name: W\n    key: 'm-{{ model }}-{{ size }}'\n"
     "    matrix: {model: '{{ models }}', size: [1], include: [{model: c, size: 2}, '{{ {\"model\": \"d\", \"size\": 3} }}']}\n"),
    ("input-schema-null", "runs:\n  - {workflow_name: W, input_schema: ~, input: {a: ~}}\n"),
    ("template", "runs:\n  - template: |\n      - workflow_name: A\n        options: {priority: '2'}\n"),
]  # fmt: skip
GOOD_SECTIONS = [
    ("crons", "vars: {on: true}\ncrons:\n"
     "  - {workflow_name: W, name: a, expression: '@daily', enabled: '{{ on }}', priority: ~}\n"
     "  - {workflow_name: W, name: b, expression: '0 3 * * *', enabled: false, priority: 3,"
     " additional_metadata: {a: 1}}\n"),
    ("schedules", "schedules:\n"
     "  - {workflow_name: W, key: s, trigger_at: '2020-01-01T00:00:00Z', allow_past: true, priority: '{{ 1 }}'}\n"),
    ("events", "events:\n  - {event_key: 'user:created', key: e, scope: ~, priority: 2, payload: {id: 1}}\n"
     "  - {event_key: x, scope: tenant-a, for_each: [1, 2], key: 'x-{{ item }}'}\n"),
]  # fmt: skip


@pytest.mark.parametrize("body", [c[1] for c in GOOD_RUNS], ids=[c[0] for c in GOOD_RUNS])
def test_accepted_by_the_schema_and_by_validate(tmp_path: Path, run_cli: RunCli, body: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + body)
    (doc,) = documents(path)
    assert schema_errors(doc) == []
    result = run_cli("validate", "m.yaml", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("body", [c[1] for c in GOOD_SECTIONS], ids=[c[0] for c in GOOD_SECTIONS])
def test_trigger_sections_accepted_by_the_schema_and_the_loader(tmp_path: Path, body: str) -> None:
    """The loader's judgement (whether `validate` renders these sections yet is not this test's concern)."""
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + body)
    (doc,) = documents(path)
    assert schema_errors(doc) == []
    assert load_partial([path])[1] == []


def test_the_schema_and_the_renderer_see_the_same_templates() -> None:
    samples = ["{{ x }}", "a{% if b %}c{% endif %}", "{# note #}", "{ {x} }", "{x}", "%}", "plain", "", "{", "{{"]
    pattern = re.compile(TEMPLATE_PATTERN)
    for text in samples:
        assert is_template(text) == renderer_is_template(text) == (pattern.search(text) is not None), text


def test_a_rendered_priority_in_other_digits_is_refused_not_a_crash(tmp_path: Path, run_cli: RunCli) -> None:
    """`"²".isdigit()` is true and `int("²")` fails: a rendered priority of such digits is an error with a line."""
    path = tmp_path / "m.yaml"
    path.write_text(
        HEAD + "runs:\n  - {workflow_name: W, key: a, options: {priority: \"{{ '\u00b2' }}\"}}\n"
        "  - {workflow_name: W, key: b, options: {priority: \"{{ '\u0663' }}\"}}\n"
        "  - {workflow_name: W, key: c, options: {priority: \"{{ ' 2 ' }}\"}}\n"
    )
    result = run_cli("validate", "m.yaml", cwd=tmp_path)
    assert result.exit_code == 1
    assert result.stderr == (
        "m.yaml:5: runs[0]: options.priority: priority must be 1, 2 or 3, got '\u00b2'\n"
        "m.yaml:6: runs[1]: options.priority: priority must be 1, 2 or 3, got '\u0663'\n"
        "error: 2 problems found\n"
    )
