"""The proof that a secret never reaches any output: its value is made to appear in every kind of output (previews
in every format, plans, errors of every kind, a render worker's error, tracebacks, progress, the ledger) and is
looked for in all of them, and in every file the tool wrote; only the engine, which must receive it, holds it.

The value reaches the previews through a values file (`note:` below), which is how an operator's secret can end
up in text the tool prints: secret() itself is always shown masked. Real CLI processes against a served engine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hatchet_client.engine import RunStore

from tests.apply.conftest import cli_args

VALUE = 'Zq9-p@ss"wörd\\x-42'  # a quote, a backslash and non-ASCII: JSON, YAML and repr spell it differently
NAME = "SCRUB_TEST_PASSWORD"
MANIFEST = """\
apiVersion: hatchet-manifest/v1
kind: TriggerManifest
metadata: {name: scrub}
vars: {count: 40}
runs:
  - workflow_name: UsesSecret
    for_each: "{{ range(count) }}"
    as: i
    key: "s-{{ i }}"
    input:
      i: "{{ i }}"
      password: "{{ secret('SCRUB_TEST_PASSWORD') }}"
      note: "{{ note }}"
    options:
      additional_metadata:
        auth: "Bearer {{ secret('SCRUB_TEST_PASSWORD') }}"
        note: "{{ note }}"
