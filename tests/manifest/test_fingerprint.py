"""What a manifest's fingerprint covers, read off real manifest files: the template scan (does it call env(), may
its render differ between processes), the typed digest of its document, and the detail kept with its record."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatchet_manifest.manifest.access import Access
from hatchet_manifest.manifest.fingerprint import Detail, Fingerprints, document_digest, scan
from hatchet_manifest.manifest.loader import LoadedManifest, load
from hatchet_manifest.manifest.values import Values

HEAD = "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: m}\n"


def manifest(tmp_path: Path, body: str, name: str = "m.yaml") -> LoadedManifest:
    path = tmp_path / name
    path.write_text(HEAD + body)
    return load([path])[0]


@pytest.mark.parametrize(
    ("value", "env", "deterministic"),
    [
        ("{{ item }}", False, True),
        ("{{ env('DAY', 'monday') }}", True, True),
        ("{{ \uff45\uff4e\uff56('DAY') }}", True, True),  # env in fullwidth letters is still env (NFKC)
        ("{{ range(3) | list }}", False, True),
        ("x{{ range }}", False, False),  # a helper written out as text holds its address
        ("{{ cycler('a', 'b') }}", False, False),
        ("{{ [1, 2] | random }}", False, False),
        ("{% filter random %}ab{% endfilter %}", False, False),
        ("{{ ['ab'] | map('random') | list }}", False, False),
        ("{{ ['ab'] | map(name) | list }}", False, False),  # a filter chosen at render time may be random
        ("{{ ['ab'] | map('upper') | list }}", False, True),
        ("{{ [{'a': 1}] | map(attribute='a') | list }}", False, True),
        ("{% raw %}{{ env('DAY') | random }}{% endraw %}", False, True),  # text, not a template
    ],
)
def test_the_scan_finds_env_and_what_may_render_differently(
    tmp_path: Path, value: str, env: bool, deterministic: bool
) -> None:
    m = manifest(tmp_path, f"runs:\n  - workflow_name: W\n    key: k\n    input: {{x: {value!r}}}\n")
    found = scan(m)
    assert (found.env, found.deterministic) == (env, deterministic)


def test_the_scan_reads_what_is_rendered_keys_and_template_blocks_included(tmp_path: Path) -> None:
    vars_only = manifest(tmp_path, "vars: {x: \"{{ env('A') | random\"}\nruns:\n  - {workflow_name: W, key: k}\n")
    assert (scan(vars_only).env, scan(vars_only).deterministic) == (False, True)  # vars are data, never rendered
    in_key = manifest(tmp_path, "runs:\n  - workflow_name: W\n    key: k\n    input: {\"{{ env('A') }}\": 1}\n")
    assert scan(in_key).env
    block = manifest(
        tmp_path, 'runs:\n  - template: |\n      - {workflow_name: W, key: "{{ [1] | random }}"}\n', "b.yaml"
    )
    assert not scan(block).deterministic
    paths = manifest(
        tmp_path, "runs:\n  - {workflow_name: W, key: k, input_schema: s.json}\n  - {workflow_name: V, key: l}\n"
    )
    assert scan(paths).schemas == ("s.json",)
    broken = manifest(tmp_path, 'runs:\n  - {workflow_name: W, key: "{{ k"}\n')
    assert not scan(broken).deterministic  # nothing can be said of a template that does not parse


def test_the_document_digest_keeps_types_and_order_but_not_comments(tmp_path: Path) -> None:
    assert len({document_digest(v) for v in (1, 1.0, "1", True, None, [1], {"1": 1})}) == 7
    assert document_digest({"a": 1, "b": 2}) != document_digest({"b": 2, "a": 1})
    assert document_digest({1: "a"}) != document_digest({"1": "a"})
    body = "runs:\n  - {workflow_name: W, key: k}\n"
    one, two = manifest(tmp_path, body, "one.yaml"), manifest(tmp_path, "# a comment\n" + body, "two.yaml")
    assert document_digest(one.doc.data) == document_digest(two.doc.data)


def test_a_detail_round_trips_and_anything_else_is_none() -> None:
    detail = Detail(True, ("A", "B"), ("s.json",), 12)
    assert Detail.from_json(detail.to_json()) == detail
    for text in ("", "[]", '{"v": 2}', '{"v": 1, "env": 1, "workflows": [], "schemas": [], "declared": 0}'):
        assert Detail.from_json(text) is None


def test_fingerprints_differ_with_each_shared_input(tmp_path: Path) -> None:
    m = manifest(tmp_path, "runs:\n  - {workflow_name: W, key: \"{{ env('DAY', 'x') }}\"}\n")
    (tmp_path / "v.yaml").write_text("a: 1\n")
    detail = Detail(True, ("W",), (), 1)
    salt = "00" * 16

    def of(
        values: Values | None = None,
        max_runs: int = 10,
        access: Access | None = None,
        namespace: str = "",
        environ: dict[str, str] | None = None,
    ) -> str | None:
        access = access or Access(env=("DAY",))
        return Fingerprints(values or Values(), None, max_runs, access, namespace, environ or {}).of(m, detail, salt)

    base = of()
    assert base is not None and of() == base
    variants = [
        of(values=Values(files=[str(tmp_path / "v.yaml")])),
        of(values=Values(set=["a=1"])),
        of(values=Values(set_string=["a=1"])),
        of(max_runs=11),
        of(access=Access(env=("DAY", "OTHER"))),
        of(namespace="staging_"),
        of(environ={"DAY": "monday"}),
        of(environ={"TZ": "Europe/Paris"}),
        Fingerprints(Values(), None, 10, Access(env=("DAY",)), "", {}).of(m, detail, "11" * 16),  # salted
    ]
    assert base not in variants and len(set(variants)) == len(variants)
    (tmp_path / "v.yaml").write_text("a: 2\n")
    assert of(values=Values(files=[str(tmp_path / "v.yaml")])) != variants[0]
    assert of(values=Values(files=[str(tmp_path / "missing.yaml")])) is None  # the render says what is wrong
