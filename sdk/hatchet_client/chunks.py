"""Streams of prepared bulk chunks, as AdminClient hands them to the pipeline."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import TypeVar

from hatchet_client.pipeline import MAX_BATCH_SIZE

T = TypeVar("T")


def as_ranges(chunks: Iterator[tuple[list[int], bytes]]) -> Iterator[tuple[Sequence[int], bytes]]:
    """Tags that are consecutive input indices, kept as a range instead of a list of ints (memory)."""
    for tags, payload in chunks:
        yield range(tags[0], tags[-1] + 1), payload


def handed_over(ready: deque[tuple[Sequence[int], bytes]]) -> Iterator[tuple[Sequence[int], bytes]]:
    """Yield prepared chunks, dropping each from `ready` as it goes: a request's memory is freed once sent,
    and the run ids arriving meanwhile reuse it."""
    while ready:
        yield ready.popleft()


def checked_chunks(chunks: Iterator[tuple[Sequence[T], bytes]], max_send: int) -> Iterator[tuple[Sequence[T], bytes]]:
    for tags, payload in chunks:
        if not 1 <= len(tags) <= MAX_BATCH_SIZE or len(payload) > max_send:
            raise ValueError(
                f"a chunk of {len(tags)} runs and {len(payload)} bytes: chunks hold 1..{MAX_BATCH_SIZE} runs and at "
                f"most {max_send} bytes"
            )
        yield tags, payload
