"""Signed, expiring links (nginx ``secure_link`` style): HMAC-SHA256 over a URL path, an
expiry and optionally a client address, compared in constant time.

Pure: no Flask, no I/O, no clock (the caller passes ``now``). The first key signs and
every key verifies, so keys rotate without breaking the links already handed out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import Enum

from service.sansio.addresses import parse_address

#: The query parameters of a signed link: ``?expires=<unix seconds>&signature=<mac>``.
EXPIRES = "expires"
SIGNATURE = "signature"

# One spelling per link: no sign, no leading zeros, at most 12 digits (year 33658).
_EXPIRES_TEXT = re.compile(r"0|[1-9][0-9]{0,11}")
MAX_EXPIRES = 10**12 - 1
# 32 MAC bytes in URL-safe base64 without padding; anything else was never issued.
_SIGNATURE_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")
# A client address is one line of printable ASCII (it precedes the path in the message).
_CLIENT_TEXT = re.compile(r"[\x21-\x7e]+")


class Verdict(Enum):
    """What :meth:`Signer.verify` found; only ``VALID`` lets a request through."""

    VALID = "valid"
    MISSING = "missing"  # no expires or no signature parameter
    MALFORMED = "malformed"  # a parameter or the client address is not a form we issue
    FORGED = "forged"  # no key produces this signature for this path, expiry and client
    EXPIRED = "expired"  # genuine, but ``now`` has reached ``expires``


def canonical_client(address: str) -> str:
    """The spelling an address is signed in, so ``::1`` and ``0:0::1`` are one client.

    IP addresses take ``ipaddress``'s compressed form, and an IPv4-mapped IPv6 address
    (``::ffff:192.0.2.1``, as a dual-stack listener reports IPv4 peers) its IPv4 form;
    anything else is kept as given.
    """
    ip = parse_address(address)
    return address if ip is None else str(ip)


def canonical_message(path: str, expires: int, client: str | None = None) -> bytes:
    """``"{expires}\\n{client}\\n{path}"`` in UTF-8: the bytes the MAC covers.

    ``path`` is the decoded URL path under ``/files/`` (``sub/ü.txt``; ``sub/`` for a
    folder's listing, empty for the root's), so every percent-encoding of one name is
    one message. It comes last: whatever it contains cannot shift the fields before it.
    ``client`` is empty for a link that any client may use.
    """
    if client is not None:
        client = canonical_client(client)
        if not _CLIENT_TEXT.fullmatch(client):
            raise ValueError("a client address must be non-empty printable ASCII")
    if not 0 <= expires <= MAX_EXPIRES:
        raise ValueError(f"expires must be within 0..{MAX_EXPIRES}")
    text = f"{expires}\n{client or ''}\n{path}"
    # Werkzeug never hands over lone surrogates, but a str may hold them: sign, never crash.
    return text.encode("utf-8", "surrogatepass")


def _mac(key: bytes, message: bytes) -> bytes:
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs with ``keys[0]``; verifies against every key. The keys never appear in a repr."""

    keys: tuple[bytes, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys or not all(self.keys):
            raise ValueError("a Signer needs at least one key, and no key may be empty")

    def sign(self, path: str, expires: int, client: str | None = None) -> str:
        """The signature of ``path`` until ``expires``, bound to ``client`` unless None."""
        return _mac(self.keys[0], canonical_message(path, expires, client)).decode("ascii")

    def query(self, path: str, expires: int, client: str | None = None) -> str:
        """``expires=...&signature=...``, ready to follow a ``?``."""
        return f"{EXPIRES}={expires}&{SIGNATURE}={self.sign(path, expires, client)}"

    def verify(
        self,
        path: str,
        expires: str | None,
        signature: str | None,
        *,
        now: int,
        client: str | None = None,
    ) -> Verdict:
        """Check a link's ``expires`` and ``signature`` parameters, as received, for ``path``.

        Every key is tried, each with :func:`hmac.compare_digest`, and all of them every
        time, so neither the time taken nor the key that matched tells anything. The MAC
        is checked before the expiry: ``EXPIRED`` means a genuine link that ran out.
        """
        if expires is None or signature is None:
            return Verdict.MISSING
        if not _EXPIRES_TEXT.fullmatch(expires) or not _SIGNATURE_TEXT.fullmatch(signature):
            return Verdict.MALFORMED
        try:
            message = canonical_message(path, int(expires), client)
        except ValueError:
            return Verdict.MALFORMED
        given = signature.encode("ascii")
        matches = [hmac.compare_digest(given, _mac(key, message)) for key in self.keys]
        if not any(matches):
            return Verdict.FORGED
        if now >= int(expires):
            return Verdict.EXPIRED
        return Verdict.VALID
