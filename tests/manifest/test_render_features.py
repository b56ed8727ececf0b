"""Rendering behaviour: values, typing, secrets, env, selectors, caps and the output formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import hatchet_manifest as hm
from tests.conftest import RunCli

HEADER = "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\n"


ALLOW_DB_PASSWORD = hm.Limits(access=hm.Access(secrets=("DB_PASSWORD",)))


def write(tmp_path: Path, body: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def runs(path: Path, values: hm.Values | None = None, **kw: Any) -> list[hm.RenderedRun]:
    return list(hm.Renderer(hm.load([path]), values, schema_dir=None, **kw).runs())


def problems(path: Path, values: hm.Values | None = None, **kw: Any) -> list[str]:
    with pytest.raises(hm.ManifestError) as info:
        runs(path, values, **kw)
    return [str(p) for p in info.value.problems]


VALUES_MANIFEST = """
metadata: {name: values}
vars:
  count: 2
  who: {name: ann, team: x}
runs:
  - workflow_name: W
    for_each: "{{ range(count) }}"
    key: "k{{ item }}"
    input: {who: "{{ who }}", count: "{{ count }}", item: "{{ item }}"}
"""


def test_values_precedence_vars_files_set_set_string(tmp_path: Path) -> None:
    path = write(tmp_path, VALUES_MANIFEST)
    (tmp_path / "a.yaml").write_text("count: 3\nwho: {team: y}\n")
    (tmp_path / "b.yaml").write_text("count: 4\n")
    got = runs(path, hm.Values(files=[tmp_path / "a.yaml", tmp_path / "b.yaml"]))
    assert len(got) == 4
    assert got[0].input["who"] == {"name": "ann", "team": "y"}  # maps merge deeply
    got = runs(path, hm.Values(files=[tmp_path / "b.yaml"], set=["count=1", "who.name=bob"]))
    assert len(got) == 1 and got[0].input["who"] == {"name": "bob", "team": "x"}
    got = runs(path, hm.Values(set=["count=1"], set_string=["who.team=007"]))
    assert got[0].input["who"]["team"] == "007"


def test_set_values_are_yaml_typed_and_set_string_is_not(tmp_path: Path) -> None:
    path = write(tmp_path, VALUES_MANIFEST)
    assert runs(path, hm.Values(set=["count=1"]))[0].input["count"] == 1
    with pytest.raises(hm.ManifestError):
        runs(path, hm.Values(set_string=["count=1"]))  # range("1") fails: a string


def test_single_expression_keeps_native_type_mixed_text_is_a_string(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
metadata: {name: types}
vars: {n: 3, f: 1.5, flag: true, items: [1, 2], obj: {a: 1}, s: "42"}
runs:
  - workflow_name: W
    key: k
    input:
      n: "{{ n }}"
      f: "{{ f }}"
      flag: "{{ flag }}"
      items: "{{ items }}"
      obj: "{{ obj }}"
      s: "{{ s }}"
      text: "n={{ n }}"
      spaced: " {{ n }}"
      int_of_s: "{{ s | int }}"
      json: "{{ obj | to_json }}"
""",
    )
    got = runs(path)[0].input
    assert got == {
        "n": 3,
        "f": 1.5,
        "flag": True,
        "items": [1, 2],
        "obj": {"a": 1},
        "s": "42",
        "text": "n=3",
        "spaced": " 3",
        "int_of_s": 42,
        "json": '{"a":1}',
    }


def test_metadata_scalars_become_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
metadata: {name: md}
runs:
  - workflow_name: W
    key: k
    options:
      additional_metadata: {i: 5, f: 2.5, t: true, s: x, "k-{{ 1 + 1 }}": "{{ 7 }}"}
""",
    )
    assert runs(path)[0].additional_metadata == {"i": "5", "f": "2.5", "t": "true", "s": "x", "k-2": "7"}


def test_secret_is_masked_in_previews_and_real_only_when_revealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    path = write(
        tmp_path,
        """
metadata: {name: sec}
runs:
  - workflow_name: W
    key: k
    input: {password: "{{ secret('DB_PASSWORD') }}", joined: "{{ 'x-' ~ secret('DB_PASSWORD') }}"}
    options: {additional_metadata: {auth: "pw-{{ secret('DB_PASSWORD') }}"}}
