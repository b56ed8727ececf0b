"""`diff -o markdown`: totals, per-manifest lists with the fields that changed, escaping, and the size limit."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.apply.conftest import project
from tests.apply.test_apply_embedded import apply
from tests.conftest import RunCli

__all__ = ["project"]


def git(*args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True)


def test_a_plan_against_a_git_base_lists_what_changes_with_the_changed_fields(project: Path, run_cli: RunCli) -> None:
    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-qm", "base")
    manifest = Path("manifests/bulk-parent.yaml")
    manifest.write_text(manifest.read_text().replace("count: 20", "count: 22"))
    Path("manifests/manual-trigger.yaml").unlink()
    matrix = Path("manifests/matrix-train.yaml")
    matrix.write_text(matrix.read_text().replace("  epochs: 3", "  epochs: 5", 1))
    result = run_cli("diff", "manifests", "--base", "HEAD", "-o", "markdown")
    assert result.exit_code == 0, result.stderr
    md = result.stdout
    assert md.startswith("### hatchet-manifest plan\n\n**")
    assert "against `the manifests at HEAD`" in md
    assert "| bulk-parent | 2 | 0 | 0 | 0 | 20 |" in md
    assert "| manual-trigger | 0 | 0 | 1 | 0 | 0 |" in md
    assert "<details><summary>bulk-parent: 2 to create" in md
    assert '- `bulk-parent-20` `BulkParent` input `{"n":20}`' in md
    assert "**- removed (1)**" in md and "- `manual-trigger` `ManualTriggerWorkflow`" in md
    assert "**~ changed (4)**" in md and "<br>`input.epochs`: `3` → `5`" in md  # before and after
    assert md.count("<details>") == md.count("</details>")


def test_a_plan_against_the_ledger_says_the_old_values_are_not_kept(project: Path, run_cli: RunCli) -> None:
    assert apply(run_cli, path="manifests/manual-trigger.yaml")[0] == 0
    manifest = Path("manifests/manual-trigger.yaml")
    manifest.write_text(manifest.read_text().replace("input:", "input:\n      extra: 1", 1))
    result = run_cli("diff", "manifests/manual-trigger.yaml", "-o", "markdown")
    assert result.exit_code == 0, result.stderr
    assert "**~ changed (1)**" in result.stdout
    assert "(new content; the ledger keeps digests, not the old values)" in result.stdout


def test_values_are_escaped_and_a_huge_plan_stays_under_the_comment_limit(project: Path, run_cli: RunCli) -> None:
    hostile = "a`b``c <script>alert(1)</script> | **bold** \x1b[2J"
    Path("manifests/hostile.yaml").write_text(
        "apiVersion: hatchet-manifest/v1\nkind: TriggerManifest\nmetadata: {name: hostile}\nruns:\n"
        f"  - workflow_name: W\n    key: {hostile!r}\n    input: {{note: {hostile!r}}}\n"
        "  - workflow_name: W\n"
        '    for_each: "{{ range(100000) }}"\n'
        '    key: "many-{{ item }}"\n'
        '    input: {n: "{{ item }}", pad: "' + "x" * 100 + '"}\n'
    )
    result = run_cli("diff", "manifests/hostile.yaml", "-o", "markdown", "--max-runs", "200000")
    assert result.exit_code == 0, result.stderr
    md = result.stdout
    assert len(md) < 65_536
    assert "\x1b" not in md and "\\x1b[2J" in md
    # markdown and HTML in values are shown in code spans fenced longer than their backtick runs, never rendered
    assert "- ```a`b``c <script>alert(1)</script> | **bold** \\x1b[2J```" in md
    assert "- ... and 99951 more" in md  # 50 listed of the 100,001 created
    assert "| hostile | 100001 | 0 | 0 | 0 | 0 |" in md
