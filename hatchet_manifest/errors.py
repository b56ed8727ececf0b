"""One exception hierarchy. The CLI maps these to exit codes; the library only raises them."""

from __future__ import annotations

from dataclasses import dataclass

from hatchet_manifest.scrub import scrub
from hatchet_manifest.text import safe_message


class HatchetManifestError(Exception):
    """Base of every error the tool reports to its user (exit code 1 unless said otherwise)."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem: `FILE:LINE: runs[0] (i=3): input.n: message`."""

    file: str
    line: int | None
    message: str
    where: str = ""  # e.g. "runs[0] (i=3)"
    path: str = ""  # e.g. "input.n"

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}" if self.line else self.file
        parts = [loc, self.where, self.path, self.message]
        # escaped (a problem is one line) and bounded: it quotes untrusted text
        # scrubbed before it is shortened: a secret cut at the end would not be found any more
        return safe_message(scrub(": ".join(p for p in parts if p)), keep_newlines=False)


class ManifestError(HatchetManifestError):
    """One or more problems in manifests, values or rendered runs."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @classmethod
    def of(cls, shown: list[Problem], total: int) -> ManifestError:
        """The problems kept (`shown`) of `total` found, the rest counted in a last line."""
        hidden = total - len(shown)
        return cls([*shown, Problem("", None, f"... and {hidden} more problems")] if hidden > 0 else list(shown))


class ConfigError(HatchetManifestError):
    """Bad settings: flags, environment, values files, targets."""


class LedgerError(HatchetManifestError):
    """The ledger cannot be read, written or locked."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI job cancelled, a pod stopped): the apply stops as on Ctrl-C, then exits 143."""


def terminated(exc: BaseException) -> bool:
    """Whether `exc` is, or was raised while handling, a Terminated (libraries may wrap a KeyboardInterrupt)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Terminated):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
