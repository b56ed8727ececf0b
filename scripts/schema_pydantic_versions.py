"""Check that `hatchet-manifest schema` prints the same schema under every pydantic the package allows.

    python scripts/schema_pydantic_versions.py                         # lowest, each minor's newest, newest
    python scripts/schema_pydantic_versions.py --versions lowest,newest  # the bounds only (faster)
    python scripts/schema_pydantic_versions.py --versions 2.6.0,2.9.2

A throwaway venv gets this checkout installed as a user installs it (`pip install .`, with its dependencies);
then, for each pydantic version, that release is installed into it (pip brings the pydantic-core it pins) and
`hatchet-manifest schema` must print exactly `schemas/manifest.schema.json`. The allowed range is read from
pyproject.toml: `lowest` is its lower bound, `newest` what pip resolves for the range, `minors` the newest
release of each minor version in the range (listed by `pip index versions pydantic`), from the index pip is
configured with (PyPI by default). Exit 0 when every output is the published schema, 1 (with a diff) when one
differs, 2 when a version cannot be installed.

pydantic 2.6 to 2.14 write the same model in different JSON (2.7 to 2.9 alone add a one-value `enum` to a
`Literal`), which is why the default checks every minor version and not only the bounds. It takes two to three
minutes, so the test suite does not run it: `tests/manifest/test_schema_form.py` checks, fast, the rewriting
that makes the versions agree (`hatchet_manifest/manifest/schema_form.py`) on each form they write. Run this
script when the model, the pydantic range or that rewriting changes.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import tempfile
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "schemas" / "manifest.schema.json"
_CLAUSE = re.compile(r"(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)")


def pydantic_range() -> str:
    """The pydantic requirement's specifier in pyproject.toml, e.g. `>=2.6,<3`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        m = re.fullmatch(r"pydantic\s*([<>=!~][^;]*)(;.*)?", requirement.strip())
        if m:
            return m.group(1).replace(" ", "")
    raise SystemExit("pyproject.toml has no pydantic requirement")


def _release(version: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (3 - len(parts))


def clauses(spec: str) -> list[tuple[str, tuple[int, ...]]]:
    found = []
    for clause in filter(None, spec.split(",")):
        m = _CLAUSE.fullmatch(clause)
        if m is None:
            raise SystemExit(
                f"cannot read the pydantic requirement clause {clause!r} (this script knows <, <=, >, >=, ==, !=)"
            )
        found.append((m.group(1), _release(m.group(2))))
    return found


def allowed(version: str, spec: str) -> bool:
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        return False  # a pre-release or a local version: not what users get
    v = _release(version)
    tests = {">=": v.__ge__, "<=": v.__le__, ">": v.__gt__, "<": v.__lt__, "==": v.__eq__, "!=": v.__ne__}
    return all(tests[op](bound) for op, bound in clauses(spec))


def lowest(spec: str) -> str:
    bounds = [bound for op, bound in clauses(spec) if op == ">="]
    if not bounds:
        raise SystemExit(f"the pydantic requirement {spec!r} has no lower bound (>=) to check")
    return ".".join(map(str, max(bounds)))  # 2.6 -> 2.6.0: the first release it allows


def run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}", file=sys.stderr)
        raise SystemExit(2)
    return done.stdout


def newest_of_each_minor(python: str, spec: str, cwd: Path) -> list[str]:
    listing = run([python, "-m", "pip", "index", "versions", "pydantic", "--disable-pip-version-check"], cwd)
    m = re.search(r"Available versions:\s*(.+)", listing)
    if m is None:
        raise SystemExit(f"cannot read pip's listing of pydantic's versions:\n{listing}")
    newest: dict[tuple[int, ...], str] = {}
    for version in (v.strip() for v in m.group(1).split(",")):
        if allowed(version, spec):
            minor = _release(version)[:2]
            if minor not in newest or _release(version) > _release(newest[minor]):
                newest[minor] = version
    return [newest[minor] for minor in sorted(newest)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--versions",
        default="lowest,minors,newest",
        help="comma-separated pydantic versions, or `lowest`, `minors` (the newest of each minor version), "
        "`newest` (default: lowest,minors,newest)",
    )
    args = parser.parse_args()
    spec = pydantic_range()
    published = PUBLISHED.read_text()
    failed = False
    with tempfile.TemporaryDirectory(prefix="schema-pydantic-") as tmp:
        work = Path(tmp)
        venv.create(work / "venv", with_pip=True)
        python = str(work / "venv" / "bin" / "python")
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        print(f"installing this checkout and pydantic{spec} into a throwaway venv", flush=True)
        run([*pip, str(ROOT), f"pydantic{spec}"], work)
        versions: list[str] = []
        for wanted in args.versions.split(","):
            if wanted == "minors":
                versions += newest_of_each_minor(python, spec, work)
            elif wanted == "newest":
                versions.append("newest")
            else:
                versions.append(lowest(spec) if wanted == "lowest" else wanted)
        for wanted in dict.fromkeys(versions):  # in order, each once
            if wanted != "newest" and not allowed(wanted, spec):
                print(f"pydantic {wanted} is outside the allowed range {spec}", file=sys.stderr)
                return 2
            run([*pip, "--upgrade", f"pydantic{spec}"] if wanted == "newest" else [*pip, f"pydantic=={wanted}"], work)
            version = run([python, "-c", "import pydantic; print(pydantic.VERSION)"], work).strip()
            output = run([str(work / "venv" / "bin" / "hatchet-manifest"), "schema"], work)
            label = f"pydantic {version}" + (" (newest)" if wanted == "newest" else "")
            if output == published:
                print(f"{label}: schemas/manifest.schema.json, byte for byte", flush=True)
                continue
            failed = True
            print(f"{label}: differs from schemas/manifest.schema.json:")
            sys.stdout.writelines(
                difflib.unified_diff(
                    published.splitlines(keepends=True),
                    output.splitlines(keepends=True),
                    "schemas/manifest.schema.json",
                    f"hatchet-manifest schema (pydantic {version})",
                )
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
