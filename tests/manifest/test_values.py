"""Values from the command line: Helm's `--set` grammar, and values files read within bounds."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from hatchet_manifest.errors import ConfigError
from hatchet_manifest.manifest.values import Values
from tests.conftest import RunCli

GOOD = {
    "a.b=1,c=x": {"a": {"b": 1}, "c": "x"},
    "a[0]=1": {"a": [1]},
    "a[2].k=v,a[0]=z": {"a": ["z", None, {"k": "v"}]},
    "m[0][1]=x": {"m": [[None, "x"]]},
    r"p=a\,b": {"p": "a,b"},
    r"dotted\.key=1": {"dotted.key": 1},
    r"eq\=key=1": {"eq=key": 1},
    r"a=x\\y": {"a": "x\\y"},
    "tags={a,b,3}": {"tags": ["a", "b", 3]},
    "empty={}": {"empty": []},
    "one={x}": {"one": ["x"]},
    "a=1=2": {"a": "1=2"},
    "on=no": {"on": "no"},
    "k=": {"k": None},
    "a.b=1,a.b.c=2": {"a": {"b": {"c": 2}}},
}

BAD = {
    "a..b=1": "a key or a part of a key is empty",
    "a.=1": "a key or a part of a key is empty",
    ".a=1": "a key or a part of a key is empty",
    "=1": "a key or a part of a key is empty",
    "a": "expected key=value, got 'a' with no `=`",
    "a=1,": "expected key=value after the last `,`",
    "a=1,b": "expected key=value, got 'b' with no `=`",
    " a = 1": "the key ' a ' has spaces around it",
    "a[x]=1": "a list index must be a number, got 'x'",
    "a[-1]=1": "a list index must be a number, got '-1'",
    "a[99999]=1": "a list index is at most 65536, got 99999",
    "a[1=2": "a `[` is not closed",
    "a[1]x=2": "expected `.`, `[` or `=` after `]`, got 'x'",
    "[0]=1": "a key or a part of a key is empty",
    "a={1,2": "a list value `{...}` is not closed",
    "a={1}x": "expected `,` after a list value",
    "a=b\\": "a backslash at the end escapes nothing",
    ".".join(["k"] * 3000) + "=1": "a key of more than 100 parts",
    "a=\ud800": "a lone surrogate (\\ud800) is not valid text",
}


@pytest.mark.parametrize("text", sorted(GOOD))
def test_set_follows_helm(text: str) -> None:
    assert Values(set=[text]).overrides() == GOOD[text]


def test_set_string_keeps_strings_and_the_same_grammar() -> None:
    assert Values(set_string=["a.b=1,c={2,true}"]).overrides() == {"a": {"b": "1"}, "c": ["2", "true"]}
    with pytest.raises(ConfigError, match=re.escape("--set-string 'a..b=1': a key or a part of a key is empty")):
        Values(set_string=["a..b=1"]).overrides()


@pytest.mark.parametrize("text", sorted(BAD))
def test_set_refuses_what_helm_refuses(text: str, run_cli: RunCli) -> None:
    with pytest.raises(ConfigError) as caught:
        Values(set=[text]).overrides()
    assert BAD[text] in str(caught.value)
    assert len(str(caught.value)) < 200  # the argument is quoted shortened


def test_a_bad_set_through_the_cli_is_exit_1_without_traceback(run_cli: RunCli) -> None:
    result = run_cli("render", "manifests/bulk-parent.yaml", "--set", "count..x=1")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: --set 'count..x=1': a key or a part of a key is empty\n"


def _render(run_cli: RunCli, *args: str) -> tuple[int, str]:
    result = run_cli("render", "manifests/bulk-parent.yaml", "-o", "json", *args)
    assert "Traceback" not in result.stderr
    return result.exit_code, result.stderr


def test_values_file_with_two_documents_is_refused(tmp_path: Path, run_cli: RunCli) -> None:
    values = tmp_path / "v.yaml"
    values.write_text("count: 2\n---\ncount: 3\n")
    code, err = _render(run_cli, "-f", str(values))
    assert code == 1 and f"{values}:3: a values file holds one YAML document, this one has 2" in err


@pytest.mark.parametrize("kind", ["dev-zero", "directory", "fifo", "missing", "binary", "huge"])
def test_values_files_are_read_within_bounds(kind: str, tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "v.yaml"
    expected = {
        "dev-zero": "not a regular file",
        "directory": "not a regular file",
        "fifo": "not a regular file",
        "missing": "No such file or directory",
        "binary": "is not UTF-8 text",
        "huge": "values file is larger than 16 MiB",
    }[kind]
    if kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # opening it must not block waiting for a writer
    elif kind == "binary":
        path.write_bytes(b"count: \xff\xfe\n")
    elif kind == "huge":
        with path.open("wb") as f:
            f.truncate(17 << 20)
    code, err = _render(run_cli, "-f", str(path))
    assert code == 1 and expected in err and str(path) in err


def test_a_deep_values_file_is_a_clean_error(tmp_path: Path, run_cli: RunCli) -> None:
    values = tmp_path / "deep.yaml"
    values.write_text("count: " + "[" * 600 + "]" * 600 + "\n")
    code, err = _render(run_cli, "-f", str(values))
    assert code == 1 and f"{values}:1: invalid YAML: nesting deeper than 100 levels" in err


def test_values_and_set_reach_the_runs(tmp_path: Path, run_cli: RunCli) -> None:
    values = tmp_path / "v.yaml"
    values.write_text("count: 5\n")
    result = run_cli("render", "manifests/bulk-parent.yaml", "-o", "json", "-f", str(values), "--set", "count=2")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["runs"]) == 2
