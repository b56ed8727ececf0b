"""Label selectors (`-l team=data,tier!=low,owner`), as kubectl reads them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hatchet_manifest.errors import ConfigError

_TERM = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_./-]*))?\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "exists", "!exists"
    value: str = ""

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "=":
            return labels.get(self.key) == self.value
        return labels.get(self.key) != self.value


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, texts: tuple[str, ...] | list[str]) -> Selector:
        reqs = []
        for text in texts:
            for term in text.split(","):
                m = _TERM.match(term)
                if not m or (m.group(1) and m.group(3)):
                    raise ConfigError(f"bad selector term {term.strip()!r}: use k=v, k!=v, k or !k")
                neg, key, op, value = m.groups()
                if op is None:
                    reqs.append(Requirement(key, "!exists" if neg else "exists"))
                else:
                    reqs.append(Requirement(key, "!=" if op == "!=" else "=", value))
        return cls(tuple(reqs))

    def matches(self, labels: dict[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)
