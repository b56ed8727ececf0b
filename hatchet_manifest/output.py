"""Reporters: runs and problems to the terminal. Data goes to stdout, everything else to stderr."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
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