"""


class Project:
    def __init__(self, root: Path, engine: dict[str, str]) -> None:
        root.mkdir()
        self.root = root
        self.env = {**engine, NAME: VALUE, "HATCHET_MANIFEST_ALLOW_SECRETS": NAME}
        self.outputs: list[tuple[str, bytes]] = []
        (root / "m.yaml").write_text(MANIFEST)
        (root / "values.yaml").write_text(f"note: {json.dumps(VALUE)}\n")

    def run(
        self,
        command: str,
        *args: str,
        manifest: str = "m.yaml",
        expect: int = 0,
        env: dict[str, str] | None = None,
        before: tuple[str, ...] = (),
        values: bool = True,
        masked: bool = True,
    ) -> tuple[str, str]:
        """Run `hatchet-manifest [before] command manifest [-f values.yaml] args...`; returns stdout, stderr."""
        argv = [*before, command, manifest, *(["-f", "values.yaml"] if values else []), *args]
        if command in ("diff", "apply"):
            argv += ["--engine", "remote", "--state-dir", "state"]
        proc = subprocess.run(
            cli_args(*argv), env={**self.env, **(env or {})}, capture_output=True, cwd=self.root, timeout=120
        )
        self.outputs.append((" ".join(argv), proc.stdout + proc.stderr))
        assert proc.returncode == expect, (argv, proc.stderr.decode())
        if masked:  # the value, or a secret, was there: it shows masked
            assert b"***" in proc.stdout + proc.stderr, (argv, proc.stdout.decode(), proc.stderr.decode())
        return proc.stdout.decode(), proc.stderr.decode()

    def write(self, name: str, text: str) -> str:
        (self.root / name).write_text(text)
        return name


def _spellings() -> list[bytes]:
    texts = {VALUE, json.dumps(VALUE)[1:-1], json.dumps(VALUE, ensure_ascii=False)[1:-1], repr(VALUE)[1:-1]}
    return sorted({t.encode() for t in texts} | {VALUE.encode("utf-16-le"), VALUE[:12].encode()})


@pytest.fixture
def project(tmp_path: Path, engine: dict[str, str]) -> Project:
    return Project(tmp_path / "project", engine)


def test_a_secret_value_appears_in_no_output_and_no_file(project: Project, engine: dict[str, str]) -> None:
    p = project
    # previews in every format, with the value in input and metadata (through the values file)
    for fmt in ("json", "yaml", "jsonl", "table"):
        out, _ = p.run("render", "-o", fmt)
        assert out.count("***") >= 40 * 4, fmt
    p.run("validate", masked=False)
    p.run("diff", "-o", "text")
    p.run("diff", "-o", "json", "--out", "plan.json")
    records = [json.loads(line.rstrip(",")) for line in (p.root / "plan.json").read_text().splitlines()[1:-1]]
    assert len(records) == 40 and all(r["secret"] and r["input"]["note"] == "***" for r in records)
    _, err = p.run("apply", "--yes", manifest="plan.json", values=False, masked=False, expect=1)
    assert "plans never hold secret values" in err  # a plan without the value cannot be applied: the manifests are

    # errors of every kind quoting the value
    errors = {
        "undefined": ("{{ {'a': 1}[note] }}", "'***' is undefined"),
        "date helper": ("{{ date_range(note, '2026-01-02') }}", "not an ISO 8601 date: '***'"),
        "date filter": ("{{ note | date_add(days=1) }}", "not an ISO 8601 date: '***'"),
        "secret lookup": ("{{ {'***': 1}[secret('SCRUB_TEST_PASSWORD')] }}", "cannot be indexed, sliced or used"),
        "secret date": ("{{ date_range(secret('SCRUB_TEST_PASSWORD'), '2026-01-02') }}", "passed to date_range()"),
    }
    for what, (expr, expected) in errors.items():
        name = p.write(f"bad-{what.replace(' ', '-')}.yaml", MANIFEST.replace('"{{ i }}"', json.dumps(expr), 1))
        _, err = p.run("validate", manifest=name, expect=1)
        assert f"{name}:11: runs[0] (i=0): input.i: " in err and expected in err, (what, err)
        _, err = p.run("apply", "--yes", manifest=name, expect=1)
        assert expected in err, (what, err)
    key = p.write("key.yaml", MANIFEST.replace('key: "s-{{ i }}"', 'key: "s-{{ i }}-{{ note }}"'))
    _, err = p.run("apply", "--yes", manifest=key, masked=False, expect=1)
    assert "key: holds the value of a secret" in err
    # the input schema validates the revealed input; jsonschema's message quotes the value
    schema = MANIFEST.replace(
        "    options:\n", "    input_schema: {type: object, properties: {password: {maxLength: 5}}}\n    options:\n"
    )
    _, err = p.run("apply", "--yes", manifest=p.write("schema.yaml", schema), expect=1)
    assert "input.password: '***' is too long" in err, err

    # an internal error whose message holds the values: in this process, and in a render worker (with and without
    # --traceback, which shows the worker's own traceback too)
    bug = {"HATCHET_MANIFEST_CRASH_AT": "render-bug:3"}
    # (the allow list only on the command line: it reaches the render workers with their job)
    parallel = {**bug, "HATCHET_MANIFEST_PARALLEL_THRESHOLD": "0", "HATCHET_MANIFEST_ALLOW_SECRETS": ""}
    for workers, env in (("1", bug), ("2", parallel)):
        _, err = p.run("apply", "--yes", "--workers", workers, "--allow-secret", NAME, expect=4, env=env)
        assert "internal error: " in err and "RuntimeError: simulated bug" in err, err
        assert "Traceback" not in err and "(rerun with --traceback)" in err
        _, err = p.run(
            "apply", "--yes", "--workers", workers, "--allow-secret", NAME, expect=4, env=env, before=("--traceback",)
        )
        assert "Traceback (most recent call last)" in err and "RuntimeError: simulated bug" in err, err
        assert "in with_secrets" in err, err  # the traceback of the process that failed (a worker's, if so)

    # the apply itself: progress, the result, the ledger; then previews against the ledger
    out, err = p.run("apply", "--yes", "-o", "json", masked=False)
    assert json.loads(out)["submitted"] == 40 and "sent 40/40 (100%): 40 submitted" in err
    out, _ = p.run("diff", "-o", "text", "--show-unchanged", masked=False)
    assert out.count("= s-") == 40

    for command, output in p.outputs:
        for spelling in _spellings():
            assert spelling not in output, (command, spelling, output.decode(errors="replace")[-3000:])
    written = [f for f in sorted(p.root.rglob("*")) if f.is_file() and f.name not in ("m.yaml", "values.yaml")]
    assert {"ledger.db", "plan.json"} <= {f.name for f in written}
    for path in written:
        data = path.read_bytes()
        for spelling in _spellings():
            assert spelling not in data, (path, spelling)
    assert not list((p.root / "state").glob("hatchet-manifest-*"))  # no spool left behind

    store = RunStore(engine["ENGINE_DB"])  # only the engine holds the value: it was sent
    try:
        runs = list(store.list_runs())
    finally:
        store.close()
    assert len(runs) == 40
    assert {r.input["password"] for r in runs} == {r.input["note"] for r in runs} == {VALUE}
    assert {r.additional_metadata["auth"] for r in runs} == {f"Bearer {VALUE}"}
