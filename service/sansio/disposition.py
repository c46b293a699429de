"""``Content-Disposition`` with a file name (RFC 6266 §4, RFC 8187 §3.2).

Any name from disk, including CR, LF, quotes, backslashes and undecodable bytes, yields a
single-line, ASCII-only header value.
"""

from __future__ import annotations

import string
import unicodedata
from functools import lru_cache

# RFC 8187 §3.2.1 attr-char: ALPHA / DIGIT and these; every other octet is %XX.
_ATTR_CHAR = string.ascii_letters + string.digits + "!#$&+-.^_`|~"
# RFC 6266 Appendix D: avoid "%" and "\" in the fallback; '"' would end the string.
_FALLBACK_UNSAFE = set('"\\%')
#: The UTF-8 octets of a name (as latin-1 characters) to RFC 8187 value-chars.
_PERCENT_ENCODE = {octet: f"%{octet:02X}" for octet in range(256) if chr(octet) not in _ATTR_CHAR}
#: An ASCII name to its fallback: controls, DEL and the unsafe three become ``_``.
_ASCII_FALLBACK = {
    code: "_" for code in range(128) if not " " <= chr(code) <= "~" or chr(code) in _FALLBACK_UNSAFE
}


def ascii_fallback(name: str) -> str:
    """A printable-ASCII stand-in for ``name``: accents dropped, the rest as ``_``."""
    if name.isascii():  # NFKD leaves ASCII as it is, and nothing in it is combining
        return name.translate(_ASCII_FALLBACK) or "download"
    decomposed = unicodedata.normalize("NFKD", name)
    chars = []
    for char in decomposed:
        if unicodedata.combining(char):
            continue
        safe = " " <= char <= "~" and char not in _FALLBACK_UNSAFE
        chars.append(char if safe else "_")
    return "".join(chars) or "download"


@lru_cache(maxsize=4096)  # hot files repeat: this runs per request
def content_disposition(name: str, *, inline: bool = False) -> str:
    """``attachment`` (or ``inline``) with both ``filename`` and ``filename*``."""
    kind = "inline" if inline else "attachment"
    encoded = name.encode("utf-8", "replace").decode("latin-1").translate(_PERCENT_ENCODE)
    return f"{kind}; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{encoded}"
