"""Reporters: runs and problems to the terminal. Data goes to stdout, everything else to stderr.

What is shown comes from manifests, ledgers and engines, none of them trusted: every human-readable output
(tables, plan lines) writes control, bidi and invisible characters escaped (`\x1b`, hatchet_manifest.text), and
JSON and YAML write them as escapes of the format (the same values). `json` and `yaml` documents are written
whole or not at all: they are spooled (a private temporary file beyond a few MiB) and copied to the output once
complete, so an error midway leaves nothing half-written on stdout; `jsonl` streams whole lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

import yaml

from hatchet_manifest.text import UNSAFE, escape, json_safe

FORMATS = ("yaml", "json", "jsonl", "table")
API_VERSION = "hatchet-manifest/v1"  # every JSON and YAML document the commands print says it, with its `kind`


def versioned(kind: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A document's head: its format version and kind (schemas/output/<kind>.schema.json describes it)."""
    return {"apiVersion": API_VERSION, "kind": kind, **(body or {})}


def run_shape(record: dict[str, Any]) -> dict[str, Any]:
    """A planned run's record (PlannedRun.to_dict, flat as saved plans hold it) in the shape every output gives
    a run: `options: {additional_metadata, priority?}` as `run_workflows` takes them (render's shape)."""
    options = {name: record[name] for name in ("additional_metadata", "priority") if name in record}
    out: dict[str, Any] = {}
    for name, value in record.items():
        if name not in options:
            out[name] = value
            if name in ("input", "payload"):
                out["options"] = options
    out.setdefault("options", options)
    return out


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_INDENTED = json.JSONEncoder(ensure_ascii=False, indent=2)


def _json(obj: Any, indent: int | None = None) -> str:
    return (_INDENTED if indent else _COMPACT).encode(obj)


SPOOL_IN_MEMORY = 8 << 20


@contextlib.contextmanager
def whole_document(out: TextIO) -> Iterator[TextIO]:
    """A stream whose text reaches `out` only when the block ends without an error: all of it, or nothing."""
    with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, mode="w+", encoding="utf-8", newline="") as spool:
        yield spool  # type: ignore[misc]  # a text-mode SpooledTemporaryFile is a TextIO
        spool.seek(0)
        shutil.copyfileobj(spool, out, 1 << 20)
    out.flush()


def _yaml_item(rec: dict[str, Any]) -> str:
    text = yaml.safe_dump([rec], sort_keys=False, allow_unicode=True, width=120)
    if UNSAFE.search(text.replace("\n", "")):  # PyYAML writes bidi and invisible characters as they are
        text = yaml.safe_dump([rec], sort_keys=False, allow_unicode=False, width=120)  # every non-ASCII escaped
    return text


def write_records(
    records: Iterable[dict[str, Any]],
    fmt: str,
    out: TextIO,
    columns: list[str] | None = None,
    head: dict[str, Any] | None = None,
) -> int:
    """Write records in `fmt`; returns how many were written. `json` is one list and `yaml` a list of items, each
    written whole or not at all (see whole_document); `jsonl` and `table` stream. With `head` (`versioned`), `json`
    and `yaml` are one object: the head's fields, then the records as `runs`."""
    if head is not None and fmt in ("json", "yaml"):
        return _write_document(records, fmt, out, head)
    count = 0
    if fmt == "jsonl":
        encode = _COMPACT.encode
        batch: list[str] = []
        try:
            for rec in records:
                batch.append(encode(rec))
                if len(batch) == 512:
                    out.write(json_safe("\n".join(batch) + "\n"))
                    count += len(batch)
                    batch.clear()
        finally:  # what was rendered before an error is still written, in whole lines
            if batch:
                out.write(json_safe("\n".join(batch) + "\n"))
                count += len(batch)
    elif fmt == "json":
        with whole_document(out) as doc:
            doc.write("[")
            for count, rec in enumerate(records, 1):
                doc.write(("," if count > 1 else "") + "\n  " + json_safe(_json(rec, 2)).replace("\n", "\n  "))
            doc.write("\n]\n" if count else "]\n")
    elif fmt == "yaml":
        with whole_document(out) as doc:
            for rec in records:
                doc.write(_yaml_item(rec))
                count += 1
            if not count:
                doc.write("[]\n")
    elif fmt == "table":
        count = write_table(records, out, columns)
    else:
        raise ValueError(f"unknown format {fmt}")
    return count


def _write_document(records: Iterable[dict[str, Any]], fmt: str, out: TextIO, head: dict[str, Any]) -> int:
    count = 0
    with whole_document(out) as doc:
        if fmt == "json":
            doc.write(json_safe(_json(head, 2))[:-2] + ',\n  "runs": [')
            for count, rec in enumerate(records, 1):
                doc.write(("," if count > 1 else "") + "\n    " + json_safe(_json(rec, 2)).replace("\n", "\n    "))
            doc.write("\n  ]\n}\n" if count else "]\n}\n")
        else:
            doc.write(yaml.safe_dump(head, sort_keys=False, allow_unicode=False, width=120) + "runs:")
            for rec in records:
                doc.write(("\n" if count == 0 else "") + _yaml_item(rec))
                count += 1
            if not count:
                doc.write(" []\n")
    return count


def _cell(value: Any, width: int = 60) -> str:
    """A value as a table or a plan line shows it: escaped, then cut to `width`."""
    text = escape(value if isinstance(value, str) else _json(value))
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


