"""`diff -o markdown`: a plan for a pull-request comment or a GitHub job summary.

Totals first, then per manifest a collapsible list of what is created, changed (with the fields that changed when
the baseline holds the old content: a git base or the engine; the ledger keeps only digests), removed and unknown.
The whole stays under GitHub's comment limit (65,536 characters): each list is cut after `per_list` items and the
document at `budget` characters, with counts of what was left out. Memory stays bounded for any plan size: only
counts and the listed items are kept. Values come from files under review and from engines: control characters
are escaped, values sit in code spans fenced longer than any backtick run they hold (so markdown and HTML in
them are shown, not rendered), and table cells escape `|`. Secrets arrive masked.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from hatchet_manifest.output import trigger_text
from hatchet_manifest.plan.planner import PlannedRun
from hatchet_manifest.plan.stamps import user_metadata
from hatchet_manifest.plan.unchanged import Unchanged
from hatchet_manifest.text import escape

BUDGET = 60_000  # characters; GitHub caps a comment at 65,536
PER_LIST = 50  # items listed per manifest and action
VALUE_CHARS = 200  # of one value shown
LISTED = ("create", "changed", "removed", "unknown")
HEADINGS = {"create": "created", "changed": "changed", "removed": "removed", "unknown": "unknown fate"}
SYMBOLS = {"create": "+", "changed": "~", "removed": "-", "unknown": "?", "unchanged": "="}


def code(value: str, limit: int = VALUE_CHARS) -> str:
    """`value` as an inline code span: escaped, shortened, fenced with more backticks than it holds."""
    text = escape(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def changes(p: PlannedRun) -> list[tuple[str, Any, Any]] | None:
    """(field, before, after) of a changed run, or None when the baseline does not hold the old content."""
    k, r = p.known, p.run
    if k is None or r is None or k.input is None:
        return None
    out: list[tuple[str, Any, Any]] = []
    if k.workflow_name is not None and k.workflow_name != r.workflow_name:
        out.append(("workflow_name", k.workflow_name, r.workflow_name))
    old_in, new_in = k.input or {}, r.input
    for name in sorted(set(old_in) | set(new_in)):
        if old_in.get(name, _ABSENT) != new_in.get(name, _ABSENT):
            out.append((f"input.{name}", old_in.get(name, _ABSENT), new_in.get(name, _ABSENT)))
    if k.trigger is not None and r.trigger is not None:  # a cron's expression, a schedule's time, ...
        for name in sorted(set(k.trigger) | set(r.trigger)):
            before, after = k.trigger.get(name, _ABSENT), r.trigger.get(name, _ABSENT)
            if name != "allow_past" and before != after:
                out.append((name, before, after))
    old_md = user_metadata(dict(k.additional_metadata or {}))
    new_md = user_metadata(dict(r.additional_metadata))
    for name in sorted(set(old_md) | set(new_md)):
        if old_md.get(name, _ABSENT) != new_md.get(name, _ABSENT):
            out.append((f"additional_metadata.{name}", old_md.get(name, _ABSENT), new_md.get(name, _ABSENT)))
    return out


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT: Any = _Absent()


def _shown(value: Any) -> str:
    return "(absent)" if value is _ABSENT else code(compact(value), 80)


@dataclass
class _Manifest:
    counts: Counter[str] = field(default_factory=Counter)
    items: dict[str, list[str]] = field(default_factory=lambda: {a: [] for a in LISTED})


def _item(p: PlannedRun) -> str:
    rec = p.to_dict()
    line = f"- {code(p.key)}"
    if rec.get("workflow_name"):
        line += f" {code(str(rec['workflow_name']), 80)}"
    line += trigger_text(rec, lambda text: code(text, 80), " ")
    if p.action == "create" and rec.get("input") is not None:
        line += f" input {code(compact(rec['input']))}"
    elif p.action == "changed":
        diff = changes(p)
        if diff is None:
            line += " (new content; the ledger keeps digests, not the old values)"
        else:
            line += "".join(f"<br>{code(name, 80)}: {_shown(a)} → {_shown(b)}" for name, a, b in diff[:10])
            if len(diff) > 10:
                line += f"<br>... and {len(diff) - 10} more fields"
    elif p.action == "removed" and p.run_id:
        line += f" (run {code(p.run_id)})"
    return line


def write_plan_markdown(
    planned: Iterable[PlannedRun],
    out: TextIO,
    where: str,
    *,
    budget: int = BUDGET,
    per_list: int = PER_LIST,
    unchanged: Unchanged | None = None,
) -> Counter[str]:
    """Write the markdown plan of `planned` (`where`: the target or base it is against); returns the summary.
    `unchanged`: manifests not rendered, all of their runs unchanged: counted in their place among the others."""
    summary: Counter[str] = Counter(dict.fromkeys((*LISTED, "unchanged"), 0))
    manifests: dict[str, _Manifest] = {}
    skipped = [(name, n) for name, n in unchanged.runs.items() if n] if unchanged is not None else []
    order = unchanged.order if unchanged is not None else {}

    def counted_before(place: int | None) -> None:
        """The skipped manifests that come before `place` in load order (None: all that are left)."""
        while skipped and (place is None or order[skipped[0][0]] < place):
            name, n = skipped.pop(0)
            manifests.setdefault(name, _Manifest()).counts["unchanged"] += n
            summary["unchanged"] += n

    for p in planned:
        if skipped:  # a rendered run: the manifests before its own come first; a removed one: after all of them
            counted_before(order.get(p.run.manifest, -1) if p.run is not None else None)
        summary[p.action] += 1
        name = (p.run.manifest if p.run is not None else p.known.manifest if p.known else "") or "(no manifest)"
        m = manifests.setdefault(name, _Manifest())
        m.counts[p.action] += 1
        if p.action in LISTED and len(m.items[p.action]) < per_list:
            m.items[p.action].append(_item(p))
    counted_before(None)
    parts = [_head(summary, where), _table(manifests)]
    size = sum(len(x) for x in parts)
    left_out = 0
    for name, m in manifests.items():
        listed = sum(m.counts[a] for a in LISTED)
        if not listed:
            continue
        section = _section(name, m)
        if size + len(section) > budget:
            left_out += listed
            continue
        parts.append(section)
        size += len(section)
    if left_out:
        parts.append(
            f"\n_{left_out} more changes are not listed here (the comment's size limit): see the full plan._\n"
        )
    out.write("".join(parts))
    return summary


def _counts_text(counts: Counter[str]) -> str:
    return ", ".join(f"{counts[a]} {a if a != 'create' else 'to create'}" for a in (*LISTED, "unchanged"))


def _head(summary: Counter[str], where: str) -> str:
    changes_n = sum(summary[a] for a in LISTED)
    verdict = "No changes." if not changes_n else f"{changes_n} change{'s' if changes_n != 1 else ''}."
    return f"### hatchet-manifest plan\n\n**{verdict}** {_counts_text(summary)}; against {code(where)}.\n\n"


def _cell(text: str) -> str:
    return escape(text).replace("|", "\\|")


def _table(manifests: dict[str, _Manifest]) -> str:
    rows = [
        "| manifest | + create | ~ changed | - removed | ? unknown | = unchanged |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in manifests.items():
        c = m.counts
        rows.append(
            f"| {_cell(name)} | {c['create']} | {c['changed']} | {c['removed']} | {c['unknown']} | {c['unchanged']} |"
        )
    return "\n".join(rows) + "\n"


def _section(name: str, m: _Manifest) -> str:
    summary = html.escape(f"{escape(name)}: {_counts_text(m.counts)}")
    body = [f"\n<details><summary>{summary}</summary>\n"]
    for action in LISTED:
        n = m.counts[action]
        if not n:
            continue
        body.append(f"\n**{SYMBOLS[action]} {HEADINGS[action]} ({n})**\n\n")
        body.extend(item + "\n" for item in m.items[action])
        if n > len(m.items[action]):
            body.append(f"- ... and {n - len(m.items[action])} more\n")
    body.append("\n</details>\n")
    return "".join(body)
