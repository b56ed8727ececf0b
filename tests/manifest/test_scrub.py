"""The scrubber: once a secret's value is read, every spelling of it is masked in what the tool writes."""

from __future__ import annotations

import io
import json

import pytest

from hatchet_manifest import scrub

# -- the scrubber -------------------------------------------------------------------------------------------------


def test_every_spelling_of_a_registered_value_is_masked() -> None:
    value = 'Zq9"é\\\n\x1bend'
    scrub.register(value)
    spellings = [
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        ascii(value)[1:-1],
        repr(value.encode())[2:-1],
        'Zq9"é\\\\n\\x1bend',  # escaped for a terminal (control characters written visibly)
    ]
    for spelling in spellings:
        assert scrub.scrub(f"<{spelling}>") == "<***>", spelling
    assert scrub.scrub_any({"k": [value, 1], value: "x"}) == {"k": ["***", 1], "***": "x"}
    scrub.register("ab")  # too short to be masked: never registered (secret() refuses such values)
    assert scrub.scrub("ab cab") == "ab cab"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_a_stream_masks_a_value_split_across_writes(size: int) -> None:
    value = "Zq9-split-across-writes"
    scrub.register(value)
    out = io.StringIO()
    stream = scrub.ScrubbingStream(out)
    text = f"a {value} b {json.dumps(value)} Zq9-spl c {value}"
    for i in range(0, len(text), size):
        stream.write(text[i : i + size])
        assert value not in out.getvalue()
    stream.release()
    assert out.getvalue() == 'a *** b "***" Zq9-spl c ***'


def test_a_stream_keeps_back_nothing_that_cannot_start_a_secret() -> None:
    scrub.register("Zq9-held")
    out = io.StringIO()
    stream = scrub.ScrubbingStream(out)
    stream.write("progress 5/10\n")
    assert out.getvalue() == "progress 5/10\n"  # written at once
    stream.write("x Zq9")
    assert out.getvalue() == "progress 5/10\nx "  # may be the start of the secret: kept until it is known
    stream.write("!")
    assert out.getvalue() == "progress 5/10\nx Zq9!"


def test_what_is_left_of_a_value_cut_short_is_masked() -> None:
    """Messages quote values shortened (`'abc...'`, reprlib's `'abc...xyz'`), tables cut cells: the part of a
    secret next to the cut is masked too, however long the secret."""
    from hatchet_manifest.output import write_table
    from hatchet_manifest.text import quote, shorten

    value = "Zq9" + "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    scrub.register(value)
    out = io.StringIO()
    write_table([{"key": "k", "input": {"token": value}}], out)
    for text in (quote(value), quote([value, 1]), quote({"a": value}), shorten("x" * 10 + value, 60), out.getvalue()):
        scrubbed = scrub.scrub(text)
        for k in range(0, len(value) - 8):  # no 8 characters of it are left anywhere
            assert value[k : k + 8] not in scrubbed, (text, scrubbed)
        assert "***" in scrubbed
    assert scrub.scrub("... and 3 more problems") == "... and 3 more problems"


def test_yaml_spellings_are_masked() -> None:
    import yaml

    value = 'Zq9-it\'s "quoted" é'
    scrub.register(value)
    for style in (None, "'", '"'):
        text = yaml.safe_dump({"v": value}, allow_unicode=True, default_style=style)
        assert "***" in scrub.scrub(text) and "Zq9-it" not in scrub.scrub(text), text
