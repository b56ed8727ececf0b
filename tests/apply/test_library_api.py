"""The library API the CLI is a thin layer over: load, render, plan and apply without the CLI."""

from __future__ import annotations

from pathlib import Path

import hatchet_manifest as hm
from hatchet_manifest.apply.spool import Spool
from tests.conftest import ROOT


def test_load_render_plan_apply(tmp_path: Path) -> None:
    manifests = hm.load([ROOT / "manifests" / "bulk-parent.yaml"])
    renderer = hm.Renderer(manifests, hm.Values(set=["count=50"]), reveal_secrets=True)
    assert renderer.prepare() == 50
    with hm.open_ledger(None, tmp_path) as ledger, hm.connect("embedded", tmp_path) as conn:
        target = conn.target
        plan = hm.Plan(renderer.runs(), hm.LedgerBaseline(ledger, target), ["bulk-parent"])
        options = hm.ApplyOptions(batch_size=20)
        result = hm.ApplyResult()
        with Spool(conn.hatchet.admin.encoder(), tmp_path) as spool:
            assert spool.write(hm.select(plan, options, result)) == 50
            hm.Executor(ledger, target, conn.hatchet.admin, options, result=result).run(spool)
        assert (result.submitted, result.exit_code, result.counts) == (50, 0, {"create": 50})
        assert plan.summary["create"] == 50
        again = hm.Plan(
            hm.Renderer(manifests, hm.Values(set=["count=50"])).runs(),
            hm.LedgerBaseline(ledger, target),
            ["bulk-parent"],
        )
        assert {p.action for p in again} == {"unchanged"}
        assert conn.engine is not None and conn.engine.store.count() == 50
