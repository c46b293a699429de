"""service.sansio.signing: HMAC-SHA256 links over path, expiry and client, with key rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from service.sansio import signing
from service.sansio.signing import EXPIRES, SIGNATURE, Signer, Verdict, canonical_message

OLD = b"old-key-0123456789abcdef0123456789"
NEW = b"new-key-0123456789abcdef0123456789"
NOW = 1_700_000_000
LATER = NOW + 3600
SIGNER = Signer((NEW,))


def verify(
    signer: Signer, path: str, expires: int | str, signature: str, *, now: int = NOW, **kw: str
) -> Verdict:
    return signer.verify(path, str(expires), signature, now=now, **kw)


def test_a_signed_path_verifies_and_the_same_signature_on_another_path_does_not() -> None:
    signature = SIGNER.sign("iso/debian.iso", LATER)
    assert verify(SIGNER, "iso/debian.iso", LATER, signature) is Verdict.VALID
    assert verify(SIGNER, "iso/debian.isO", LATER, signature) is Verdict.FORGED


def test_the_signature_is_hmac_sha256_of_the_documented_message_in_unpadded_base64url() -> None:
    """README documents the message, so other systems can mint links: keep it exact."""
    expected = hmac.new(NEW, b"1700003600\n\nsub/a b.txt", hashlib.sha256).digest()
    signature = SIGNER.sign("sub/a b.txt", LATER)
    assert signature == base64.urlsafe_b64encode(expected).decode().rstrip("=")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", signature)
    bound = hmac.new(NEW, b"1700003600\n192.0.2.7\nsub/a b.txt", hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(SIGNER.sign("sub/a b.txt", LATER, "192.0.2.7") + "=") == bound
    assert (EXPIRES, SIGNATURE) == ("expires", "signature")
    assert SIGNER.query("sub/a b.txt", LATER) == f"expires={LATER}&signature={signature}"


@pytest.mark.parametrize(
    "path",
    ["a.txt", "sub/a.txt", "a.txt/", "/a.txt", "A.txt", "a.txt ", "a.tx", "a.txt\x00", ""],
)
def test_a_tampered_path_is_forged(path: str) -> None:
    signature = SIGNER.sign("a.txt", LATER)
    assert verify(SIGNER, "a.txt", LATER, signature) is Verdict.VALID
    if path != "a.txt":
        assert verify(SIGNER, path, LATER, signature) is Verdict.FORGED


@pytest.mark.parametrize("expires", [LATER + 1, LATER - 1, LATER * 10, NOW + 1, 999_999_999_999])
def test_a_tampered_expiry_is_forged(expires: int) -> None:
    signature = SIGNER.sign("a.txt", LATER)
    assert verify(SIGNER, "a.txt", expires, signature) is Verdict.FORGED


def _flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def test_changing_any_character_of_the_signature_makes_it_forged() -> None:
    signature = SIGNER.sign("a.txt", LATER)
    for index in range(len(signature)):
        assert verify(SIGNER, "a.txt", LATER, _flip(signature, index)) is Verdict.FORGED


def test_a_signature_from_an_unknown_key_is_forged() -> None:
    signature = Signer((OLD,)).sign("a.txt", LATER)
    assert verify(Signer((OLD,)), "a.txt", LATER, signature) is Verdict.VALID
    assert verify(SIGNER, "a.txt", LATER, signature) is Verdict.FORGED


@pytest.mark.parametrize(
    ("expires", "signature"),
    [(None, "x" * 43), (str(LATER), None), (None, None)],
)
def test_a_link_without_both_parameters_is_missing(
    expires: str | None, signature: str | None
) -> None:
    assert SIGNER.verify("a.txt", expires, signature, now=NOW) is Verdict.MISSING


@pytest.mark.parametrize(
    "expires",
    [
        "",
        "0" + str(LATER),
        "+" + str(LATER),
        "-1",
        f" {LATER}",
        f"{LATER}.0",
        "1e10",
        "٣٣",
        "9" * 13,
    ],
)
def test_an_expiry_not_in_its_one_spelling_is_malformed(expires: str) -> None:
    """Leading zeros or a sign would give one link several URLs; none of them verifies."""
    signature = SIGNER.sign("a.txt", LATER)
    assert SIGNER.verify("a.txt", str(LATER), signature, now=NOW) is Verdict.VALID
    assert SIGNER.verify("a.txt", expires, signature, now=NOW) is Verdict.MALFORMED


def test_a_signature_of_another_shape_is_malformed() -> None:
    signature = SIGNER.sign("a.txt", LATER)
    for variant in [
        "",
        signature[:-1],
        signature + "A",
        signature + "=",  # padded
        signature[:-1] + "+",  # the standard alphabet, not the URL-safe one
        signature[:-1] + "/",
        signature.encode().hex(),
        "é" * 43,
    ]:
        assert verify(SIGNER, "a.txt", LATER, variant) is Verdict.MALFORMED, variant


def test_a_link_is_valid_until_the_second_before_it_expires() -> None:
    signature = SIGNER.sign("a.txt", LATER)
    assert verify(SIGNER, "a.txt", LATER, signature, now=LATER - 1) is Verdict.VALID
    assert verify(SIGNER, "a.txt", LATER, signature, now=LATER) is Verdict.EXPIRED
    assert verify(SIGNER, "a.txt", LATER, signature, now=LATER + 86_400) is Verdict.EXPIRED


def test_an_expired_link_with_a_bad_signature_is_forged_not_expired() -> None:
    """EXPIRED is only said of genuine links: the MAC is checked first."""
    signature = _flip(SIGNER.sign("a.txt", NOW - 1), 0)
    assert verify(SIGNER, "a.txt", NOW - 1, signature) is Verdict.FORGED


# --- rotation ------------------------------------------------------------------------------


def test_after_rotation_the_new_key_signs_and_the_old_key_still_verifies() -> None:
    rotated = Signer((NEW, OLD))
    old_link = Signer((OLD,)).sign("a.txt", LATER)
    assert rotated.sign("a.txt", LATER) == Signer((NEW,)).sign("a.txt", LATER)
    assert rotated.sign("a.txt", LATER) != old_link
    assert verify(rotated, "a.txt", LATER, old_link) is Verdict.VALID
    assert verify(rotated, "a.txt", LATER, rotated.sign("a.txt", LATER)) is Verdict.VALID


def test_a_key_dropped_from_the_list_no_longer_verifies() -> None:
    old_link = Signer((OLD,)).sign("a.txt", LATER)
    assert verify(Signer((NEW, OLD)), "a.txt", LATER, old_link) is Verdict.VALID
    assert verify(Signer((NEW,)), "a.txt", LATER, old_link) is Verdict.FORGED


def test_every_key_is_compared_with_compare_digest_even_after_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Constant time: each candidate goes through hmac.compare_digest, never ``==``, and
    the loop does not stop at the first match (which would tell which key signed)."""
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    keys = (NEW, OLD, b"third-key-0123456789abcdef0123456")
    signer = Signer(keys)
    signature = signer.sign("a.txt", LATER)
    assert verify(signer, "a.txt", LATER, signature) is Verdict.VALID
    assert len(calls) == len(keys)
    assert all(given == signature.encode() for given, _ in calls)
    assert [expected for _, expected in calls] == [
        Signer((key,)).sign("a.txt", LATER).encode() for key in keys
    ]
    calls.clear()
    assert verify(signer, "a.txt", LATER, _flip(signature, 5)) is Verdict.FORGED
    assert len(calls) == len(keys)


