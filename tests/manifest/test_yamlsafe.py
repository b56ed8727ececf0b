"""The positioned YAML loader: the line it keeps for each path."""

from __future__ import annotations

from hatchet_manifest.manifest.yamlsafe import parse_documents

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
