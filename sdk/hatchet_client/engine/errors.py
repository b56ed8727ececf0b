"""Errors raised by the embedded engine's library code (never by its RPC handlers to clients)."""

from __future__ import annotations


class EngineError(Exception):
    """The engine cannot start, open its database, read its secret or parse its settings."""


class TokenError(Exception):
    """A token is missing, malformed, badly signed, expired or meant for another engine.

    Messages say what is wrong and never contain the token itself.
    """


class EngineStopping(EngineError):
    """The engine is shutting down: a call that gets this had nothing written."""