""",
    )
    preview = runs(path, limits=ALLOW_DB_PASSWORD)[0]
    assert preview.input == {"password": "***", "joined": "x-***"}
    assert preview.additional_metadata == {"auth": "pw-***"}
    assert preview.secret_input is None
    revealed = runs(path, limits=ALLOW_DB_PASSWORD, reveal_secrets=True)[0]
    assert revealed.input["password"] == "***"  # what is shown and digested never holds it
    assert revealed.workflow_run(reveal=True)["input"] == {"password": "hunter2", "joined": "x-hunter2"}
    assert revealed.workflow_run(reveal=True)["options"]["additional_metadata"] == {"auth": "pw-hunter2"}
    for fmt in ("json", "yaml", "jsonl", "table"):
        result = run_cli("render", str(path), "-o", fmt, "--allow-secret", "DB_PASSWORD")
        assert result.exit_code == 0
        assert "hunter2" not in result.stdout + result.stderr


def test_missing_secret_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    monkeypatch.setenv("REGION", "eu")
    monkeypatch.delenv("NOPE_SECRET_NOT_SET", raising=False)
    limits = hm.Limits(access=hm.Access(env=("REGION", "NOPE_NOT_SET")))
    path = write(
        tmp_path,
        """
metadata: {name: env}
runs:
  - workflow_name: W
    key: k
    input: {region: "{{ env('REGION') }}", zone: "{{ env('NOPE_NOT_SET', 'a') }}"}
""",
    )
    assert runs(path, limits=limits)[0].input == {"region": "eu", "zone": "a"}
    bad = write(
        tmp_path,
        """
metadata: {name: env2}
runs:
  - workflow_name: W
    key: k
    input: {a: "{{ env('NOPE_NOT_SET') }}", b: "{{ secret('NOPE_SECRET_NOT_SET') }}"}
""",
        "bad.yaml",
    )
    msgs = problems(bad, limits=hm.Limits(access=hm.Access(env=("NOPE_NOT_SET",), secrets=("NOPE_SECRET_*",))))
    assert msgs == [f"{bad}:8: runs[0]: input.a: environment variable NOPE_NOT_SET is not set (give env() a default)"]


def test_a_missing_secret_is_a_warning_in_previews_and_an_error_for_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.delenv("PR_JOBS_HAVE_NO_SECRETS", raising=False)
    path = write(
        tmp_path,
        """
metadata: {name: sec2}
runs:
  - workflow_name: W
    key: k
    input: {password: "{{ secret('PR_JOBS_HAVE_NO_SECRETS') }}"}
