"""Walk a served folder with GDAL's ``/vsicurl/``, as a GIS user's script would.

Run by Debian's Python, which has ``python3-gdal`` (the project's virtualenv has no GDAL):
``/usr/bin/python3 gdal_walk.py http://host:port/files``. GDAL reads the index page
(``VSIReadDirRecursive``), then asks each file's size (``VSIStatL``, a HEAD unless the
page gave it) and reads it whole (``VSIFReadL``, by ranges). Prints one JSON object:
each file's path as GDAL lists it (percent-encoded, as in the page's links) with its
size and the SHA-256 of the bytes read.
"""

from __future__ import annotations

import hashlib
import json
import sys

from osgeo import gdal

CHUNK = 1 << 20


def read_all(path: str) -> bytes:
    handle = gdal.VSIFOpenL(path, "rb")
    if handle is None:
        raise OSError(f"cannot open {path}")
    try:
        parts = []
        while True:
            part = gdal.VSIFReadL(1, CHUNK, handle)
            if not part:
                return b"".join(parts)
            parts.append(bytes(part))
    finally:
        gdal.VSIFCloseL(handle)


def main(url: str) -> None:
    gdal.UseExceptions()
    base = "/vsicurl/" + url
    found = {}
    for entry in gdal.ReadDirRecursive(base) or []:
        if entry.endswith("/"):
            continue  # a folder
        path = f"{base}/{entry}"
        stat = gdal.VSIStatL(path)
        found[entry] = [stat.size, hashlib.sha256(read_all(path)).hexdigest()]
    json.dump(found, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
