"""`--allow-env` and `--allow-secret`: the environment variables templates may read (see manifest/access.py).

Given on the command line or in the environment (HATCHET_MANIFEST_ALLOW_ENV, HATCHET_MANIFEST_ALLOW_SECRETS,
comma-separated; both are joined), never in a manifest or a values file. The values of the allowed secrets are
registered with the scrubber as the command starts, so that whatever renders them (this process or a render
worker) they never reach this process's output.
"""

from __future__ import annotations

import os

import click

from hatchet_manifest import scrub
from hatchet_manifest.manifest.access import ALLOW_ENV, ALLOW_SECRETS, Access

ALLOW_OPTIONS = [
    click.option(
        "--allow-env",
        "allow_env",
        multiple=True,
        metavar="NAME",
        help=f"Let env() read this variable (repeatable; a trailing * allows a prefix: BACKFILL_*). Also {ALLOW_ENV} "
        "(comma-separated). HATCHET_CLIENT_* and HATCHET_MANIFEST_* are never readable.",
    ),
    click.option(
        "--allow-secret",
        "allow_secret",
        multiple=True,
        metavar="NAME",
        help=f"Let secret() read this variable (repeatable; a trailing * allows a prefix). Also {ALLOW_SECRETS} "
        "(comma-separated). Its value is masked in all output.",
    ),
]


def configure_access(allow_env: tuple[str, ...], allow_secret: tuple[str, ...]) -> Access:
    """The operator's allow lists (command line + environment); registers the allowed secrets' values."""
    access = Access.configure(allow_env, allow_secret)
    for name in access.secret_names():
        value = os.environ.get(name)
        if value:
            scrub.register(value)
    return access
