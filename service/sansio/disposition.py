"""``Content-Disposition`` with a file name (RFC 6266 §4, RFC 8187 §3.2).

Any name from disk, including CR, LF, quotes, backslashes and undecodable bytes, yields a
single-line, ASCII-only header value.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from urllib.parse import quote

# RFC 8187 attr-char minus ALPHA / DIGIT, which ``quote`` always keeps.
_ATTR_CHAR_PUNCTUATION = "!#$&+-.^_`|~"
# RFC 6266 Appendix D: avoid "%" and "\" in the fallback; '"' would end the string.
_FALLBACK_UNSAFE = set('"\\%')


def ascii_fallback(name: str) -> str:
    """A printable-ASCII stand-in for ``name``: accents dropped, the rest as ``_``."""
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
    encoded = quote(name.encode("utf-8", "replace"), safe=_ATTR_CHAR_PUNCTUATION)
    return f"{kind}; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{encoded}"
