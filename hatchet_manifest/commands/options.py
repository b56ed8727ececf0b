"""Options shared by the commands that render manifests (render, validate, diff, apply)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from hatchet_manifest.commands.allow import ALLOW_OPTIONS, configure_access
from hatchet_manifest.manifest.access import Access
from hatchet_manifest.manifest.loader import LoadedManifest, load, load_partial
from hatchet_manifest.manifest.render import raise_with
from hatchet_manifest.manifest.rendered import Limits
from hatchet_manifest.manifest.sandbox import (
    MEMORY_ENV,
    MIN_MEMORY,
    TIMEOUT_ENV,
    WORKER_MODULE,
    BoundedProcess,
    BoundedRenderer,
    RenderBounds,
    Rendering,
    human_size,
    parse_seconds,
    parse_size,
)
from hatchet_manifest.manifest.selector import Selector
from hatchet_manifest.manifest.validate import DEFAULT_SCHEMA_DIR
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
    schema_dir: str | None
    allow_env: tuple[str, ...]
    allow_secret: tuple[str, ...]
    render_memory: int
    render_timeout: float

    @classmethod
    def from_kwargs(cls, kw: dict[str, Any]) -> RenderArgs:
        return cls(**{k: kw.pop(k) for k in cls.__dataclass_fields__})

    def load(self) -> list[LoadedManifest]:
        selector = Selector.parse(self.selector) if self.selector else None
        return load(self.paths, selector)

    @property
    def access(self) -> Access:
        """What templates may read (--allow-env, --allow-secret and their environment variables)."""
        return configure_access(self.allow_env, self.allow_secret)

    @property
    def bounds(self) -> RenderBounds:
        """What one render may use as a whole (--render-memory, --render-timeout)."""
        return RenderBounds(self.render_memory, self.render_timeout)

    def renderer(self, reveal_secrets: bool = False, start: bool = True) -> BoundedRenderer:
        """The renderer of the manifests, rendering in a bounded worker process (started first, so that its
        imports overlap the loading; with `start` False, when first needed: some manifests may be skipped, and
        then none may be left to render); when some manifests do not load, the others are rendered too and every
        problem is raised at once. Close it (or use it as a context manager) to stop its worker."""
        # a bad allow-list name is refused before a worker starts; the worker sees only what templates may read
        process = BoundedProcess(WORKER_MODULE, self.bounds, self.access) if start else None
        try:
            selector = Selector.parse(self.selector) if self.selector else None
            manifests, problems = load_partial(self.paths, selector)
        except BaseException:
            if process is not None:
                process.stop()
            raise
        renderer = self._renderer(manifests, reveal_secrets, process, start=start or bool(problems))
        if problems:
            raise_with(renderer, problems)
        return renderer

    def _renderer(
        self,
        manifests: list[LoadedManifest],
        reveal_secrets: bool,
        process: BoundedProcess | None = None,
        start: bool = True,
    ) -> BoundedRenderer:
        return BoundedRenderer(
            manifests,
            Values(self.values, self.set, self.set_string),
            Limits(max_runs=self.max_runs, access=self.access),
            # --schema-dir as given is relative to the current directory; the default, to the manifests' repository
            Path(self.schema_dir).absolute() if self.schema_dir is not None else DEFAULT_SCHEMA_DIR,
            reveal_secrets=reveal_secrets,
            bounds=self.bounds,
            process=process,
            start=start,
        )


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """`1GiB`, `512MiB`, checked when the command line is read (exit 2)."""
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    if size < MIN_MEMORY:
        raise click.BadParameter(f"at least {human_size(MIN_MEMORY)} (the render worker needs about 50)", ctx, param)
    return size


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """`60s`, `2m`, checked when the command line is read (exit 2)."""
    try:
        seconds = parse_seconds(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    if not seconds > 0:
        raise click.BadParameter("must be positive", ctx, param)
    return seconds


RENDER_BOUND_OPTIONS = [
    click.option(
        "--render-memory",
        envvar=MEMORY_ENV,
        default="1GiB",
        show_default=True,
        metavar="SIZE",
        callback=_size,
        help="The memory one render may use as a whole (the address space of the worker process it runs in), "
        f"e.g. 512MiB, 2GiB (env {MEMORY_ENV}).",
    ),
    click.option(
        "--render-timeout",
        envvar=TIMEOUT_ENV,
        default="60s",
        show_default=True,
        metavar="DURATION",
        callback=_seconds,
        help="The CPU time one render may use, and the time the command may wait for it, e.g. 60s, 5m "
        f"(env {TIMEOUT_ENV}).",
    ),
]


refresh_option = click.option(
    "--refresh",
    is_flag=True,
    help="Render and compare every manifest, also those the ledger records as unchanged since they were applied "
    "(which are otherwise counted as unchanged without being rendered again).",
)


selector_option = click.option(
    "-l", "--selector", multiple=True, metavar="SELECTOR", help="Only manifests whose labels match (k=v,k!=v,k,!k)."
)


def render_options(func: F) -> F:
    """PATH... -f/--values, --set, --set-string, -l/--selector, --max-runs, --schema-dir, --allow-env,
    --allow-secret."""
    decorators = [
        click.argument("paths", nargs=-1, required=True, type=click.Path()),
        click.option(
            "-f", "--values", multiple=True, type=click.Path(), help="A YAML values file (repeatable; last wins)."
        ),
        click.option(
            "--set", "set", multiple=True, metavar="K=V", help="Set a variable; the value is read as YAML (a.b=1,c=x)."
        ),
        click.option("--set-string", multiple=True, metavar="K=V", help="Set a variable to a string."),
        selector_option,
        click.option(
            "--max-runs",
            type=click.IntRange(min=1),
            default=100_000,
            show_default=True,
            help="Refuse to render more runs than this.",
        ),
        click.option(
            "--schema-dir",
            default=None,
            type=click.Path(),
            help="Where input JSON Schemas (<workflow_name>.json) live  [default: schemas/inputs in the repository "
            "holding the manifests]",
        ),
        *ALLOW_OPTIONS,
        *RENDER_BOUND_OPTIONS,
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


def say_warnings(renderer: Rendering) -> None:
    """The renderer's warnings (e.g. a secret not set in a preview), on stderr; never fatal."""
    for warning in renderer.warnings:
        click.echo(f"warning: {warning}", err=True)