""",
    )
    result = run_cli("validate", str(path), env={"HATCHET_MANIFEST_ALLOW_SECRETS": "PR_JOBS_HAVE_NO_SECRETS"})
    assert result.exit_code == 0
    assert "warning: secret PR_JOBS_HAVE_NO_SECRETS is not set: shown as ***; apply will need it" in result.stderr
    limits = hm.Limits(access=hm.Access(secrets=("PR_JOBS_HAVE_NO_SECRETS",)))
    assert runs(path, limits=limits)[0].input == {"password": "***"}
    assert problems(path, limits=limits, reveal_secrets=True) == [
        f"{path}:8: runs[0]: input.password: secret PR_JOBS_HAVE_NO_SECRETS is not set in the environment (or is empty)"
    ]


def test_selector_filters_manifests_by_labels(tmp_path: Path, run_cli: RunCli) -> None:
    for name, team in (("a", "data"), ("b", "ml")):
        write(
            tmp_path,
            f"metadata: {{name: {name}, labels: {{team: {team}}}}}\nruns:\n  - workflow_name: W{name}\n    key: {name}\n",
            f"{name}.yaml",
        )
    result = run_cli("render", str(tmp_path), "-l", "team=ml", "-o", "json")
    assert [r["key"] for r in json.loads(result.stdout)["runs"]] == ["b"]
    result = run_cli("render", str(tmp_path), "-l", "team!=ml,team", "-o", "json")
    assert [r["key"] for r in json.loads(result.stdout)["runs"]] == ["a"]
    assert run_cli("render", str(tmp_path), "-l", "te am=x").exit_code == 1


def test_max_runs_is_enforced_before_rendering(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
metadata: {name: cap}
vars: {n: 50}
runs:
  - workflow_name: W
    for_each: "{{ range(n) }}"
    key: "a{{ item }}"
  - workflow_name: W
    for_each: "{{ range(n) }}"
    key: "b{{ item }}"
""",
    )
    msgs = problems(path, limits=hm.Limits(max_runs=80))
    assert msgs == ["the manifests declare 100 runs, more than --max-runs 80"]
    assert len(runs(path, limits=hm.Limits(max_runs=100))) == 100


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("{{ 'x' * 10000000 }}", "'*' would build a value longer than 4194304"),
        ("{{ '%099999999d' % 1 }}", "'%': widths and precisions of a million or more are refused"),
        ("{{ '{:>99999999}'.format(1) }}", "str.format(): widths and precisions of a million or more are refused"),
        ("{{ 'x'.ljust(99999999) }}", "str.ljust() would build a value longer than 4194304"),
        ("{{ 'x' | center(99999999) }}", "the center filter's width is capped at 4194304"),
        ("{{ ('a' * 1000000).replace('a', 'xxxxxx') }}", "str.replace() would build a value longer than 4194304"),
        ("{{ ('a' * 4000000) ~ ('b' * 4000000) }}", "'~' would build a value longer than 4194304"),
        ("{{ ['a'] * 3000000 + ['b'] * 3000000 }}", "'+' would build a value longer than 4194304"),
        (
            "{% for i in range(100) %}{{ 'x' * 1000000 }}{% endfor %}",
            "the template renders more than 4194304 characters",
        ),
        ("{{ 10 ** 100000 }}", "the exponent of ** is capped at 64"),
        ("{{ cycler.__init__.__globals__ }}", "access to attribute '__init__' of 'type' object is unsafe."),
        ("{{ [1].append(2) }}", "access to attribute 'append' of 'list' object is unsafe."),
        ("{% include '/etc/passwd' %}", "TypeError: no loader for this environment specified"),
        ("{{ range(10 ** 9) | list }}", "range() has 1000000000 items, more than the cap of 100000 (--max-runs)"),
    ],
)
def test_sandbox_refuses_escapes_and_bombs(tmp_path: Path, expr: str, message: str) -> None:
    path = write(
        tmp_path,
        f"metadata: {{name: s}}\nruns:\n  - workflow_name: W\n    key: k\n    input: {{x: {json.dumps(expr)}}}\n",
    )
    assert problems(path) == [f"{path}:7: runs[0]: input.x: {message}"]


def test_errors_are_collected_across_runs_with_loop_index(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
metadata: {name: many}
runs:
  - workflow_name: W
    for_each: [0, 1, 2]
    as: i
    key: "k{{ i }}"
    input: {x: "{{ 10 // i }}"}
""",
    )
    assert problems(path) == [
        f"{path}:10: runs[0] (i=0): input.x: ZeroDivisionError: integer division or modulo by zero"
    ]


def test_input_schema_from_the_schema_dir(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "W.json").write_text(json.dumps({"type": "object", "required": ["n"]}))
    path = write(tmp_path, "metadata: {name: s}\nruns:\n  - workflow_name: W\n    key: k\n    input: {m: 1}\n")
    with pytest.raises(hm.ManifestError) as info:
        list(hm.Renderer(hm.load([path]), schema_dir=tmp_path / "schemas").runs())
    assert str(info.value) == f"{path}:7: runs[0]: input: 'n' is a required property"


def test_request_size_limit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
metadata: {name: big}
runs:
  - workflow_name: W
    key: k
    input: {blob: "{{ 'x' * 1000000 }}", more: "{{ 'y' * 1000000 }}", again: "{{ 'z' * 1000000 }}", last: "{{ 'w' * 1000000 }}", tail: "{{ 'v' * 200000 }}"}
""",
    )
    msgs = problems(path)
    assert len(msgs) == 1 and "over the 4194304-byte limit" in msgs[0]


def test_request_size_counts_the_json_as_sent(tmp_path: Path) -> None:
    """3,000,001 bytes of compact JSON ("[1,1,...]") fit; with ", " separators it would have counted 4.5 MB."""
    path = write(
        tmp_path,
        """
metadata: {name: list}
runs:
  - workflow_name: W
    key: k
    input: {xs: "{{ [1] * 1500000 }}"}
""",
    )
    [run] = hm.Renderer(hm.load([path]), schema_dir=tmp_path / "schemas").runs()
    assert len(run.input["xs"]) == 1_500_000


