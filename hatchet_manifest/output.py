"""Reporters: runs and problems to the terminal. Data goes to stdout, everything else to stderr."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

import yaml

FORMATS = ("yaml", "json", "jsonl", "table")


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_INDENTED = json.JSONEncoder(ensure_ascii=False, indent=2)


def _json(obj: Any, indent: int | None = None) -> str:
    return (_INDENTED if indent else _COMPACT).encode(obj)


def write_records(records: Iterable[dict[str, Any]], fmt: str, out: TextIO, columns: list[str] | None = None) -> int:
    """Stream records in `fmt`; returns how many were written. `json` is one list; `yaml` a list of items."""
    count = 0
    if fmt == "jsonl":
        encode = _COMPACT.encode
        batch: list[str] = []
        try:
            for rec in records:
                batch.append(encode(rec))
                if len(batch) == 512:
                    out.write("\n".join(batch) + "\n")
                    count += len(batch)
                    batch.clear()
        finally:  # what was rendered before an error is still written
            if batch:
                out.write("\n".join(batch) + "\n")
                count += len(batch)
    elif fmt == "json":
        out.write("[")
        for count, rec in enumerate(records, 1):
            out.write(("," if count > 1 else "") + "\n  " + _json(rec, 2).replace("\n", "\n  "))
        out.write("\n]\n" if count else "]\n")
    elif fmt == "yaml":
        for rec in records:
            out.write(yaml.safe_dump([rec], sort_keys=False, allow_unicode=True, width=120))
            count += 1
        if not count:
            out.write("[]\n")
    elif fmt == "table":
        count = write_table(records, out, columns)
    else:
        raise ValueError(f"unknown format {fmt}")
    return count


def _cell(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else _json(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def write_table(
    records: Iterable[dict[str, Any]], out: TextIO, columns: list[str] | None = None, batch: int = 500
) -> int:
    """A plain aligned table; widths are fitted per batch of rows so that huge outputs still stream."""
    count = 0
    it: Iterator[dict[str, Any]] = iter(records)
    header_done = False
    while True:
        rows = [r for _, r in zip(range(batch), it, strict=False)]
        if not rows and header_done:
            break
        cols = columns or (list(rows[0]) if rows else [])
        cells = [[_cell(r.get(c, "")) for c in cols] for r in rows]
        head = [c.upper() for c in cols]
        widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(head)]
        if not header_done:
            out.write("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip() + "\n")
            header_done = True
        for row in cells:
            out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        count += len(rows)
        if len(rows) < batch:
            break
    return count


def run_row(d: dict[str, Any]) -> dict[str, Any]:
    """The table view of a rendered run."""
    options = d["options"]
    return {
        "key": d["key"],
        "workflow": d["workflow_name"],
        "input": d["input"],
        "metadata": options["additional_metadata"],
        "priority": options.get("priority", ""),
    }


# -- plans ---------------------------------------------------------------------------------------------------

SYMBOLS = {"create": "+", "changed": "~", "unchanged": "=", "removed": "-", "unknown": "?"}  # as Terraform's plan
_COLORS = {"create": "32", "changed": "33", "removed": "31", "unknown": "35", "unchanged": "2"}


def use_color(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def plan_line(record: dict[str, Any], color: bool) -> str:
    action = record["action"]
    text = f"{SYMBOLS[action]} {record['key']}  {record.get('workflow_name') or ''}"
    if action in ("create", "changed") and record.get("input") is not None:
        text += f"  {_cell(record['input'], 80)}"
    if action == "changed":
        text += "  (same key, new content)"
    elif action == "removed":
        text += "  (removed from the manifests" + (f"; run {record['run_id']}" if record.get("run_id") else "") + ")"
    elif action == "unknown":
        text += "  (fate unknown: not confirmed and not found in the engine)"
    elif record.get("run_id"):
        text += f"  (run {record['run_id']})"
    return f"\x1b[{_COLORS[action]}m{text}\x1b[0m" if color else text


def write_plan_text(records: Iterable[dict[str, Any]], out: TextIO, show_unchanged: bool = False) -> None:
    color = use_color(out)
    for rec in records:
        if rec["action"] == "unchanged" and not show_unchanged:
            continue
        out.write(plan_line(rec, color) + "\n")


def write_plan_json(
    records: Iterable[dict[str, Any]], out: TextIO, head: dict[str, Any], tail: Callable[[], dict[str, Any]]
) -> None:
    """{...head, "runs": [...], ...tail()}: streamed, tail computed after the runs."""
    out.write(_COMPACT.encode(head)[:-1] + ',"runs":[')
    first = True
    for rec in records:
        out.write(("" if first else ",") + "\n" + _COMPACT.encode(rec))
        first = False
    out.write("\n]," + _COMPACT.encode(tail())[1:] + "\n")


class ProgressBar:
    """Progress on stderr: a live line on a terminal, a line every few seconds otherwise (CI logs)."""

    def __init__(self, total: int, stream: TextIO, every: float = 5.0) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.every = 0.2 if self.tty else every
        self.started = time.monotonic()
        self._last = self.started

    def update(self, done: int, failed: int = 0, unknown: int = 0, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self.every:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else 0.0
        pct = 100.0 * done / self.total if self.total else 100.0
        line = f"submitted {done}/{self.total} ({pct:.0f}%)  {rate:,.0f} runs/s  ETA {eta:.0f}s"
        if failed or unknown:
            line += f"  failed {failed}  unknown {unknown}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
