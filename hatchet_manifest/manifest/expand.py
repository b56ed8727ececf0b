"""Loops and matrices: what one run entry expands into, before any run is built.

Both are checked against the run cap before anything is materialised (a `range` stays lazy)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from hatchet_manifest.manifest.validate import describe


class ExpandError(Exception):
    """A `for_each` or `matrix` value that cannot be expanded; `path` names the field (e.g. "matrix.include")."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


def loop_items(items: Any, max_runs: int) -> tuple[Iterable[Any], int]:
    """The items of an evaluated `for_each` and their number (an iterator is read up to the cap)."""
    if isinstance(items, str | dict) or not hasattr(items, "__iter__"):
        raise ExpandError("for_each", f"for_each must yield a list, got {describe(items)}")
    if not hasattr(items, "__len__"):
        items = list(itertools.islice(items, max_runs + 1))
    n = len(items)
    if n > max_runs:
        raise ExpandError("for_each", f"{n} items, more than --max-runs {max_runs}")
    return items, n


def matrix_combos(spec: Any, max_runs: int) -> list[dict[str, Any]]:
    """The combinations of an evaluated `matrix`, as CI matrices make them.

    The cartesian product of the named lists, less the combinations matching an `exclude` entry; each `include`
    entry extends the original combinations whose values it does not contradict, or is added as a new one."""
    if not isinstance(spec, dict):
        raise ExpandError("matrix", f"matrix must be a mapping, got {describe(spec)}")
    spec = dict(spec)  # a constant matrix is the document's own mapping: it must not change
    include = spec.pop("include", [])
    exclude = spec.pop("exclude", [])
    for name, part in (("include", include), ("exclude", exclude)):
        if not isinstance(part, list) or not all(isinstance(x, dict) for x in part):
            raise ExpandError(f"matrix.{name}", f"{name} must be a list of mappings")
    dims = list(spec)
    size = 1
    for dim in dims:
        if not isinstance(spec[dim], list | tuple | range):
            raise ExpandError(f"matrix.{dim}", f"must be a list, got {describe(spec[dim])}")
        size *= len(spec[dim])
    if size > max_runs:
        raise ExpandError("matrix", f"{size} combinations, more than --max-runs {max_runs}")
    combos = (
        [dict(zip(dims, values, strict=True)) for values in itertools.product(*(spec[d] for d in dims))] if dims else []
    )
    combos = [c for c in combos if not any(all(c.get(k) == v for k, v in ex.items()) for ex in exclude)]
    originals = list(combos)
    for inc in include:
        matched = False
        for combo in originals:
            if all(combo.get(k) == v for k, v in inc.items() if k in dims):
                combo.update({k: v for k, v in inc.items() if k not in dims})
                matched = True
        if not matched:
            combos.append(dict(inc))
    return combos
