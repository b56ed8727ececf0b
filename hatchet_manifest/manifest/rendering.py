"""What the commands use of a renderer (`Rendering`), whether it renders in this process (`render.Renderer`) or
in a bounded worker (`sandbox.BoundedRenderer`), and what they know of its run entries (`EntryOrigin`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from hatchet_manifest.manifest.loader import LoadedManifest
from hatchet_manifest.manifest.rendered import Limits, RenderedRun
from hatchet_manifest.manifest.validate import SchemaRegistry
from hatchet_manifest.manifest.values import Values


class EntryOrigin(Protocol):
    """What is known of a compiled run entry: its manifest, its index in `runs`, its number of items."""

    @property
    def manifest(self) -> LoadedManifest: ...

    @property
    def index(self) -> int: ...

    @property
    def count(self) -> int: ...


class Rendering(Protocol):
    """What the commands use of a renderer: `Renderer` (in this process) and `BoundedRenderer` (in a worker)."""

    manifests: list[LoadedManifest]
    values: Values
    limits: Limits
    schemas: SchemaRegistry
    reveal: bool
    warnings: list[str]
    overrides: dict[str, Any]

    def prepare(self) -> int: ...

    def runs(self) -> Iterator[RenderedRun]: ...

    def count(self) -> int: ...

    def entries(self) -> Sequence[EntryOrigin]: ...

    def fresh(self) -> Rendering: ...

    def close(self) -> None: ...
