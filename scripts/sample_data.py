"""Create the data folder with a small sample when it is missing or empty.

Usage: python scripts/sample_data.py [FOLDER]  (default: $DL_DATA_ROOT or ./data)
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

SAMPLE_SIZE = 4 * 1024 * 1024


def write_sample(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    (folder / "README.txt").write_text(
        "Files in this folder are served at /files/. Drop your own files here.\n"
    )
    # Deterministic bytes, so the sample's checksum is the same everywhere.
    block = hashlib.sha256(b"sample").digest() * 2048
    with open(folder / "sample-4MiB.bin", "wb") as out:
        for _ in range(SAMPLE_SIZE // len(block)):
            out.write(block)
    print(f"created a sample in {folder}/", file=sys.stderr)


if __name__ == "__main__":
    default = os.environ.get("DL_DATA_ROOT", "data")
    write_sample(Path(sys.argv[1] if len(sys.argv) > 1 else default))
