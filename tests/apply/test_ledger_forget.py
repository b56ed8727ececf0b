"""`ledger forget`: rows removed from the ledger of a target, like `terraform state rm`."""

from __future__ import annotations

from pathlib import Path

from hatchet_manifest.ledger import PendingRow, Target, open_ledger
from tests.conftest import RunCli

STATE = Path(".hatchet-manifest")


def _keys(state: Path = STATE) -> list[str]:
    with open_ledger(None, state, create=False) as ledger:
        [target] = ledger.targets()
        return sorted(e.key for e in ledger.entries(target))


def _target() -> Target:
    with open_ledger(None, STATE, create=False) as ledger:
        [target] = ledger.targets()
        return target


def test_forget_keys_and_manifests(project: Path, run_cli: RunCli) -> None:
    assert run_cli("apply", "manifests", "--yes").exit_code == 0
    before = _keys()
    assert "bulk-parent-3" in before and "manual-trigger" in before

    dry = run_cli("ledger", "forget", "bulk-parent-3", "bulk-parent-4", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "would forget bulk-parent-3 (submitted, manifest bulk-parent)",
        "would forget bulk-parent-4 (submitted, manifest bulk-parent)",
    ]
    assert _keys() == before

    forgot = run_cli("ledger", "forget", "bulk-parent-3", "--yes")
    assert forgot.exit_code == 0, forgot.stderr
    assert f"forgot 1 row(s) of {_target().id}" in forgot.stderr
    assert _keys() == [k for k in before if k != "bulk-parent-3"]

    everything = run_cli("ledger", "forget", "--manifest", "bulk-parent", "--yes")
    assert everything.exit_code == 0, everything.stderr
    assert not any(k.startswith("bulk-parent-") for k in _keys())
    assert "manual-trigger" in _keys()

    # The engine keeps the runs: a diff adopts them again through the engine lookup instead of creating them.
    diff = run_cli("diff", "manifests/bulk-parent.yaml")
    assert diff.exit_code == 0, diff.stderr
    assert "Plan: 0 to create, 0 changed, 20 unchanged" in diff.stdout
    assert "plan saved" not in diff.stderr  # said only with --out


def test_forget_refuses_what_it_cannot_do_whole(project: Path, run_cli: RunCli) -> None:
    assert run_cli("apply", "manifests/bulk-parent.yaml", "--yes").exit_code == 0
    before = _keys()
    missing = run_cli("ledger", "forget", "bulk-parent-1", "nope", "--yes")
    assert missing.exit_code == 1
    assert f"error: 1 key(s) not in the ledger of {_target().id}: nope; nothing forgotten" in missing.stderr
    no_tty = run_cli("ledger", "forget", "bulk-parent-1")
    assert no_tty.exit_code == 1 and "pass --yes to confirm" in no_tty.stderr
    with open_ledger(None, STATE) as ledger:  # a run of the manifest whose call is still in flight, say
        ledger.record_pending(_target(), [PendingRow("in-flight", "d", "bulk-parent", "manifests/bulk-parent.yaml")])
    unsettled = run_cli("ledger", "forget", "--manifest", "bulk-parent", "--yes")
    assert unsettled.exit_code == 1
    assert "in-flight: run diff or apply to reconcile them first; nothing forgotten" in unsettled.stderr
    assert _keys() == sorted([*before, "in-flight"])
    usage = run_cli("ledger", "forget")
    assert usage.exit_code == 2 and "name the KEYS to forget, or --manifest NAME" in usage.stderr
