"""Options shared by the commands that render manifests (render, validate, diff, apply)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from hatchet_manifest.manifest.loader import LoadedManifest, load
from hatchet_manifest.manifest.render import Renderer
from hatchet_manifest.manifest.rendered import Limits
from hatchet_manifest.manifest.selector import Selector
from hatchet_manifest.manifest.values import Values

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RenderArgs:
    paths: tuple[str, ...]
    values: tuple[str, ...]
    set: tuple[str, ...]
    set_string: tuple[str, ...]
    selector: tuple[str, ...]
    max_runs: int
    schema_dir: str

    @classmethod
    def from_kwargs(cls, kw: dict[str, Any]) -> RenderArgs:
        return cls(**{k: kw.pop(k) for k in cls.__dataclass_fields__})

    def load(self) -> list[LoadedManifest]:
        selector = Selector.parse(self.selector) if self.selector else None
        return load(self.paths, selector)

    def renderer(self, reveal_secrets: bool = False) -> Renderer:
        return Renderer(
            self.load(),
            Values(self.values, self.set, self.set_string),
            Limits(max_runs=self.max_runs),
            Path(self.schema_dir),
            reveal_secrets=reveal_secrets,
        )


def render_options(func: F) -> F:
    """PATH... -f/--values, --set, --set-string, -l/--selector, --max-runs, --schema-dir."""
    decorators = [
        click.argument("paths", nargs=-1, required=True, type=click.Path()),
        click.option(
            "-f", "--values", multiple=True, type=click.Path(), help="A YAML values file (repeatable; last wins)."
        ),
        click.option(
            "--set", "set", multiple=True, metavar="K=V", help="Set a variable; the value is read as YAML (a.b=1,c=x)."
        ),
        click.option("--set-string", multiple=True, metavar="K=V", help="Set a variable to a string."),
        click.option(
            "-l",
            "--selector",
            multiple=True,
            metavar="SELECTOR",
            help="Only manifests whose labels match (k=v,k!=v,k,!k).",
        ),
        click.option(
            "--max-runs",
            type=click.IntRange(min=1),
            default=100_000,
            show_default=True,
            help="Refuse to render more runs than this.",
        ),
        click.option(
            "--schema-dir",
            default="schemas/inputs",
            show_default=True,
            type=click.Path(),
            help="Where input JSON Schemas (<workflow_name>.json) live.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


state_dir_option = click.option(
    "--state-dir",
    envvar="HATCHET_MANIFEST_STATE_DIR",
    default=".hatchet-manifest",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the default SQLite ledger and the embedded engine live (env HATCHET_MANIFEST_STATE_DIR).",
)
ledger_option = click.option(
    "--ledger",
    envvar="HATCHET_MANIFEST_LEDGER",
    default=None,
    metavar="URL",
    help="Ledger location: a path, sqlite:///path or postgresql://... (default <state-dir>/ledger.db; "
    "env HATCHET_MANIFEST_LEDGER).",
)


def say_warnings(renderer: Renderer) -> None:
    """The renderer's warnings (e.g. a secret not set in a preview), on stderr; never fatal."""
    for warning in renderer.warnings:
        click.echo(f"warning: {warning}", err=True)
