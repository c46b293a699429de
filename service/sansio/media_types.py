"""Content-Type from a file name, the same on every machine.

Uses only Python's built-in table (never the host's ``/etc/mime.types``), so replicas
agree. A compression suffix such as ``.gz`` names the type of the bytes we send; it is
never turned into a ``Content-Encoding``, which would make browsers decompress on the fly
and break range arithmetic.
"""

from __future__ import annotations

import mimetypes
from functools import lru_cache

DEFAULT = "application/octet-stream"

_TABLE = mimetypes.MimeTypes(filenames=())
_EXTRA = {
    ".7z": "application/x-7z-compressed",
    ".apk": "application/vnd.android.package-archive",
    ".deb": "application/vnd.debian.binary-package",
    ".dmg": "application/x-apple-diskimage",
    ".flac": "audio/flac",
    ".img": "application/octet-stream",
    ".iso": "application/x-iso9660-image",
    ".m4a": "audio/mp4",
    ".m4v": "video/mp4",
    ".meta4": "application/metalink4+xml",  # RFC 5854 §7
    ".mkv": "video/x-matroska",
    ".ogv": "video/ogg",
    ".opus": "audio/ogg",
    ".parquet": "application/vnd.apache.parquet",
    ".qcow2": "application/octet-stream",
    ".rar": "application/vnd.rar",
    ".rpm": "application/x-rpm",
    ".webm": "video/webm",
    ".zst": "application/zstd",
}
for _suffix, _type in _EXTRA.items():
    _TABLE.add_type(_type, _suffix)

# What mimetypes calls an "encoding" is, for a download, the type of the file itself.
_COMPRESSED = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}


@lru_cache(maxsize=4096)  # hot files repeat: this runs per request
def guess_type(name: str) -> str:
    # mimetypes takes a URL: a name such as "data:x,y.mp4" would be read as a data: URL
    # (text/plain). A leading "/" keeps it a path; the extension is all that counts.
    media_type, encoding = _TABLE.guess_type("/" + name, strict=False)
    if media_type is None and encoding is None:  # "ARCHIVE.GZ": suffixes are case-blind
        media_type, encoding = _TABLE.guess_type("/" + name.lower(), strict=False)
    if encoding is not None:
        return _COMPRESSED.get(encoding, DEFAULT)
    return media_type or DEFAULT