@pytest.mark.parametrize("fmt", ["json", "jsonl", "yaml", "table"])
def test_render_formats(tmp_path: Path, run_cli: RunCli, fmt: str) -> None:
    path = write(
        tmp_path,
        "metadata: {name: f}\nruns:\n  - workflow_name: W\n    for_each: [1, 2]\n    key: 'k{{ item }}'\n    input: {n: '{{ item }}'}\n    options: {priority: 2}\n",
    )
    result = run_cli("render", str(path), "-o", fmt)
    assert result.exit_code == 0 and result.stderr == ""
    expected = [
        {"key": f"k{i}", "workflow_name": "W", "input": {"n": i}, "options": {"additional_metadata": {}, "priority": 2}}
        for i in (1, 2)
    ]
    if fmt == "json":
        assert json.loads(result.stdout) == {"apiVersion": "hatchet-manifest/v1", "kind": "RunList", "runs": expected}
    elif fmt == "jsonl":
        assert [json.loads(line) for line in result.stdout.splitlines()] == expected
    elif fmt == "yaml":
        assert yaml.safe_load(result.stdout) == {
            "apiVersion": "hatchet-manifest/v1",
            "kind": "RunList",
            "runs": expected,
        }
    else:
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["KEY", "WORKFLOW", "INPUT", "METADATA", "PRIORITY"]
        assert lines[1].split() == ["k1", "W", '{"n":1}', "{}", "2"]


def test_invalid_run_gives_exit_1_after_streaming_the_valid_ones(tmp_path: Path, run_cli: RunCli) -> None:
    path = write(
        tmp_path,
        "metadata: {name: f}\nruns:\n  - workflow_name: W\n    for_each: [1, 0, 2]\n    key: 'k{{ item }}'\n    input: {n: '{{ 1 / item }}'}\n",
    )
    result = run_cli("render", str(path), "-o", "jsonl")
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr.splitlines() == [
        f"{path}:8: runs[0] (item=0): input.n: ZeroDivisionError: division by zero",
        "error: 1 problem found",
    ]


def test_missing_path_is_a_clear_error(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"{tmp_path / 'nope.yaml'}: no such file or directory"


def test_duplicate_manifest_names(tmp_path: Path) -> None:
    write(tmp_path, "metadata: {name: same}\nruns:\n  - {workflow_name: W, key: a}\n", "a.yaml")
    write(tmp_path, "metadata: {name: same}\nruns:\n  - {workflow_name: W, key: b}\n", "b.yaml")
    with pytest.raises(hm.ManifestError) as info:
        hm.load([tmp_path])
    assert "duplicate manifest name 'same'" in str(info.value)


def test_date_helpers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
metadata: {name: dates}
runs:
  - workflow_name: W
    key: k
    input:
      hours: "{{ datetime_range('2026-03-01T00:00', '2026-03-01T02:00', '1h') }}"
      weeks: "{{ date_range('2026-03-01', '2026-03-20', '1w') }}"
      months: "{{ month_range('2025-11-15', '2026-02-01') }}"
      back: "{{ '2026-03-01' | date_add(days=-1) }}"
""",
    )
    assert runs(path)[0].input == {
        "hours": ["2026-03-01T00:00:00", "2026-03-01T01:00:00", "2026-03-01T02:00:00"],
        "weeks": ["2026-03-01", "2026-03-08", "2026-03-15"],
        "months": ["2025-11-01", "2025-12-01", "2026-01-01", "2026-02-01"],
        "back": "2026-02-28",
    }


def test_duplicate_keys_are_found_across_batches(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
metadata: {name: dups}
runs:
  - workflow_name: W
    for_each: "{{ range(3000) }}"
    key: "k-{{ item % 2500 }}"
""",
    )
    with pytest.raises(hm.ManifestError) as info:
        runs(path)
    assert len(info.value.problems) == 100 + 1  # capped, then "... and N more"
    assert str(info.value.problems[0]) == f"{path}:8: runs[0] (item=2500): key: duplicate key 'k-0'"
    assert str(info.value.problems[-1]) == "... and 400 more problems"
