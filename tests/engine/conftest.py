"""Fixtures for the embedded engine's tests: a real engine on 127.0.0.1 (free ports), real gRPC stubs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from hatchet_client._proto import workflows_pb2, workflows_pb2_grpc
from hatchet_client._proto.v1 import admin_pb2_grpc, trigger_pb2
from hatchet_client.engine import Engine, RunStore

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "engine" / "engine.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    with Engine(db_path, port=0) as eng:
        yield eng


class AuthMetadata(tuple[tuple[str, str], ...]):
    """gRPC call metadata carrying a token, whose repr (e.g. in a failing test's report) hides the token."""

    def __repr__(self) -> str:
        return "(('authorization', 'bearer <token>'),)"


def bearer(token: str) -> AuthMetadata:
    return AuthMetadata((("authorization", f"bearer {token}"),))


@pytest.fixture
def auth(engine: Engine) -> Metadata:
    return bearer(engine.token())


@pytest.fixture
def as_auth() -> Callable[[str], AuthMetadata]:
    """`as_auth(token)`: the call metadata for a token (importing from conftest breaks with other conftests)."""
    return bearer


@pytest.fixture
def channel(engine: Engine) -> Iterator[grpc.Channel]:
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]  # so the server's own limit is what bites
    with grpc.insecure_channel(engine.address, options=options) as ch:
        yield ch


@dataclass
class Stubs:
    workflows: workflows_pb2_grpc.WorkflowServiceStub
    admin: admin_pb2_grpc.AdminServiceStub


@pytest.fixture
def stubs(channel: grpc.Channel) -> Stubs:
    return Stubs(workflows_pb2_grpc.WorkflowServiceStub(channel), admin_pb2_grpc.AdminServiceStub(channel))


@pytest.fixture
def store(engine: Engine) -> Iterator[RunStore]:
    """A separate reader on the engine's database, as another process would open it."""
    with RunStore(engine.db_path) as s:
        yield s


def make_request(
    name: str = "wf", input: Any = None, metadata: Any = None, **fields: Any
) -> trigger_pb2.TriggerWorkflowRequest:
    """A TriggerWorkflowRequest; dict input/metadata are JSON-encoded, str values are sent as they are."""
    kwargs: dict[str, Any] = {"name": name, **fields}
    if input is not None:
        kwargs["input"] = input if isinstance(input, str) else json.dumps(input)
    if metadata is not None:
        kwargs["additional_metadata"] = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return trigger_pb2.TriggerWorkflowRequest(**kwargs)


def make_bulk(items: list[trigger_pb2.TriggerWorkflowRequest]) -> workflows_pb2.BulkTriggerWorkflowRequest:
    return workflows_pb2.BulkTriggerWorkflowRequest(workflows=items)


RequestFactory = Callable[..., trigger_pb2.TriggerWorkflowRequest]
BulkFactory = Callable[[list[trigger_pb2.TriggerWorkflowRequest]], workflows_pb2.BulkTriggerWorkflowRequest]


@pytest.fixture
def req() -> RequestFactory:
    """`req(name, input, metadata, **fields)` builds a v1.TriggerWorkflowRequest."""
    return make_request


@pytest.fixture
def bulk() -> BulkFactory:
    """`bulk([req(...), ...])` builds a BulkTriggerWorkflowRequest."""
    return make_bulk
