"""``python -m service.sign PATH``: print a signed, expiring URL for a file or a listing.

Reads the signing key (the first of ``DL_SIGNING_KEY``), ``DL_SIGNING_BIND_CLIENT`` and
``DL_SIGNED_LINK_TTL`` like the server does; it needs no data root and never prints a key.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from config.settings import SettingsError, read_setting
from service.sansio.archive import FORMATS
from service.sansio.signing import MAX_EXPIRES
from service.web.links import make_signer

_EXAMPLES = """\
PATH is the URL path after /files/, unencoded: iso/debian 12.iso, or sub/ (with its
slash) for a folder's listing, whose entries then come signed until the same time, or
sub/?format=tar for the folder's archive (?format=tar alone for the root's).

examples:
  DL_SIGNING_KEY=... python -m service.sign iso/debian.iso --ttl 600
  python -m service.sign sub/ --base-url https://files.example.org
  python -m service.sign 'sub/?format=tar'
"""


#: The one path form with a query: a folder's archive (``sub/?format=tar``).
_ARCHIVE_PATH = re.compile(r"(?:.*/)?\?format=(?:" + "|".join(FORMATS) + ")")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service.sign",
        description="Print a signed, expiring URL for a file or folder listing.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", metavar="PATH", help="the path under /files/, unencoded")
    parser.add_argument(
        "--ttl", type=int, metavar="SECONDS", help="lifetime (default: DL_SIGNED_LINK_TTL)"
    )
    parser.add_argument(
        "--base-url",
        default="",
        metavar="URL",
        help="scheme, host and any mount prefix, e.g. https://files.example.org "
        "(default: print the path alone)",
    )
    parser.add_argument(
        "--client",
        metavar="ADDR",
        help="the only client address that may use the link (needs DL_SIGNING_BIND_CLIENT)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    now: int | None = None,
) -> int:
    """Print the URL; a bad argument or setting exits with status 2 and a message."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        keys = read_setting("signing_key", environ)
        bind_client = read_setting("signing_bind_client", environ)
        ttl = read_setting("signed_link_ttl", environ) if args.ttl is None else args.ttl
    except SettingsError as error:
        parser.error(str(error))
    signer = make_signer(keys)
    if signer is None:
        parser.error("DL_SIGNING_KEY is not set: there is no key to sign with")
    if args.path.startswith("/"):
        parser.error("PATH is the part of the URL after /files/, without a leading slash")
    if "?" in args.path and not _ARCHIVE_PATH.fullmatch(args.path):
        kinds = ", ".join(FORMATS)
        parser.error(f"PATH: only a folder's archive has a query: FOLDER/?format=({kinds})")
    if bind_client and args.client is None:
        parser.error("DL_SIGNING_BIND_CLIENT is on: pass --client ADDR")
    if not bind_client and args.client is not None:
        parser.error("--client needs DL_SIGNING_BIND_CLIENT on (the server would refuse it)")
    expires = (int(time.time()) if now is None else now) + ttl
    if ttl <= 0 or expires > MAX_EXPIRES:
        parser.error(f"--ttl: expected a positive number of seconds, got {ttl}")
    try:
        query = signer.query(args.path, expires, args.client)
    except ValueError as error:
        parser.error(f"--client: {error}")
    folder, mark, archive = args.path.partition("?")
    target = quote(folder) + (f"?{archive}&{query}" if mark else f"?{query}")
    print(f"{args.base_url.rstrip('/')}/files/{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
