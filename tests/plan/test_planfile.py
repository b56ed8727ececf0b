"""Saved plans are not trusted: every edit is refused before anything in the plan is used, a plan is validated
strictly, bounded, and recognised by its content. Through the real CLI, on real files, against the embedded
engine (nothing may reach it from a refused plan)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hatchet_manifest.manifest.rendered import canonical_json
from hatchet_manifest.plan import planfile
from tests.apply.conftest import engine_runs
from tests.apply.test_apply_embedded import STATE
from tests.conftest import RunCli

MODIFIED = "the plan file was modified after it was written"
NOT_MATCHING = f"t.json: {MODIFIED} (its content does not match its plan_digest); make a new plan with `diff --out`"


def make_plan(run_cli: RunCli, count: int = 3, *extra: str) -> str:
    result = run_cli("diff", "manifests/bulk-parent.yaml", "--set", f"count={count}", "--out", "plan.json", *extra)
    assert result.exit_code == 0, result.stderr
    return Path("plan.json").read_text()


def lines_of(text: str) -> list[str]:
    return text.split("\n")


def reseal(doc: dict[str, Any]) -> dict[str, Any]:
    """Recompute plan_digest as the README documents it (what anyone who can write the file can do)."""
    header = {k: v for k, v in doc.items() if k not in ("runs", "summary", "ledger_digest", "plan_digest")}
    h = hashlib.sha256(b"hatchet-manifest plan v1\n" + canonical_json(header) + b"\n")
    for run in doc["runs"]:
        h.update(canonical_json(run) + b"\n")
    h.update(canonical_json({"summary": doc["summary"], "ledger_digest": doc["ledger_digest"]}))
    return {**doc, "plan_digest": "sha256:" + h.hexdigest()}


def refused(run_cli: RunCli, *expected: str) -> str:
    """`apply t.json` fails with exactly these lines on stderr (then `error: N problems found` when it lists
    problems), prints nothing on stdout and sends nothing."""
    result = run_cli("apply", "t.json", "--yes")
    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    if lines[-1].endswith("problems found") or lines[-1].endswith("problem found"):
        assert lines[-1] == f"error: {len(lines) - 1} problem{'s' if len(lines) > 2 else ''} found"
        lines = lines[:-1]
    assert lines == list(expected)
    assert engine_runs(STATE) == []
    return result.stderr


def edit_text(run_cli: RunCli, change: Callable[[str], str]) -> None:
    original = make_plan(run_cli)
    edited = change(original)
    assert edited != original
    Path("t.json").write_text(edited)


def edit_json(run_cli: RunCli, change: Callable[[dict[str, Any]], None], seal: bool = False) -> None:
    doc = json.loads(make_plan(run_cli))
    change(doc)
    Path("t.json").write_text(json.dumps(reseal(doc) if seal else doc))


def test_a_plan_reformatted_by_json_dump_is_the_same_plan(project: Path, run_cli: RunCli) -> None:
    doc = json.loads(make_plan(run_cli))
    Path("t.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
    result = run_cli("apply", "t.json", "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["submitted"] == 3
    assert sorted(r["input"]["n"] for r in engine_runs(STATE)) == [0, 1, 2]  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda s: s.replace('"input":{"n":1}', '"input":{"n":99}'),
            [NOT_MATCHING, "t.json:3: runs[1]: digest: does not match the run's content"],
            id="input-value",
        ),
        pytest.param(
            lambda s: s.replace('"workflow_name":"BulkParent"}', '"workflow_name":"DropTables"}', 1),
            [NOT_MATCHING, "t.json:2: runs[0]: digest: does not match the run's content"],
            id="workflow-name",
        ),
        pytest.param(lambda s: s.replace('"tool_version":"', '"tool_version":"9'), [NOT_MATCHING], id="tool-version"),
        pytest.param(
            lambda s: s.replace('"namespace":""', '"namespace":"prod_"'),
            [NOT_MATCHING, *(f"t.json:{n + 2}: runs[{n}]: digest: does not match the run's content" for n in range(3))],
            id="namespace",
        ),
        pytest.param(lambda s: s.replace('"created_at":"2', '"created_at":"1'), [NOT_MATCHING], id="created-at"),
        pytest.param(
            lambda s: s.replace('"summary":{"create":3', '"summary":{"create":4'),
            [
                NOT_MATCHING,
                "t.json:5: summary: does not count the runs the plan holds (3 create, 0 changed, "
                "0 unchanged, 0 removed, 0 unknown)",
            ],
            id="summary",
        ),
        pytest.param(
            lambda s: s.replace('"action":"create"', '"action":"bogus"', 1),
            [
                NOT_MATCHING,
                "t.json:2: runs[0]: action: Input should be 'create', 'changed', 'unchanged', 'removed' or 'unknown'",
                "t.json:5: summary: does not count the runs the plan holds (2 create, 0 changed, 0 unchanged, "
                "0 removed, 0 unknown)",
            ],
            id="bogus-action",
        ),
        pytest.param(
            lambda s: s.replace('"key":"bulk-parent-0"', '"key":null'),
            [
                NOT_MATCHING,
                "t.json:2: runs[0]: key: Input should be a valid string",
                "t.json:5: summary: does not count the runs the plan holds (2 create, 0 changed, 0 unchanged, "
                "0 removed, 0 unknown)",
            ],
            id="key-null",
        ),
        pytest.param(
            lambda s: s.replace('"plan_digest":"sha256:', '"plan_digest":"sha256:0', 1)[:-4] + '"}\n',
            [NOT_MATCHING],
            id="the-digest-itself",
        ),
        pytest.param(
            lambda s: s.replace('"address":"', '"address":"x', 1),
            [NOT_MATCHING],
            id="target",
        ),
        pytest.param(
            lambda s: "\n".join(
                [lines_of(s)[0], lines_of(s)[1].replace("bulk-parent-0", "bulk-parent-9"), *lines_of(s)[1:]]
            ),
            [
                NOT_MATCHING,
                "t.json:6: summary: does not count the runs the plan holds (4 create, 0 changed, 0 unchanged, "
                "0 removed, 0 unknown)",
            ],
            id="run-added",
        ),
        pytest.param(
            lambda s: "\n".join([lines_of(s)[0], *lines_of(s)[2:]]),
            [
                NOT_MATCHING,
                "t.json:4: summary: does not count the runs the plan holds (2 create, 0 changed, "
                "0 unchanged, 0 removed, 0 unknown)",
            ],
            id="run-removed",
        ),
        pytest.param(
            lambda s: s + "{}\n",
            [
                f"t.json: {MODIFIED} (there is more after the end of the plan); make a new plan with `diff --out`",
                "t.json:6: not valid JSON: there is more after the end of the plan",
            ],
            id="appended",
        ),
    ],
)
def test_every_edit_of_a_saved_plan_is_refused(
    project: Path, run_cli: RunCli, change: Callable[[str], str], expected: list[str]
) -> None:
    edit_text(run_cli, change)
    refused(run_cli, *expected)


def test_a_truncated_plan_says_so(project: Path, run_cli: RunCli) -> None:
    text = make_plan(run_cli)
    cut = text.index('"key":"bulk-parent-1"')
    Path("t.json").write_text(text[:cut])
    refused(
        run_cli,
        f"t.json: {MODIFIED} (it is truncated); make a new plan with `diff --out`",
        "t.json:3: runs[1]: not valid JSON: Expecting ',' delimiter (line 1, column 174)",
        't.json:3: the plan ends before its trailer (`],"summary":...`): truncated',
    )
    Path("t.json").write_text(text[: text.index("],")])
    refused(
        run_cli,
        f"t.json: {MODIFIED} (it is truncated); make a new plan with `diff --out`",
        't.json:4: the plan ends before its trailer (`],"summary":...`): truncated',
    )


def test_reordered_runs_are_refused(project: Path, run_cli: RunCli) -> None:
    lines = lines_of(make_plan(run_cli))
    lines[1], lines[2] = lines[2], lines[1]
    Path("t.json").write_text("\n".join(lines))
    refused(run_cli, NOT_MATCHING)


def test_deleting_the_secret_flag_is_refused(project: Path, run_cli: RunCli) -> None:
    (project / "manifests" / "secret.yaml").write_text(
        "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: secret}\nruns:\n"
        "  - workflow_name: S\n    key: s-1\n    input: {token: \"{{ secret('DEPLOY_TOKEN') }}\"}\n"
    )
    env = {"HATCHET_MANIFEST_ALLOW_SECRETS": "DEPLOY_TOKEN"}
    result = run_cli("diff", "manifests/secret.yaml", "--out", "plan.json", env=env)
    assert result.exit_code == 0, result.stderr
    text = Path("plan.json").read_text()
    assert ',"secret":true' in text
    Path("t.json").write_text(text.replace(',"secret":true', ""))
    refused(run_cli, NOT_MATCHING)
    Path("t.json").write_text(text)  # as written: refused for what it is (its values are not in it)
    refused(
        run_cli,
        "target: the embedded engine (.hatchet-manifest/engine.db) (--engine auto: HATCHET_CLIENT_TOKEN is not set)",
        "error: t.json: 1 run(s) use secret(), 's-1' first; plans never hold secret values, so apply the manifests "
        "instead of the plan",
    )


def test_an_empty_file_or_a_document_that_is_not_a_plan_is_refused(project: Path, run_cli: RunCli) -> None:
    make_plan(run_cli)
    cases = {
        "": "error: t.json: the file is empty: it is neither a saved plan nor a manifest",
        "\n  \n": "error: t.json: the file is empty: it is neither a saved plan nor a manifest",
        "[1, 2]": "error: t.json: a JSON list is neither a saved plan nor a manifest",
        '{"foo": 1}': "error: t.json: a JSON document that is neither a saved plan (kind: Plan) nor a manifest "
        "(kind: TriggerManifest)",
        '{"kind": "Plan",\n "runs": [': "error: t.json: not valid JSON: Expecting value (line 2, column 11): neither a "
        "saved plan nor a manifest",
    }
    for text, message in cases.items():
        Path("t.json").write_text(text)
        refused(run_cli, message)


def test_a_plan_of_an_earlier_version_is_refused(project: Path, run_cli: RunCli) -> None:
    make_plan(run_cli)
    Path("t.json").write_text('{"format":"hatchet-manifest-plan/v1","tool_version":"0.1.0","runs":[\n],"summary":{}}\n')
    refused(
        run_cli,
        "error: t.json: a plan written by an earlier hatchet-manifest (format hatchet-manifest-plan/v1, without a "
        "digest); make a new one with `diff --out`",
    )


def test_a_resealed_plan_is_still_validated_strictly(project: Path, run_cli: RunCli) -> None:
    """Who can write the file can recompute the digest (it is not a signature): what is inside is still checked."""

    def bogus(doc: dict[str, Any]) -> None:
        doc["runs"][0]["action"] = "bogus"
        doc["runs"][1]["key"] = None
        doc["runs"][2]["extra"] = 1
        doc["summary"] = {"create": 0, "changed": 0, "unchanged": 0, "removed": 0, "unknown": 0}

    edit_json(run_cli, bogus, seal=True)
    refused(
        run_cli,
        "t.json: runs[0]: action: Input should be 'create', 'changed', 'unchanged', 'removed' or 'unknown'",
        "t.json: runs[1]: key: Input should be a valid string",
        "t.json: runs[2]: unknown field 'extra'",
    )

    def forged(doc: dict[str, Any]) -> None:
        doc["runs"][0]["input"] = {"n": 99}
        doc["runs"][1]["workflow_name"] = "Deploy\x1b[2K\rPlan: 0 to create"
        doc["runs"][2]["key"] = "k\u202e"
        doc["namespace"] = "ns\x1b"

    edit_json(run_cli, forged, seal=True)
    refused(
        run_cli,
        "t.json: namespace: contains the control character \\x1b at offset 2",
        "t.json: runs[1]: workflow_name: contains the control character \\x1b at offset 6, got "
        "'Deploy\\x1b[2K\\rPlan: 0 to create'",
        "t.json: runs[2]: key: contains the bidi control character \\u202e at offset 1: a key must be printable, "
        "got 'k\\u202e'",
    )

    def edited_run(doc: dict[str, Any]) -> None:
        doc["runs"][0]["input"] = {"n": 99}

    edit_json(run_cli, edited_run, seal=True)
    refused(
        run_cli,
        f"t.json: {MODIFIED} (a run's digest does not match its content); make a new plan with `diff --out`",
        "t.json: runs[0]: digest: does not match the run's content",
    )

    def other_version(doc: dict[str, Any]) -> None:
        doc["tool_version"] = "0.0.1"

    edit_json(run_cli, other_version, seal=True)
    refused(
        run_cli, "error: t.json: written by hatchet-manifest '0.0.1', this is 0.1.0: make a new plan with `diff --out`"
    )


def test_a_huge_plan_is_refused_before_it_is_read(project: Path, run_cli: RunCli) -> None:
    first_line = make_plan(run_cli).split("\n", 1)[0] + "\n"
    with open("t.json", "w") as f:
        f.write(first_line)
        f.truncate(planfile.MAX_PLAN_BYTES + 1)  # sparse: nothing is written, nothing would be read in time
    refused(
        run_cli,
        f"error: t.json: {planfile.MAX_PLAN_BYTES + 1} bytes, larger than a plan may be "
        f"({planfile.MAX_PLAN_BYTES} bytes)",
    )
    os.unlink("t.json")


def test_deep_nesting_and_long_lines_are_refused(project: Path, run_cli: RunCli) -> None:
    text = make_plan(run_cli)
    deep = "[" * 300 + "]" * 300
    Path("t.json").write_text(text.replace('"input":{"n":1}', f'"input":{{"n":{deep}}}'))
    refused(
        run_cli,
        NOT_MATCHING,
        "t.json:3: runs[1]: values nested deeper than 128 levels",
        "t.json:5: summary: does not count the runs the plan holds (2 create, 0 changed, 0 unchanged, 0 removed, "
        "0 unknown)",
    )
    Path("t.json").write_text('{"kind": "Plan", "runs": ' + "[" * 5000 + "]" * 5000 + "}")
    refused(run_cli, "error: t.json: values nested deeper than 130 levels: neither a saved plan nor a manifest")
    lines = lines_of(text)
    lines[2] = lines[2].replace('"n":1', '"n":"' + "x" * (planfile.MAX_LINE_BYTES + 10) + '"')
    Path("t.json").write_text("\n".join(lines))
    refused(
        run_cli,
        NOT_MATCHING,
        f"t.json:3: runs[1]: the line is longer than {planfile.MAX_LINE_BYTES} bytes",
        "t.json:5: summary: does not count the runs the plan holds (2 create, 0 changed, 0 unchanged, 0 removed, "
        "0 unknown)",
    )


def test_a_plan_is_applied_alone(project: Path, run_cli: RunCli) -> None:
    make_plan(run_cli)
    result = run_cli("apply", "plan.json", "manifests", "--yes")
    assert result.exit_code == 1
    assert result.stderr == "error: plan.json: a saved plan is applied on its own, not with other paths\n"
    assert engine_runs(STATE) == []


def test_a_plan_for_another_namespace_is_refused(project: Path, run_cli: RunCli, engine: dict[str, str]) -> None:
    result = run_cli(
        "diff",
        "manifests/bulk-parent.yaml",
        "--set",
        "count=2",
        "--out",
        "plan.json",
        env={**engine, "HATCHET_CLIENT_NAMESPACE": "team_a"},
    )
    assert result.exit_code == 0, result.stderr
    result = run_cli("apply", "plan.json", "--yes", env={**engine, "HATCHET_CLIENT_NAMESPACE": "team_b"})
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "error: plan.json: this plan was made for the namespace 'team_a_', not 'team_b_' (HATCHET_CLIENT_NAMESPACE)"
    )
    result = run_cli("apply", "plan.json", "--yes", "-o", "json", env={**engine, "HATCHET_CLIENT_NAMESPACE": "team_a"})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["submitted"] == 2


def test_a_plan_changed_after_it_was_verified_is_refused_when_read_again(project: Path, run_cli: RunCli) -> None:
    """The ledger check and the runs sent read the file again: its bytes must still be those verified."""
    text = make_plan(run_cli)
    plan = planfile.PlanFile(Path("plan.json"))
    assert list(plan.keys()) == ["bulk-parent-0", "bulk-parent-1", "bulk-parent-2"]
    Path("plan.json").write_text(text.replace('"input":{"n":1}', '"input":{"n":7}'))
    with pytest.raises(planfile.ConfigError, match=f"plan.json: {MODIFIED} \\(it changed while it was being read\\)"):
        list(plan.planned())
