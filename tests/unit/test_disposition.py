"""``Content-Disposition`` (RFC 6266 §4, RFC 8187 §3.2) for any name found on disk."""

from __future__ import annotations

import os
import re
import unicodedata
from urllib.parse import quote, unquote, unquote_to_bytes

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from service.sansio.disposition import ascii_fallback, content_disposition

# RFC 8187 attr-char, or a %XX pct-encoded octet.
EXT_VALUE = re.compile(r"UTF-8''(?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})*")
HEADER = re.compile(
    rf'(attachment|inline); filename="([ !#-\[\]-~]*)"; filename\*=({EXT_VALUE.pattern})'
)

TRICKY_NAMES = [
    "report.pdf",
    "naïve résumé €.pdf",
    "中文.mp4",
    'say "hi".txt',
    "back\\slash.txt",
    "100%.txt",
    "%41%42.txt",
    "line\nbreak.txt",
    "carriage\rreturn.txt",
    "evil\r\nSet-Cookie: a=b.txt",
    "tab\there.txt",
    "nul\x00byte.txt",
    "del\x7f.txt",
    "semi;colon=equals,comma.txt",
    "quote'apostrophe.txt",
    "ﬁle.txt",  # ligature: NFKD turns it into "fi"
    "\uff02fullwidth\uff02.txt",  # NFKD gives '"', which must not end the quoted string
    "\uff3cfullwidth\uff05.txt",  # fullwidth backslash and percent
    "emoji 🎬.mkv",
    "Ωmega.bin",
    "",
    " ",
    "..",
    os.fsdecode(b"caf\xe9.txt"),  # invalid UTF-8 -> lone surrogate U+DCE9
    os.fsdecode(b"\xff\xfe\xfd"),
    "mixed \udcc3\u00e9.txt",
    "a" * 300 + ".txt",
]


def parse(value: str) -> tuple[str, str, str]:
    match = HEADER.fullmatch(value)
    assert match is not None, value
    kind, fallback, ext_value = match.groups()
    return kind, fallback, ext_value


def test_plain_ascii_name_is_the_same_in_both_parameters() -> None:
    assert content_disposition("report.pdf") == (
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    )


def test_attachment_is_the_default() -> None:
    assert content_disposition("a.mp4").startswith("attachment; ")


def test_inline_when_asked() -> None:
    assert content_disposition("a.mp4", inline=True) == (
        "inline; filename=\"a.mp4\"; filename*=UTF-8''a.mp4"
    )


def test_accented_name_falls_back_to_unaccented_ascii() -> None:
    assert content_disposition("naïve résumé €.pdf") == (
        'attachment; filename="naive resume _.pdf"; '
        "filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9%20%E2%82%AC.pdf"
    )


def test_cjk_name_keeps_its_extension_in_the_fallback() -> None:
    assert content_disposition("中文.mp4") == (
        "attachment; filename=\"__.mp4\"; filename*=UTF-8''%E4%B8%AD%E6%96%87.mp4"
    )


def test_quotes_backslashes_and_percent_are_replaced_in_the_fallback() -> None:
    _, fallback, ext_value = parse(content_disposition('a"b\\c%d.txt'))
    assert fallback == "a_b_c_d.txt"
    assert ext_value == "UTF-8''a%22b%5Cc%25d.txt"


def test_newlines_never_reach_the_header() -> None:
    value = content_disposition("evil\r\nSet-Cookie: a=b.txt")
    assert "\r" not in value
    assert "\n" not in value
    _, fallback, ext_value = parse(value)
    assert fallback == "evil__Set-Cookie: a=b.txt"
    assert ext_value == "UTF-8''evil%0D%0ASet-Cookie%3A%20a%3Db.txt"


def test_lone_surrogate_from_undecodable_bytes_is_made_ascii() -> None:
    name = os.fsdecode(b"caf\xe9.txt")
    assert name == "caf\udce9.txt"
    _, fallback, ext_value = parse(content_disposition(name))
    assert fallback == "caf_.txt"
    assert unquote(ext_value.removeprefix("UTF-8''"), errors="strict").endswith(".txt")


def test_empty_name_falls_back_to_download() -> None:
    assert ascii_fallback("") == "download"


def test_fallback_drops_combining_marks() -> None:
    assert ascii_fallback("e\u0301te\u0301") == "ete"


def test_fallback_uses_compatibility_decomposition() -> None:
    assert ascii_fallback("ﬁle") == "file"


def test_fullwidth_quote_decomposing_to_a_quote_is_replaced() -> None:
    assert ascii_fallback("\uff02x\uff02") == "_x_"


@pytest.mark.parametrize("name", TRICKY_NAMES)
@pytest.mark.parametrize("inline", [False, True])
def test_header_is_one_line_of_printable_ascii(name: str, inline: bool) -> None:
    value = content_disposition(name, inline=inline)
    assert value.isascii()
    assert value.isprintable()
    assert "\r" not in value
    assert "\n" not in value
    kind, _, _ = parse(value)
    assert kind == ("inline" if inline else "attachment")


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_fallback_avoids_quote_backslash_and_percent(name: str) -> None:
    fallback = ascii_fallback(name)
    assert fallback
    assert all(" " <= char <= "~" for char in fallback)
    assert not set(fallback) & set('"\\%')


def has_surrogate(name: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in name)


@pytest.mark.parametrize("name", [name for name in TRICKY_NAMES if not has_surrogate(name)])
def test_extended_filename_decodes_back_to_the_name(name: str) -> None:
    _, _, ext_value = parse(content_disposition(name))
    assert unquote(ext_value.removeprefix("UTF-8''"), encoding="utf-8", errors="strict") == name


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_extended_filename_is_valid_utf8(name: str) -> None:
    _, _, ext_value = parse(content_disposition(name))
    unquote_to_bytes(ext_value.removeprefix("UTF-8''")).decode("utf-8")  # must not raise


def reference(name: str, inline: bool) -> str:
    """The header as first written, with ``urllib.parse.quote`` and a per-character
    fallback: the translation tables must give the same value for every name."""
    chars = []
    for char in unicodedata.normalize("NFKD", name):
        if not unicodedata.combining(char):
            chars.append(char if " " <= char <= "~" and char not in '"\\%' else "_")
    encoded = quote(name.encode("utf-8", "replace"), safe="!#$&+-.^_`|~")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{''.join(chars) or 'download'}\"; filename*=UTF-8''{encoded}"


@given(st.text(), st.booleans())
@example(os.fsdecode(b"bad\xff\xfe.bin"), False)  # undecodable bytes, as os.listdir gives them
@example("".join(map(chr, range(256))), True)
def test_the_header_is_the_reference_one_for_any_name(name: str, inline: bool) -> None:
    content_disposition.cache_clear()
    assert content_disposition(name, inline=inline) == reference(name, inline)
