"""What the executor carries with each run through the spool and the bulk pipeline to the ledger."""

from typing import NamedTuple


class Tag(NamedTuple):
    key: str
    digest: str
    manifest: str
    file: str
    replace: bool = False  # a changed run sent again: its submitted row is replaced


TagFields = tuple[str, str, str, str, bool]  # a Tag as the spool stores it: (key, digest, manifest, file, replace)
