"""The state digest's arithmetic: one fingerprint per key, combined in any order (see Ledger.state_digest).

Pure functions, no database: the same bytes on every backend, so that a plan made against one ledger can be
checked against a copy of it in another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from hatchet_manifest.ledger.values import StateRow

_DIGEST_DOMAIN = b"hatchet-manifest ledger state v1\n"


def fingerprint(key: str, row: StateRow | None) -> bytes:
    """sha256 of one key's state row, length-prefixed (unambiguous whatever the strings hold); an absent key
    has its own fingerprint."""
    digest, run_id, state = row if row is not None else (None, None, "absent")
    text = "".join("-" if x is None else f"{len(x)}:{x}" for x in (key, digest, run_id, state))
    return hashlib.sha256(text.encode()).digest()


def combine_fingerprints(fingerprints: Iterable[bytes]) -> str:
    """An order-independent digest of a multiset of fingerprints: sum modulo 2**256, then sha256.

    Order independence lets `state_digest` stream a million keys in constant memory instead of sorting them;
    the result is the same as for the keys sorted by key.
    """
    total = 0
    count = 0
    for fp in fingerprints:
        total = (total + int.from_bytes(fp, "big")) % (1 << 256)
        count += 1
    h = hashlib.sha256(_DIGEST_DOMAIN)
    h.update(count.to_bytes(8, "big"))
    h.update(total.to_bytes(32, "big"))
    return "sha256:" + h.hexdigest()
