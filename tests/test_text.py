"""hatchet_manifest.text: which characters are unsafe on a terminal, and how they are shown."""

from __future__ import annotations

import json
import sys
import unicodedata

from hatchet_manifest.text import (
    UNSAFE,
    escape,
    json_safe,
    quote,
    safe_message,
    shorten,
    unsafe_char_problem,
)

FORGED = "Deploy\x1b[2K\rPlan: 0 to create\x1b[8m"


def test_every_control_format_and_separator_character_is_unsafe() -> None:
    missing = [
        f"U+{c:04X}"
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp") and not UNSAFE.fullmatch(chr(c))
    ]
    assert missing == []
    assert [c for c in "aé日 -_/.:~\u00a0😀" if UNSAFE.fullmatch(c)] == []


def test_escape_shows_unsafe_characters_and_keeps_the_rest() -> None:
    assert escape(FORGED) == "Deploy\\x1b[2K\\rPlan: 0 to create\\x1b[8m"
    assert (
        escape("évil\u202etxt.exe \U000e0041 \x9b \x7f \u2028") == "évil\\u202etxt.exe \\U000e0041 \\x9b \\x7f \\u2028"
    )
    assert escape("a\nb\tc", keep_newlines=True) == "a\nb\\tc"
    assert escape("plain 日本") == "plain 日本"


def test_quote_is_bounded_and_escaped() -> None:
    assert quote("k" * 4_000_000) == "'" + "k" * 77 + "...'"
    assert quote(FORGED) == "'Deploy\\x1b[2K\\rPlan: 0 to create\\x1b[8m'"
    assert len(quote(list(range(100_000)))) <= 80
    assert len(quote({"a" * 1000: ["b" * 1000]})) <= 80
    assert quote(None) == "None" and quote(3) == "3"
    assert shorten("abcdef", 5) == "ab..."
    assert len(safe_message("x" * 10_000_000)) == 2000


def test_identity_problems_name_the_character() -> None:
    assert unsafe_char_problem("BulkParent") is None
    assert unsafe_char_problem("with space and é") is None
    assert unsafe_char_problem(FORGED) == "contains the control character \\x1b at offset 6"
    assert unsafe_char_problem("a\u202eb") == "contains the bidi control character \\u202e at offset 1"
    assert unsafe_char_problem("a\u2029") == "contains the line or paragraph separator \\u2029 at offset 1"
    assert unsafe_char_problem("\ufeffa") == "contains the invisible formatting character \\ufeff at offset 0"


def test_json_safe_keeps_the_value_and_hides_every_unsafe_character() -> None:
    value = {"k\u202e": ["\x7f\x9b\u2028\u2029\U000e0041\x1b", "ok é 😀"]}
    for text in (json.dumps(value, ensure_ascii=False), json.dumps(value, ensure_ascii=False, indent=2)):
        safe = json_safe(text)
        assert json.loads(safe) == value
        assert not UNSAFE.search(safe.replace("\n", ""))
        assert "é 😀" in safe
    assert json_safe('{"a":"plain"}') == '{"a":"plain"}'
