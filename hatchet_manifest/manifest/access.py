"""What templates may read of the environment: only the variables the operator allows.

The environment belongs to the operator (CI secrets, database URLs, tokens); the templates to whoever opened
the pull request. `env("NAME")` and `secret("NAME")` read only names the operator allowed, on the command line
(`--allow-env NAME`, `--allow-secret NAME`, repeatable) or in the environment (`HATCHET_MANIFEST_ALLOW_ENV`,
`HATCHET_MANIFEST_ALLOW_SECRETS`, comma-separated), never in a manifest or a values file. A name may end with
`*` to allow a prefix (`BACKFILL_*`). The tool's own settings (`HATCHET_CLIENT_*`, `HATCHET_MANIFEST_*`) are
never readable. A name allowed as a secret is never readable by `env()` (it would print it), and a name that
only a prefix allows is refused to `env()` when it looks like a credential (`APP_*` must not hand out
`APP_DB_PASSWORD`): name it exactly, or allow it as a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hatchet_manifest.errors import ConfigError

ALLOW_ENV = "HATCHET_MANIFEST_ALLOW_ENV"
ALLOW_SECRETS = "HATCHET_MANIFEST_ALLOW_SECRETS"
RESERVED = ("HATCHET_CLIENT_", "HATCHET_MANIFEST_")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?")
CREDENTIAL = re.compile(r"TOKEN|SECRET|PASS|PWD|PRIVATE|CREDENTIAL|AUTH|API_?KEY|ACCESS_?KEY|_KEY$|DSN|URL", re.I)


def _reserved(name: str) -> bool:
    return name.upper().startswith(RESERVED)


def _parse(items: Iterable[str], what: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        for raw in item.split(","):
            name = raw.strip()
            if not name:
                continue
            if not _PATTERN.fullmatch(name):
                raise ConfigError(
                    f"{what} {name!r}: not a variable name (letters, digits and _, optionally ending with * to "
                    "allow a prefix, e.g. BACKFILL_*)"
                )
            if _reserved(name.rstrip("*")):
                raise ConfigError(
                    f"{what} {name}: HATCHET_CLIENT_* and HATCHET_MANIFEST_* are the tool's own settings and are "
                    "never readable by templates"
                )
            if name not in out:
                out.append(name)
    return tuple(out)


def _match(patterns: tuple[str, ...], name: str) -> str | None:
    """The pattern allowing `name`: the name itself first, then the longest prefix."""
    if name in patterns:
        return name
    best = None
    for p in patterns:
        if p.endswith("*") and name.startswith(p[:-1]) and (best is None or len(p) > len(best)):
            best = p
    return best


@dataclass(frozen=True)
class Access:
    """The environment variables templates may read: `env` through env(), `secrets` through secret()."""

    env: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()

    @classmethod
    def configure(
        cls, allow_env: Iterable[str] = (), allow_secret: Iterable[str] = (), environ: Mapping[str, str] | None = None
    ) -> Access:
        """The command line's names joined with the environment's (HATCHET_MANIFEST_ALLOW_ENV/_SECRETS).
        Raises ConfigError for a name that cannot be allowed."""
        environ = os.environ if environ is None else environ
        return cls(
            _parse([*allow_env, environ.get(ALLOW_ENV, "")], "--allow-env"),
            _parse([*allow_secret, environ.get(ALLOW_SECRETS, "")], "--allow-secret"),
        )

    def env_refusal(self, name: str) -> str | None:
        """Why env(name) may not read the variable, or None when it may."""
        if not _NAME.fullmatch(name):
            return f"env({name!r}): not a variable name"
        if _reserved(name):
            return (
                f"env({name!r}) is refused: HATCHET_CLIENT_* and HATCHET_MANIFEST_* variables are the tool's own "
                "settings and are never readable by templates"
            )
        if _match(self.secrets, name) is not None:
            return f"env({name!r}) is refused: {name} is allowed as a secret: use secret({name!r})"
        pattern = _match(self.env, name)
        if pattern is None:
            return (
                f"env({name!r}) is not allowed: the operator allows variables with --allow-env {name} "
                f"(or {ALLOW_ENV}={name}); a manifest cannot"
            )
        if pattern != name and CREDENTIAL.search(name):
            return (
                f"env({name!r}) is refused: it matches --allow-env {pattern} but looks like a credential: allow "
                f"it by its full name, or as a secret (--allow-secret {name}) and use secret({name!r})"
            )
        return None

    def secret_refusal(self, name: str) -> str | None:
        """Why secret(name) may not read the variable, or None when it may."""
        if not _NAME.fullmatch(name):
            return f"secret({name!r}): not a variable name"
        if _reserved(name):
            return (
                f"secret({name!r}) is refused: HATCHET_CLIENT_* and HATCHET_MANIFEST_* variables (the API token, "
                "the ledger's URL) are the tool's own settings, never run input"
            )
        if _match(self.secrets, name) is None:
            return (
                f"secret({name!r}) is not allowed: the operator allows secrets with --allow-secret {name} "
                f"(or {ALLOW_SECRETS}={name}); a manifest cannot"
            )
        return None

    def secret_names(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The variables of `environ` that secret() may read."""
        environ = os.environ if environ is None else environ
        return [name for name in environ if self.secrets and self.secret_refusal(name) is None]

    def readable(self, name: str) -> bool:
        """Whether a template may read the variable at all (through env() or secret())."""
        return self.env_refusal(name) is None or self.secret_refusal(name) is None


# What a render worker needs of the environment besides what templates may read: the interpreter's own settings.
_PROCESS_NAMES = frozenset(
    {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT", "HATCHET_MANIFEST_CRASH_AT"}
)  # HATCHET_MANIFEST_CRASH_AT: the test hook of a chosen crash point (build.py), never a credential
_PROCESS_PREFIXES = ("LC_", "PYTHON")


def worker_environment(access: Access, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a render worker runs in: the variables templates may read, and the interpreter's own;
    nothing else (the API token, the ledger's URL, the CI's other credentials never enter the process that runs
    a pull request's templates)."""
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in environ.items()
        if name in _PROCESS_NAMES
        or (name.startswith(_PROCESS_PREFIXES) and not _reserved(name))
        or access.readable(name)
    }
