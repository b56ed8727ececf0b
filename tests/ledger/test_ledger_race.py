"""Two processes racing record_pending on the same keys, without the lock: each key goes to exactly one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hatchet_manifest.ledger import Ledger, Target
from tests.ledger.conftest import run_together, spawn_worker

T = Target("tenant", "127.0.0.1:7070")
KEYS = 600


@pytest.mark.parametrize("batch", [1, 50])
def test_each_key_is_won_by_exactly_one_process(ledger_url: str, tmp_path: Path, ledger: Ledger, batch: int) -> None:
    workers = [
        spawn_worker("race", ledger_url, str(tmp_path / "state"), T.tenant_id, T.address, str(KEYS), str(batch), seed)
        for seed in ("1", "2")
    ]
    outputs = run_together(workers, timeout=120)
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    first, second = (set(r["won"]) for r in results)
    assert sorted(results[0]["won"] + results[1]["won"]) == sorted(f"k{i}" for i in range(KEYS))  # no key twice
    assert not first & second
    # Each process tried every key; each key it lost was refused to it exactly once, as the other had it.
    assert sorted(results[0]["refused"]) == sorted(second)
    assert sorted(results[1]["refused"]) == sorted(first)
    assert ledger.count(T) == KEYS
    assert {e.state for e in ledger.entries(T)} == {"pending"}