# --- client binding ------------------------------------------------------------------------


def test_a_bound_link_verifies_only_for_its_client() -> None:
    signature = SIGNER.sign("a.txt", LATER, "192.0.2.7")
    assert verify(SIGNER, "a.txt", LATER, signature, client="192.0.2.7") is Verdict.VALID
    assert verify(SIGNER, "a.txt", LATER, signature, client="192.0.2.8") is Verdict.FORGED
    assert verify(SIGNER, "a.txt", LATER, signature) is Verdict.FORGED


def test_an_unbound_link_does_not_verify_where_clients_are_bound() -> None:
    signature = SIGNER.sign("a.txt", LATER)
    assert verify(SIGNER, "a.txt", LATER, signature) is Verdict.VALID
    assert verify(SIGNER, "a.txt", LATER, signature, client="192.0.2.7") is Verdict.FORGED


@pytest.mark.parametrize(
    ("signed_for", "seen_as"),
    [
        ("::1", "0:0:0:0:0:0:0:1"),
        ("2001:DB8::1", "2001:db8:0::1"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("192.0.2.7", "::ffff:c000:207"),
    ],
)
def test_one_address_in_different_spellings_is_one_client(signed_for: str, seen_as: str) -> None:
    signature = SIGNER.sign("a.txt", LATER, signed_for)
    assert verify(SIGNER, "a.txt", LATER, signature, client=seen_as) is Verdict.VALID
    assert verify(SIGNER, "a.txt", LATER, signature, client="192.0.2.99") is Verdict.FORGED


@pytest.mark.parametrize("client", ["", "192.0.2.7\nsub", "a b", "caf\u00e9"])
def test_a_client_address_that_is_not_one_printable_word_is_refused(client: str) -> None:
    """An empty address (a peer over a unix socket) cannot be bound to: fail closed."""
    with pytest.raises(ValueError, match="client address"):
        SIGNER.sign("a.txt", LATER, client)
    signature = SIGNER.sign("a.txt", LATER)
    assert verify(SIGNER, "a.txt", LATER, signature, client=client) is Verdict.MALFORMED


def test_a_newline_in_the_path_cannot_pose_as_a_client_field() -> None:
    """The path comes last in the message, so its content cannot shift the client field."""
    bound = canonical_message("x", LATER, "192.0.2.7")
    assert canonical_message("192.0.2.7\nx", LATER) != bound
    signature = SIGNER.sign("192.0.2.7\nx", LATER)
    assert verify(SIGNER, "x", LATER, signature, client="192.0.2.7") is Verdict.FORGED


# --- paths: percent-encoding and Unicode ---------------------------------------------------


def test_the_path_is_signed_decoded_so_its_encoded_spelling_is_another_path() -> None:
    """The view sees ``ü.txt`` for ``%C3%BC.txt`` and ``%c3%bc.txt`` alike; a literal
    ``%C3%BC.txt`` (sent as ``%25C3%25BC.txt``) is another name, with another signature."""
    signature = SIGNER.sign("ü.txt", LATER)
    assert verify(SIGNER, "ü.txt", LATER, signature) is Verdict.VALID
    for other in ["%C3%BC.txt", "%c3%bc.txt", "u\u0308.txt", "ü.txt/"]:
        assert verify(SIGNER, other, LATER, signature) is Verdict.FORGED, other


def test_composed_and_decomposed_unicode_are_different_names() -> None:
    """NFC and NFD spell different bytes on disk, hence different files: no normalising."""
    composed, decomposed = "caf\u00e9.txt", "cafe\u0301.txt"
    signature = SIGNER.sign(composed, LATER)
    assert verify(SIGNER, composed, LATER, signature) is Verdict.VALID
    assert verify(SIGNER, decomposed, LATER, signature) is Verdict.FORGED


def test_lone_surrogates_and_control_characters_are_signed_without_error() -> None:
    for path in ["bad\udcff.bin", "tab\there", "nul\x00", "\U0001f600/", "\ufffd"]:
        signature = SIGNER.sign(path, LATER)
        assert verify(SIGNER, path, LATER, signature) is Verdict.VALID


@given(path=st.text(), other=st.text(), expires=st.integers(NOW + 1, signing.MAX_EXPIRES))
def test_any_path_round_trips_and_no_other_path_shares_its_signature(
    path: str, other: str, expires: int
) -> None:
    assume(path != other)
    signature = SIGNER.sign(path, expires)
    assert SIGNER.verify(path, str(expires), signature, now=NOW) is Verdict.VALID
    assert SIGNER.verify(other, str(expires), signature, now=NOW) is Verdict.FORGED


# --- the signer itself ---------------------------------------------------------------------


def test_a_signer_needs_a_non_empty_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        Signer(())
    with pytest.raises(ValueError, match="no key may be empty"):
        Signer((NEW, b""))


def test_the_keys_never_appear_in_a_repr() -> None:
    assert "key-0123" not in repr(Signer((NEW, OLD)))


@pytest.mark.parametrize("expires", [-1, signing.MAX_EXPIRES + 1])
def test_an_expiry_outside_twelve_digits_cannot_be_signed(expires: int) -> None:
    with pytest.raises(ValueError, match="expires"):
        SIGNER.sign("a.txt", expires)