def redraws(stream: TextIO) -> bool:
    """Whether lines may be redrawn in place (cursor control): a terminal, unless TERM=dumb."""
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def use_color(stream: TextIO) -> bool:
    """Colour: never with NO_COLOR set to anything (no-color.org; `--no-color` sets it); always with FORCE_COLOR
    set to anything but 0 or empty (CI logs that show colour); otherwise on a terminal that is not TERM=dumb."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "0") not in ("", "0"):
        return True
    return redraws(stream)


def trigger_text(record: dict[str, Any], show: Callable[[str], str] | None = None, sep: str = "  ") -> str:
    """What a trigger is, in a plan line: a cron's expression (paused, or its next firings), a schedule's time, an
    event's key and scope. `show` spells a value (default: escaped; the markdown plan's: as code)."""
    spell = show or (lambda text: escape(text))
    kind = record.get("kind")
    if kind == "cron":
        expression = str(record.get("expression", ""))
        text = f"{sep}cron {spell(expression) if show else repr(escape(expression))}"
        if record.get("enabled") is False:
            return text + " (paused)"
        nexts = record.get("next") or []
        return text + (f"{sep}next {', '.join(spell(str(t)) for t in nexts)}" if nexts else "")
    if kind == "schedule":
        return f"{sep}at {spell(str(record.get('trigger_at', '')))}"
    if kind == "event":
        scope = f" (scope {spell(str(record['scope']))})" if record.get("scope") else ""
        return f"{sep}event {spell(str(record.get('event_key', '')))}{scope}"
    return ""


def plan_line(record: dict[str, Any], color: bool) -> str:
    action = record["action"]
    if record.get("kind") not in (None, "run"):
        return _trigger_line(record, color)
    text = f"{SYMBOLS[action]} {escape(record['key'])}  {escape(record.get('workflow_name') or '')}"
    if action in ("create", "changed") and record.get("input") is not None:
        text += f"  {_cell(record['input'], 80)}"
    if action == "changed":
        text += "  (same key, new content)"
    elif action == "removed":
        run = f"; run {escape(record['run_id'])}" if record.get("run_id") else ""
        text += f"  (removed from the manifests{run})"
    elif action == "unknown":
        text += "  (fate unknown: not confirmed and not found in the engine)"
    elif record.get("run_id"):
        text += f"  (run {escape(record['run_id'])})"
    return f"\x1b[{_COLORS[action]}m{text}\x1b[0m" if color else text


def _trigger_line(record: dict[str, Any], color: bool) -> str:
    action = record["action"]
    workflow = f"  {escape(record['workflow_name'])}" if record.get("workflow_name") else ""
    text = f"{SYMBOLS[action]} {escape(record['key'])}{workflow}{trigger_text(record)}"
    data = record.get("payload") if record.get("kind") == "event" else record.get("input")
    if action in ("create", "changed") and data:
        text += f"  {_cell(data, 60)}"
    ident = f"; id {escape(str(record['id']))}" if record.get("id") else ""
    if action == "changed":
        what = ", ".join(escape(str(c)) for c in record.get("changes", [])) or "new content"
        text += f"  (changed: {what}{ident})"
    elif action == "removed":
        done = {"cron": "deleted by apply", "schedule": "deleted by apply unless it fired"}.get(
            str(record.get("kind")), "left alone"
        )
        text += f"  (removed from the manifests: {done}{ident})"
    elif action == "unknown":
        text += "  (fate unknown: not confirmed and not found in the engine)"
    elif ident:
        text += f"  ({ident[2:]})"
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
    """{...head, "runs": [...], ...tail()}: tail computed after the runs; written whole or not at all."""
    head = versioned("Plan", head)
    with whole_document(out) as doc:
        doc.write(json_safe(_COMPACT.encode(head))[:-1] + ',"runs":[')
        first = True
        for rec in records:
            doc.write(("" if first else ",") + "\n" + json_safe(_COMPACT.encode(rec)))
            first = False
        doc.write("\n]," + json_safe(_COMPACT.encode(tail()))[1:] + "\n")


class ProgressBar:
    """Progress on stderr: a live line on a terminal, a line every few seconds otherwise (CI logs)."""

    def __init__(self, total: int, stream: TextIO, every: float = 5.0) -> None:
        self.total = total
        self.stream = stream
        self.tty = redraws(stream)
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
        line = f"sent {done}/{self.total} ({pct:.0f}%): {done - failed - unknown} submitted"
        if failed or unknown:
            line += f", {failed} failed, {unknown} unknown"
        line += f"  {rate:,.0f} runs/s  ETA {eta:.0f}s"
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class CheckProgress:
    """Progress of an apply's first pass (render, validate, plan, spool: nothing is sent yet), on stderr as
    ProgressBar shows it: a live line on a terminal, a line every few seconds otherwise; silent when the pass is
    over within a second."""

    def __init__(self, total: int, stream: TextIO, every: float = 5.0, quiet_for: float = 1.0) -> None:
        self.total = total
        self.stream = stream
        self.tty = redraws(stream)
        self.every = 0.2 if self.tty else every
        self.started = time.monotonic()
        self._next = self.started + quiet_for
        self.done = 0
        self.shown = False

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every
            self._show()

    def _show(self) -> None:
        self.shown = True
        pct = 100.0 * self.done / self.total if self.total else 100.0
        line = f"checked {self.done}/{self.total} runs ({pct:.0f}%): rendered, validated and planned, none sent yet"
        self.stream.write(("\r\x1b[K" + line) if self.tty else line + "\n")
        self.stream.flush()

    def end(self) -> None:
        """The final count (and the end of the live line), if progress was shown at all."""
        if self.shown:
            self._show()
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
