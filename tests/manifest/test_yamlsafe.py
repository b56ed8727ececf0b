"""The positioned YAML loader: the line it keeps for each path, and every kind of hostile YAML refused cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatchet_manifest.manifest import yamlsafe
from hatchet_manifest.manifest.yamlsafe import YamlError, parse_documents
from tests.conftest import RunCli

TEXT = """\
base: &base
  a: 1
  b: 2
x:
  a: 10
  <<: *base
  c: 3
"""


def test_a_merge_key_does_not_move_the_lines_of_keys_set_beside_it() -> None:
    [doc] = parse_documents(TEXT, "m.yaml")
    assert doc.data["x"] == {"a": 10, "b": 2, "c": 3}
    assert doc.line_of(("x", "a")) == 5  # set here, not at the anchor's line 2
    assert doc.line_of(("x", "b")) == 3  # merged in: its line in the anchor
    assert doc.line_of(("x", "c")) == 7


BAD_YAML = {
    "deep-sequence": ("x: " + "[" * 490 + "]" * 490, "m.yaml:1: invalid YAML: nesting deeper than 100 levels"),
    "deep-mapping": ("".join("  " * i + f"k{i}:\n" for i in range(150)) + "  " * 150 + "v: 1\n", "nesting deeper"),
    "recursive-anchor": ("vars: {a: &a [*a]}", "m.yaml:1: a recursive alias (an anchor used inside itself)"),
    "recursive-map": ("a: &a {b: *a}", "a recursive alias"),
    "lone-surrogate": ('x: "\\ud800"', "m.yaml:1: a lone surrogate (\\ud800) is not valid text"),
    "surrogate-key": ('ok: 1\n"\\udfff": 1', "m.yaml:2: a lone surrogate (\\udfff) is not valid text"),
    "raw-control": ("a: 1\nb: x\x07y\n", "m.yaml:2: invalid YAML: control character U+0007 in the text"),
    "raw-nul": ("a: \x00", "m.yaml:1: invalid YAML: control character U+0000 in the text"),
    "python-tag-on-sequence": ("x: !!python/object/apply:os.system [ls]", "unsupported YAML tag"),
    "custom-tag-on-mapping": ("x: !custom {a: 1}", "m.yaml:1: unsupported YAML tag !custom"),
    "set": ("x: !!set {a, b}", "m.yaml:1: unsupported YAML tag tag:yaml.org,2002:set"),
    "omap": ("x: !!omap [a: 1]", "unsupported YAML tag tag:yaml.org,2002:omap"),
    "binary": ("x: !!binary aGk=", "unsupported YAML tag tag:yaml.org,2002:binary"),
    "bool-maybe": ('x: !!bool "maybe"', "m.yaml:1: not a valid bool: 'maybe'"),
    "int-word": ("x: !!int twelve", "m.yaml:1: not a valid int: 'twelve'"),
    "null-word": ("x: !!null nothing", "not a valid null"),
    "two-merge-keys": ("a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n", "m.yaml:4: duplicate merge key << (first at line 3)"),
    "alias-bomb": (
        "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
        + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcd", "bcde", strict=True))
        + "f: [*e, *e, *e]\n",
        "aliases expand to more than 200000 nodes",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_YAML))
def test_bad_yaml_is_a_located_error(name: str) -> None:
    text, message = BAD_YAML[name]
    with pytest.raises(YamlError) as caught:
        list(parse_documents(text, "m.yaml"))
    assert message in str(caught.value)


def test_explicit_core_tags_that_fit_are_accepted() -> None:
    [doc] = parse_documents("a: !!int '12'\nb: !!str 12\nc: !!float 1\nd: !!bool 'true'\ne: !!null ''\n", "m.yaml")
    assert doc.data == {"a": 12, "b": "12", "c": 1.0, "d": True, "e": None}


def test_large_plain_data_is_not_mistaken_for_an_alias_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    # The budget lowered (from 200,000) so that data past it parses in a moment: the rule is what is tested.
    monkeypatch.setattr(yamlsafe, "MAX_ALIAS_NODES", 2_000)
    items = ", ".join(str(i) for i in range(2_500))
    [doc] = parse_documents(f"x: [{items}]\ny: &y {{k: 1}}\nz: [*y, *y]\n", "m.yaml")
    assert len(doc.data["x"]) == 2_500 and doc.data["z"] == [{"k": 1}, {"k": 1}]
    bomb = "a: &a [" + ", ".join(["x"] * 50) + "]\nb: [" + ", ".join(["*a"] * 50) + "]\n"  # 2,550 nodes
    with pytest.raises(YamlError, match="aliases expand to more than 2000 nodes"):
        list(parse_documents(bomb, "m.yaml"))


def test_a_deep_manifest_fails_cleanly_through_the_cli(tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(
        "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: d}\nvars:\n  x: "
        + "[" * 600
        + "]" * 600
        + "\nruns: []\n"
    )
    result = run_cli("validate", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"{path}:5: invalid YAML: nesting deeper than 100 levels" in result.stderr
