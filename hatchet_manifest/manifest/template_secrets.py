"""What templates may read of the environment, and the guards that keep a secret opaque.

`env()` and `secret()` (the variables the operator allows: `access.py`; a secret read is registered with
`scrub.py` and returned as `SecretText`, real only when revealed), and the wrappers that make filters, tests and
JSON text refuse a secret (`_refusing_secrets`, `_passing_secrets`, `_to_json`), with the reason they give.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, pass_context
from jinja2.runtime import Context

from hatchet_manifest import scrub
from hatchet_manifest.manifest.access import Access
from hatchet_manifest.manifest.opaque import SecretText, SecretUseError
from hatchet_manifest.manifest.template_helpers import TemplateFunctionError

REVEAL_VAR = "__hatchet_manifest_reveal__"
_PASS_THROUGH = frozenset({"default", "d", "string"})
_WHY = "previews show *** where a secret is, so the apply would build other runs than the preview showed"


class SecretAccess:
    """What `env()` and `secret()` read of the environment they run in (a part of `template.Environment`): the
    operator's allow lists, and where to note the secrets a preview found unset."""

    access: Access
    missing_secrets: set[str]


def _has_secret(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    for a in args:
        if type(a) is SecretText:
            return True
    if kwargs:
        for a in kwargs.values():
            if type(a) is SecretText:
                return True
    return False


def _refusing_secrets(func: Callable[..., Any], what: str) -> Callable[..., Any]:
    message = f"a secret() value cannot be {what}: {_WHY}; it can only be placed in input or metadata values"

    def refusing(*args: Any, **kwargs: Any) -> Any:
        for a in args:  # inline: filters run per run, on the hot path
            if type(a) is SecretText:
                raise SecretUseError(message)
        if kwargs and _has_secret((), kwargs):
            raise SecretUseError(message)
        return func(*args, **kwargs)

    pass_arg = getattr(func, "jinja_pass_arg", None)
    if pass_arg is not None:
        refusing.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return refusing


def _passing_secrets(func: Callable[..., Any]) -> Callable[..., Any]:
    def passing(value: Any, *args: Any, **kwargs: Any) -> Any:
        return value if type(value) is SecretText else func(value, *args, **kwargs)

    return passing


def _to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if type(value) is SecretText:
        raise SecretUseError(f"a secret() value cannot be turned into JSON text: {_WHY}")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@pass_context
def _env(context: Context, name: Any, default: Any = StrictUndefined) -> Any:
    """env("NAME", default): an environment variable the operator allows (--allow-env); without a default,
    unset is an error."""
    if not isinstance(name, str):
        raise TemplateFunctionError("env() takes the name of a variable (a string)")
    environment = context.environment
    access = environment.access if isinstance(environment, SecretAccess) else Access()
    refusal = access.env_refusal(name)
    if refusal is not None:
        raise TemplateFunctionError(refusal)
    value = os.environ.get(name)
    if value is None:
        if default is StrictUndefined:
            raise TemplateFunctionError(f"environment variable {name} is not set (give env() a default)")
        return default
    return value


@pass_context
def _secret(context: Context, name: Any) -> SecretText:
    """secret("NAME"): a variable the operator allows as a secret (--allow-secret), as opaque text: shown as
    *** in every render, diff and plan, real only in what is submitted, and masked in all output."""
    if not isinstance(name, str):
        raise TemplateFunctionError("secret() takes the name of a variable (a string)")
    environment = context.environment
    access = environment.access if isinstance(environment, SecretAccess) else Access()
    refusal = access.secret_refusal(name)
    if refusal is not None:
        raise TemplateFunctionError(refusal)
    value = os.environ.get(name) or None  # an empty secret is a missing one (CI expands unknown secrets to "")
    reveal = context.resolve_or_missing(REVEAL_VAR) is True
    if value is None:
        if reveal:
            raise TemplateFunctionError(f"secret {name} is not set in the environment (or is empty)")
        # A preview needs no secret value (pull-request jobs often have none): say so, show the mask.
        if isinstance(environment, SecretAccess):
            environment.missing_secrets.add(name)
        return SecretText.of(name, None)
    if len(value) < scrub.MIN_LENGTH:
        raise TemplateFunctionError(
            f"secret {name} is shorter than {scrub.MIN_LENGTH} characters: too short to be masked in output"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise TemplateFunctionError(f"secret {name} is not valid UTF-8 text") from None
    scrub.register(value)  # from now on, masked in everything this process writes
    return SecretText.of(name, value if reveal else None)
