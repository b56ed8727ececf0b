"""The ledger package's shape: no import cycles between its modules (lazy imports included), modules of a
readable size, and the import paths other packages use."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import hatchet_manifest.ledger as ledger_package

PACKAGE = "hatchet_manifest.ledger"
DIR = Path(ledger_package.__file__).parent
MODULES = sorted(p.stem for p in DIR.glob("*.py") if p.stem != "__init__")
MAX_LINES = 400  # the house rule (CONTRIBUTING.md): no module over about 400 lines


def imports_of(module: str) -> set[str]:
    """The package's modules that `module` imports anywhere (at the top, inside functions, under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((DIR / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found.update(alias.name if alias.name in MODULES else "__init__" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE + "."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith(PACKAGE + "."))
    return found - {module}


def test_no_module_imports_one_that_imports_it_even_lazily() -> None:
    graph = {module: imports_of(module) for module in MODULES}
    assert all("__init__" not in deps for deps in graph.values()), graph  # the package imports them, not back
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for dep in sorted(graph[module]):
                visit(dep, (*path, module))
            done.add(module)

    for module in MODULES:
        visit(module, ())


def test_every_module_is_short_and_says_what_it_owns() -> None:
    for module in ["__init__", *MODULES]:
        text = (DIR / f"{module}.py").read_text()
        assert len(text.splitlines()) <= MAX_LINES, module
        assert ast.get_docstring(ast.parse(text)), module


def test_the_backends_share_one_implementation() -> None:
    from hatchet_manifest.ledger.postgres import PostgresLedger
    from hatchet_manifest.ledger.sql import SqlLedger
    from hatchet_manifest.ledger.sqlite import SqliteLedger

    shared = {"record_pending", "record_submitted", "_record_outcome", "adopt", "forget", "lookup", "_page"}
    shared |= {"state_digest", "entries", "import_rows", "export_rows", "count", "targets"}
    for backend in (SqliteLedger, PostgresLedger):
        assert issubclass(backend, SqlLedger)
        assert not shared & set(vars(backend)), backend  # no backend overrides what they share


def test_the_public_import_paths_hold() -> None:
    assert sorted(ledger_package.__all__) == sorted(
        [
            "RUN_STATES",
            "AdoptedRow",
            "KeyTakenError",
            "Ledger",
            "LedgerEntry",
            "LedgerLockedError",
            "LockHolder",
            "PendingRow",
            "RunState",
            "Target",
            "TransitionError",
            "open_ledger",
            "redact_url",
        ]
    )
    for module, names in {
        "rows": ["RowError", "parse_lines", "to_line"],
        "url": ["sqlite_path", "open_ledger"],
        "postgres_sql": ["COLUMNS", "LOOKUP", "PIN_PLANS", "text_array"],
        "postgres": ["PostgresLedger"],
        "sqlite": ["SqliteLedger"],
        "migrations": ["SQLITE", "POSTGRES", "LATEST", "VERSION_TABLE"],
    }.items():
        loaded = importlib.import_module(f"{PACKAGE}.{module}")
        assert all(hasattr(loaded, name) for name in names), module
