"""Planning and spooling one block of a parallel apply's runs in the parent (see parallel.py): each run classified
against the ledger and the engine lookup, `select`'s rules applied, counted into the plan and the result, and the
runs to send written to the spool as the encoded bytes the worker sent.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import NamedTuple

from hatchet_client.errors import RunValidationError

from hatchet_manifest.apply.executor import ApplyOptions, ApplyResult, wanted
from hatchet_manifest.apply.spool import Spool
from hatchet_manifest.plan.planner import Action, Plan, classify
from hatchet_manifest.plan.unchanged import Watch


class Ref(NamedTuple):
    """What the engine lookup needs of a run (plan.RunIdentity)."""

    key: str
    manifest: str
    file: str


def plan_block(
    plan: Plan,
    spool: Spool,
    options: ApplyOptions,
    result: ApplyResult,
    names: dict[int, tuple[str, str]],
    keys: list[str],
    digests: list[str],
    entries: list[int],
    lengths: list[int],
    blob: bytes,
    errors: list[tuple[int, str, str]],
    watch: Watch | None = None,
) -> list[int] | None:
    """Plan and spool one block; returns the positions of the runs spooled (None: all of them). `watch`: told
    what the baseline knew of the block's runs."""
    known = plan.baseline.lookup(keys)
    fallback = plan.fallback
    if fallback is not None:
        unknown = [i for i, key in enumerate(keys) if key not in known]
        silent = {e for e in set(entries) if fallback.finds_nothing(names[e][0])} if unknown else set()
        missing = [(Ref(keys[i], *names[entries[i]]), digests[i]) for i in unknown if entries[i] not in silent]
        if missing:
            known.update(fallback(missing))
    if watch is not None and known:
        watch.block_known(keys, digests, [names[e][0] for e in entries], known)
    if not known:  # nothing of the block is known: all of it is created (a first apply), without a loop per run
        if errors:
            position, field, problem = errors[0]
            raise RunValidationError(spool.written + position, field, problem, keys[position])
        for entry, n in Counter(entries).items():
            plan.count("create", names[entry][0], n)
        result.counts["create"] = result.counts.get("create", 0) + len(keys)
        created = [(k, d, *names[e], False) for k, d, e in zip(keys, digests, entries, strict=True)]
        spool.write_encoded(created, lengths, blob)
        return None
    bad = {e[0]: e for e in errors}
    tags: list[tuple[str, str, str, str, bool]] = []
    chosen: list[int] = []
    counted: dict[tuple[Action, int], int] = {}  # (action, entry) -> runs
    get = known.get
    for i in range(len(keys)):
        k = get(keys[i])
        action = classify(digests[i], k)
        counted[action, entries[i]] = counted.get((action, entries[i]), 0) + 1
        if action == "create" or (action != "unchanged" and wanted(action, k, options, result, count=False)):
            if bad and i in bad:
                _, field, problem = bad[i]
                raise RunValidationError(spool.written + len(tags), field, problem, keys[i])
            manifest, file = names[entries[i]]
            tags.append((keys[i], digests[i], manifest, file, action == "changed"))
            chosen.append(i)
    for (action, entry), n in counted.items():
        plan.count(action, names[entry][0], n)
        result.counts[action] = result.counts.get(action, 0) + n
    if len(chosen) == len(keys):
        spool.write_encoded(tags, lengths, blob)
        return None
    if chosen:
        offsets = [0, *itertools.accumulate(lengths)]
        spool.write_encoded(
            tags, [lengths[i] for i in chosen], b"".join(blob[offsets[i] : offsets[i + 1]] for i in chosen)
        )
    return chosen
