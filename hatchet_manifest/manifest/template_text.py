"""Templates' output as text: `{{ }}`, `~` and whole templates capped before the text is built.

`checked_concat` (`a ~ b`), `render_capped` (a template rendered as a string, refused past a limit as it
streams), and the hooks the sandboxed `template.Environment` uses: `_finalize` and `output_text` (what `{{ x }}`
writes), `_as_text`, and `_Undefined` (strict, with its messages quoting names and keys shortened). A secret
stays opaque text through all of them (`opaque.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.exceptions import SecurityError
from jinja2.utils import missing, object_type_repr

from hatchet_manifest.manifest import caps
from hatchet_manifest.manifest.opaque import SecretText, SecretUseError, join

MAX_VALUE_LEN = caps.MAX_VALUE_LEN  # longest string or list a template may build in one step (the request limit)


def _cap_len(n: int, what: str) -> None:
    if n > MAX_VALUE_LEN:
        raise SecurityError(f"{what} would build a value longer than {MAX_VALUE_LEN}")


def checked_concat(values: Iterable[Any]) -> str:
    """`a ~ b` and text mixed with expressions, capped like everything else."""
    # Joined first, then measured: each part is capped already and a template names few parts, so the transient
    # string is bounded, and the hot path (a key like "run-{{ i }}") costs about what Jinja's own join does.
    try:
        text = "".join([v if type(v) is str else str(v) for v in values])
    except SecretUseError:  # a secret among the parts: opaque text, the same length cap on what is not secret
        joined = join(values)
        _cap_len(joined.literal_length(), "'~'")
        return joined  # type: ignore[return-value]
    _cap_len(len(text), "'~'")
    return text


def render_capped(template: Template, variables: dict[str, Any], limit: int) -> str:
    """Render a template as a string, refusing output longer than `limit` characters as it streams."""
    chunks: list[Any] = []
    size = 0
    opaque = False
    chunk: Any
    for chunk in template.generate(variables):
        if type(chunk) is SecretText:  # `{{ secret(...) }}` in a block (see output_text)
            opaque = True
            size += chunk.literal_length()
        else:
            size += len(chunk)
        if size > limit:
            raise SecurityError(f"the template renders more than {limit} characters")
        chunks.append(chunk)
    return join(chunks) if opaque else "".join(chunks)  # type: ignore[return-value]


def _as_text(value: Any) -> str:
    """str(value) for `~` and text around `{{ }}`, refused before it is built when it would be too long (a list
    holding one long string many times writes it many times)."""
    if type(value) is not float and value is not None and type(value) is not bool:
        _cap_len(caps.text_size(value)[0], "'~'")
    return str(value)


def _finalize(value: Any) -> Any:
    """What `{{ x }}` writes in a block: refused before it is built when its text would be too long."""
    t = type(value)
    if t is not str and t is not int and t is not float and value is not None:
        _cap_len(caps.text_size(value)[0], "'{{ }}'")
    return value


class _Undefined(StrictUndefined):
    """StrictUndefined whose messages quote a name or key shortened (a key can be a huge value)."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = _short_repr(self._undefined_name)
        if self._undefined_obj is missing:
            return f"{name} is undefined"
        if not isinstance(self._undefined_name, str):
            return f"{object_type_repr(self._undefined_obj)} has no element {name}"
        return f"{object_type_repr(self._undefined_obj)!r} has no attribute {name}"


def _short_repr(value: Any, limit: int = 200) -> str:
    """repr(value), shortened (and never built whole) when long."""
    if type(value) is str:
        return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."
    if caps.text_size(value, limit)[0] > limit:
        return f"<a {type(value).__name__} too long to show>"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def output_text(value: Any) -> Any:
    """What `{{ x }}` writes in a block: the text of x, or a secret as it is (render_capped joins it)."""
    return value if type(value) is SecretText else str(value)
