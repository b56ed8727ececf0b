"""Our client's WorkflowRunRef.result() on the embedded engine, now that an official SDK worker finishes runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hatchet_client import Hatchet, RunFailedError
from hatchet_client.engine import Engine


def test_result_returns_the_output_or_raises_the_failure(engine: Engine, worker: None, tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.write_text("x")
    with Hatchet(token=engine.token(), tls_strategy="none", environ={}) as hatchet:
        good = hatchet.admin.run_workflow("Launch", {"n": 4})
        bad = hatchet.admin.run_workflow("Launch", {"n": 5, "fail_while": str(flag)})
        assert good.result(timeout=60) == {"launch": {"n": 4, "worker": "w-launch"}}
        with pytest.raises(RunFailedError) as failed:
            bad.result(timeout=60)
    assert failed.value.status == "FAILED" and "input 5 is broken" in str(failed.value)
    assert failed.value.run_id == bad.workflow_run_id
