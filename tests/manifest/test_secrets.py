"""What a template may do with a secret: place it in input or metadata values and join it with text, nothing that
depends on its value (the allow lists: test_allow_lists.py; the scrubber: test_scrub.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import hatchet_manifest as hm
from hatchet_manifest import scrub
from hatchet_manifest.manifest.access import Access
from tests.conftest import RunCli

HEADER = "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\n"
VALUE = 'Zq9-sécret"with\\quotes'  # escaped differently by JSON, repr and YAML: every spelling must be masked
ALLOW = hm.Limits(access=Access(secrets=("HM_TEST_SECRET",)), max_problems=1000)


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HM_TEST_SECRET", VALUE)
    for name in ("HATCHET_MANIFEST_ALLOW_ENV", "HATCHET_MANIFEST_ALLOW_SECRETS"):
        monkeypatch.delenv(name, raising=False)


def manifest(tmp_path: Path, runs: str, name: str = "m.yaml", extra: str = "") -> Path:
    path = tmp_path / name
    path.write_text(f"{HEADER}metadata: {{name: {path.stem}}}\n{extra}runs:\n{runs}")
    return path


def one_input(tmp_path: Path, expr: str) -> Path:
    return manifest(tmp_path, f"  - workflow_name: W\n    key: k\n    input:\n      x: {json.dumps(expr)}\n")


def rendered(path: Path, reveal: bool, limits: hm.Limits = ALLOW) -> list[hm.RenderedRun]:
    return list(hm.Renderer(hm.load([path]), None, limits, None, reveal_secrets=reveal).runs())


def problems(path: Path, reveal: bool, limits: hm.Limits = ALLOW) -> list[str]:
    with pytest.raises(hm.ManifestError) as info:
        rendered(path, reveal, limits)
    text = [str(p) for p in info.value.problems]
    assert VALUE not in "\n".join(text) and VALUE not in str(info.value)
    return text


# -- what a template may do with a secret -------------------------------------------------------------------------

S = "secret('HM_TEST_SECRET')"
PLACEMENTS = [
    (f"{{{{ {S} }}}}", "***", VALUE),
    (f"pw-{{{{ {S} }}}}-{{{{ 3 }}}}", "pw-***-3", f"pw-{VALUE}-3"),
    (f"{{{{ 'a' ~ {S} ~ 1 }}}}", "a***1", f"a{VALUE}1"),
    (f"{{{{ 'a' + {S} + 'b' }}}}", "a***b", f"a{VALUE}b"),
    (f"{{{{ ({S} ~ 'x') ~ ({S} ~ 'y') }}}}", "***x***y", f"{VALUE}x{VALUE}y"),
    (f"{{% if true %}}<{{{{ {S} }}}}>{{% endif %}}", "<***>", f"<{VALUE}>"),
    (f"{{% set s = {S} %}}[{{{{ s }}}}]", "[***]", f"[{VALUE}]"),
    (f"{{% set c %}}{{{{ {S} }}}}!{{% endset %}}{{{{ c }}}}", "***!", f"{VALUE}!"),
    (f"{{% macro m() %}}({{{{ {S} }}}}){{% endmacro %}}{{{{ m() }}}}", "(***)", f"({VALUE})"),
    (f"{{{{ {S} | default('x') | string }}}}", "***", VALUE),
    (f"{{{{ [{S}, 1] }}}}", ["***", 1], [VALUE, 1]),
    (f"{{{{ {{'a': {{'b': {S}}}}} }}}}", {"a": {"b": "***"}}, {"a": {"b": VALUE}}),
    (f"{{{{ {{'a': {S}}}['a'] }}}}", "***", VALUE),
    (f"{{{{ [{S}][0] }}}}", "***", VALUE),
]


@pytest.mark.parametrize(("expr", "masked", "real"), PLACEMENTS, ids=[p[0] for p in PLACEMENTS])
def test_a_secret_can_be_placed_and_joined_with_text(tmp_path: Path, expr: str, masked: Any, real: Any) -> None:
    path = one_input(tmp_path, expr)
    [preview] = rendered(path, reveal=False)
    assert preview.input == {"x": masked} and preview.secret_input is None
    [revealed] = rendered(path, reveal=True)
    assert revealed.input == {"x": masked}  # what is shown, digested and planned
    assert revealed.workflow_run(reveal=True)["input"] == {"x": real}  # what is sent
    assert revealed.key == preview.key


def test_a_secret_in_metadata_values_and_loops_builds_the_same_runs_as_the_preview(tmp_path: Path) -> None:
    path = manifest(
        tmp_path,
        "  - workflow_name: W\n"
        '    for_each: "{{ range(40) }}"\n'
        '    when: "{{ i % 3 != 0 }}"\n'
        "    as: i\n"
        "    input: {i: \"{{ i }}\", token: \"{{ 'Bearer ' ~ secret('HM_TEST_SECRET') }}\"}\n"
        "    options: {additional_metadata: {auth: \"{{ secret('HM_TEST_SECRET') }}-{{ i }}\"}}\n",
    )
    preview = rendered(path, reveal=False)
    revealed = rendered(path, reveal=True)
    assert len(preview) == len(revealed) == 26
    assert [(r.key, r.input, r.additional_metadata) for r in preview] == [
        (r.key, r.input, r.additional_metadata) for r in revealed
    ]
    assert preview[0].input == {"i": 1, "token": "Bearer ***"} and preview[0].additional_metadata == {"auth": "***-1"}
    sent = revealed[0].workflow_run(reveal=True)
    assert sent["input"]["token"] == f"Bearer {VALUE}" and sent["options"]["additional_metadata"] == {
        "auth": f"{VALUE}-1"
    }


# Each: an expression whose result would depend on the secret's value, and what the error says.
FORBIDDEN = [
    (f"{{{{ {S} == 'prod' }}}}", "cannot be compared"),
    (f"{{{{ {S} != 'prod' }}}}", "cannot be compared"),
    (f"{{{{ {S} < 'm' }}}}", "cannot be compared"),
    (f"{{{{ {S} in ['a'] }}}}", "cannot be compared"),
    (f"{{{{ 'a' in {S} }}}}", "cannot be searched"),
    (f"{{{{ {S} in {{'a': 1}} }}}}", "used as a key or looked up"),
    (f"{{{{ {{'***': 1}}[{S}] }}}}", "cannot be indexed, sliced or used as a key"),
    (f"{{{{ {{{S}: 1}} }}}}", "used as a key or looked up"),
    (f"{{{{ {S}[0] }}}}", "cannot be indexed"),
    (f"{{{{ {S}[1:] }}}}", "cannot be indexed"),
    (f"{{{{ {S}.upper() }}}}", "has no attributes ('upper')"),
    (f"{{{{ {S}.__class__ }}}}", "has no attributes"),
    (f"{{{{ {S} | length }}}}", "given to the length filter"),
    (f"{{{{ {S} | count }}}}", "given to the count filter"),
    (f"{{{{ {S} | upper }}}}", "given to the upper filter"),
    (f"{{{{ {S} | reverse }}}}", "given to the reverse filter"),
    (f"{{{{ {S} | replace('a', 'b') }}}}", "given to the replace filter"),
    (f"{{{{ {S} | int }}}}", "given to the int filter"),
    (f"{{{{ {S} | float }}}}", "given to the float filter"),
    (f"{{{{ {S} | list }}}}", "given to the list filter"),
    (f"{{{{ {S} | first }}}}", "given to the first filter"),
    (f"{{{{ {S} | trim }}}}", "given to the trim filter"),
    (f"{{{{ {S} | truncate(3) }}}}", "given to the truncate filter"),
    (f"{{{{ {S} | pprint }}}}", "given to the pprint filter"),
    (f"{{{{ {S} | to_json }}}}", "given to the to_json filter"),
    (f"{{{{ {S} | tojson }}}}", "given to the tojson filter"),
    (f"{{{{ {S} | sha256 }}}}", "given to the sha256 filter"),
    (f"{{{{ {S} | date_add(days=1) }}}}", "given to the date_add filter"),
    (f"{{{{ {S} | urlencode }}}}", "given to the urlencode filter"),
    (f"{{{{ {S} | default('x', true) }}}}", "used as a condition"),
    (f"{{{{ {{'a': {S}}} | to_json }}}}", "turned into JSON text"),
    (f"{{{{ [{S}] | tojson }}}}", "turned into JSON text"),
    (f"{{{{ [{S}] | join }}}}", "turned into other text"),
    (f"{{{{ [{S}] | string }}}}", "turned into text (repr)"),
    (f"x{{{{ [{S}] }}}}", "turned into text (repr)"),
    (f"{{{{ [{S}, 'a'] | sort }}}}", "cannot be compared"),
    (f"{{{{ [{S}] | unique | list }}}}", "used as a key or looked up"),
    (f"{{{{ [{S}, {S}] | max }}}}", "cannot be compared"),
    (f"{{{{ [{S}] | map('upper') | list }}}}", "given to the upper filter"),
    (f"{{{{ [{S}] | select('equalto', 'a') | list }}}}", "cannot be tested (equalto)"),
    (f"{{{{ [{S}] | sum }}}}", "cannot be added to a number"),
    (f"{{{{ {S} is defined }}}}", "cannot be tested (defined)"),
    (f"{{{{ {S} is string }}}}", "cannot be tested (string)"),
    (f"{{{{ {S} is sameas 'x' }}}}", "cannot be tested (sameas)"),
    (f"{{% if {S} %}}a{{% endif %}}", "used as a condition"),
    (f"{{{{ 'a' if {S} else 'b' }}}}", "used as a condition"),
    (f"{{{{ not {S} }}}}", "used as a condition"),
    (f"{{{{ {S} and 'a' }}}}", "used as a condition"),
    (f"{{% for c in {S} %}}{{{{ c }}}}{{% endfor %}}", "iterated over"),
    (f"{{{{ {S} * 2 }}}}", "used in arithmetic"),
    (f"{{{{ {S} // 2 }}}}", "used in arithmetic"),
    (f"{{{{ -{S} }}}}", "used in arithmetic"),
    (f"{{{{ {S} + 1 }}}}", "cannot be added to a number"),
    (f"{{{{ '%s' % {S} }}}}", "turned into other text"),
    (f"{{{{ '{{}}'.format({S}) }}}}", "cannot be passed to"),
    (f"{{{{ range({S}) }}}}", "passed to range()"),
    (f"{{{{ date_range({S}, '2026-01-02') }}}}", "passed to date_range()"),
    (f"{{{{ env({S}) }}}}", "passed to env()"),
    (f"{{{{ secret({S}) }}}}", "passed to secret()"),
    (f"{{{{ namespace(a={S}) }}}}", "passed to Namespace()"),
    (f"{{% macro m(v) %}}{{{{ v }}}}{{% endmacro %}}{{{{ m({S}) }}}}", "passed to m()"),
    (f"{{% filter upper %}}{{{{ {S} }}}}{{% endfilter %}}", "given to the upper filter"),
    (f"{{{{ ({S} ~ 'x') | length }}}}", "given to the length filter"),
    (f"{{{{ ({S} ~ 'x') == 'x' }}}}", "cannot be compared"),
]


@pytest.mark.parametrize(("expr", "why"), FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_a_use_that_depends_on_the_value_is_an_error_with_its_location(tmp_path: Path, expr: str, why: str) -> None:
    path = one_input(tmp_path, expr)
    for reveal in (False, True):  # the same error in the preview and at apply
        [message] = problems(path, reveal)
        assert message.startswith(f"{path}:8: runs[0]: input.x: "), message
        assert why in message, message


def test_forbidden_uses_fail_through_the_cli_without_the_value(tmp_path: Path, run_cli: RunCli) -> None:
    path = manifest(
        tmp_path,
        "".join(
            f"  - workflow_name: W\n    key: k{n}\n    input:\n      x: {json.dumps(expr)}\n"
            for n, (expr, _) in enumerate(FORBIDDEN)
        ),
    )
    result = run_cli("validate", str(path), "--allow-secret", "HM_TEST_SECRET")
    assert result.exit_code == 1
    assert f"error: {len(FORBIDDEN)} problems found" in result.stderr
    assert "Traceback" not in result.stderr and VALUE not in result.stdout + result.stderr


SECRET_FIELDS = [
    ("workflow_name", "  - workflow_name: \"{{ secret('HM_TEST_SECRET') }}\"\n", "workflow_name: secret() cannot"),
    ("key", "  - workflow_name: W\n    key: \"k-{{ secret('HM_TEST_SECRET') }}\"\n", "key: secret() cannot"),
    ("when", "  - workflow_name: W\n    when: \"{{ secret('HM_TEST_SECRET') }}\"\n", "when: secret() cannot"),
    (
        "for_each",
        "  - workflow_name: W\n    for_each: \"{{ [secret('HM_TEST_SECRET')] }}\"\n",
        "for_each: secret() cannot",
    ),
    (
        "matrix",
        "  - workflow_name: W\n    matrix: {a: [\"{{ secret('HM_TEST_SECRET') }}\"]}\n",
        "matrix.a[0]: secret() cannot",
    ),
    (
        "priority",
        "  - workflow_name: W\n    options: {priority: \"{{ secret('HM_TEST_SECRET') }}\"}\n",
        "options.priority: secret() cannot",
    ),
    ("input key", "  - workflow_name: W\n    input: {\"{{ secret('HM_TEST_SECRET') }}\": 1}\n", "a mapping's key"),
    (
        "metadata key",
        "  - workflow_name: W\n    options: {additional_metadata: {\"{{ secret('HM_TEST_SECRET') }}\": x}}\n",
        "a mapping's key",
    ),
    (
        "template block",
        "  - template: |\n      - workflow_name: W\n        input: {p: \"{{ secret('HM_TEST_SECRET') }}\"}\n",
        "template: secret() cannot be used in a template: block",
    ),
]


@pytest.mark.parametrize(("field", "runs", "expected"), SECRET_FIELDS, ids=[f[0] for f in SECRET_FIELDS])
def test_secret_is_an_error_wherever_its_value_cannot_be_sent(
    tmp_path: Path, field: str, runs: str, expected: str
) -> None:
    path = manifest(tmp_path, runs)
    for reveal in (False, True):
        [message] = problems(path, reveal)
        assert expected in message and f"{path}:" in message, message


def test_secret_in_vars_is_an_error(tmp_path: Path) -> None:
    path = manifest(
        tmp_path,
        '  - workflow_name: W\n    input: {p: "{{ pw }}"}\n',
        extra="vars:\n  pw: \"{{ secret('HM_TEST_SECRET') }}\"\n  other: {nested: [\"x {{ secret('A') }}\"]}\n",
    )
    assert problems(path, reveal=False) == [
        f"{path}:5: vars.pw: secret() cannot be used in vars: vars are data, never rendered, so this text would be "
        "sent as is; call secret() in input or options.additional_metadata",
        f"{path}:6: vars.other.nested.0: secret() cannot be used in vars: vars are data, never rendered, so this "
        "text would be sent as is; call secret() in input or options.additional_metadata",
    ]


def test_a_key_holding_a_secret_value_from_values_is_refused(tmp_path: Path, run_cli: RunCli) -> None:
    path = manifest(tmp_path, '  - workflow_name: W\n    key: "k-{{ note }}"\n    input: {p: "{{ note }}"}\n')
    values = tmp_path / "values.yaml"
    values.write_text(f"note: {json.dumps(VALUE)}\n")
    result = run_cli("render", str(path), "-f", str(values), "-o", "json", "--allow-secret", "HM_TEST_SECRET")
    assert result.exit_code == 1
    assert f"{path}:6: runs[0]: key: holds the value of a secret" in result.stderr
    assert VALUE not in result.stdout + result.stderr


# -- the revealed run is validated as the preview was -----------------------------------------------------------


def test_input_schemas_validate_the_revealed_value_with_scrubbed_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = manifest(
        tmp_path,
        "  - workflow_name: W\n    key: k\n    input: {password: \"{{ secret('HM_TEST_SECRET') }}\"}\n"
        "    input_schema:\n      type: object\n"
        "      properties: {password: {type: string, minLength: 12, pattern: '^[^ ]+$'}}\n",
    )
    assert rendered(path, reveal=False)[0].input == {"password": "***"}  # a mask cannot be judged: not refused
    assert rendered(path, reveal=True)[0].workflow_run(reveal=True)["input"] == {"password": VALUE}  # 22 chars
    monkeypatch.setenv("HM_TEST_SECRET", "Zq9 short")
    scrub.register("Zq9 short")
    assert sorted(problems(path, reveal=True)) == [
        f"{path}:7: runs[0]: input.password: '***' does not match '^[^ ]+$'",
        f"{path}:7: runs[0]: input.password: '***' is too short",
    ]
    assert rendered(path, reveal=False)[0].input == {"password": "***"}


def test_a_secret_too_short_to_mask_or_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = one_input(tmp_path, f"{{{{ {S} }}}}")
    monkeypatch.setenv("HM_TEST_SECRET", "abc")
    for reveal in (False, True):
        assert problems(path, reveal) == [
            f"{path}:8: runs[0]: input.x: secret HM_TEST_SECRET is shorter than 4 characters: too short to be "
            "masked in output"
        ]
    monkeypatch.setenv("HM_TEST_SECRET", "")  # what CI gives for a secret it does not have: as if unset
    assert rendered(path, reveal=False)[0].input == {"x": "***"}
    assert problems(path, reveal=True) == [
        f"{path}:8: runs[0]: input.x: secret HM_TEST_SECRET is not set in the environment (or is empty)"
    ]
