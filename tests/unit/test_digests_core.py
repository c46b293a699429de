"""The pure digest core: preference parsing (RFC 9530 §4, RFC 3230 §4.3.1), field
formatting, the digest ETag, and how plans carry both tags of one version."""

from __future__ import annotations

import base64
import hashlib

import pytest

from service.sansio import Conditions, Policy, Representation, plan_response
from service.sansio.digests import (
    DigestChoice,
    choose,
    digest_etag,
    digest_fields,
    legacy_digest_value,
    parse_want_digest,
    parse_want_repr_digest,
    repr_digest_value,
)
from service.sansio.preconditions import (
    Validators,
    if_match_passes,
    if_none_match_passes,
    if_range_allows,
)
from service.sansio.validators import EntityTag, make_etag

CONTENT = b"hello, world\n"
SHA = hashlib.sha256(CONTENT).digest()
B64 = base64.b64encode(SHA).decode()
ARIA2 = "SHA-512;q=1, SHA-256;q=1, SHA;q=0.1"
NOW = 1_800_000_000
REP = Representation("a.txt", len(CONTENT), 1_700_000_000_000_000_000, SHA)
MTIME_TAG = f'"{REP.size:x}-{REP.mtime_ns:x}"'
DIGEST_TAG = str(digest_etag(SHA))


# --- Want-Repr-Digest (RFC 9530 §4, an RFC 8941 Dictionary) -------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("sha-256=1", {"sha-256": 1}),
        ("sha-512=10, sha-256=3", {"sha-512": 10, "sha-256": 3}),
        ("sha-512=8,sha-256=6, adler=0, sha=1", {"sha-512": 8, "sha-256": 6, "adler": 0, "sha": 1}),
        ("sha-256=0", {"sha-256": 0}),
        ("sha-256=3;p=1", {"sha-256": 3}),
        ("sha-256=2, sha-256=0", {"sha-256": 0}),  # RFC 8941 §4.2.2: the last one wins
        ("sha-256", {}),  # Boolean true, not an Integer preference
        ("sha-256=11", {}),  # outside 0-10: that member only is dropped
        ('sha-256="x"', {}),
        ("", {}),
    ],
)
def test_want_repr_digest_parses_as_a_dictionary(value: str, parsed: dict[str, int]) -> None:
    assert parse_want_repr_digest(value) == parsed


@pytest.mark.parametrize("value", ["SHA-256=1", "sha-256=1,", ",sha-256=1", "1sha=2", "a b=1"])
def test_a_malformed_want_repr_digest_is_ignored_whole(value: str) -> None:
    assert parse_want_repr_digest(value) is None


# --- Want-Digest (RFC 3230 §4.3.1) -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (ARIA2, {"sha-512": 1.0, "sha-256": 1.0, "sha": 0.1}),
        ("sha-256", {"sha-256": 1.0}),
        ("SHA-256;q=0", {"sha-256": 0.0}),
        ("SHA-256 ; Q=0.5", {"sha-256": 0.5}),
        ("MD5;q=0.3, SHA-256;q=1.000", {"md5": 0.3, "sha-256": 1.0}),
        ("SHA-256;q=2, md5", {"md5": 1.0}),  # a bad qvalue drops that element only
        ("SHA-256;x=1", {}),
        (" , ", {}),
    ],
)
def test_want_digest_lists_algorithms_with_q(value: str, parsed: dict[str, float]) -> None:
    assert parse_want_digest(value) == parsed


# --- which fields go out -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("want_digest", "want_repr_digest", "choice"),
    [
        (None, None, DigestChoice(repr_digest=True, legacy_digest=False)),
        (ARIA2, None, DigestChoice(repr_digest=True, legacy_digest=True)),
        ("sha-256", None, DigestChoice(True, True)),
        ("SHA-256;q=0", None, DigestChoice(True, False)),
        ("SHA-512, MD5", None, DigestChoice(True, False)),  # never claim what we lack
        (None, "sha-256=0", DigestChoice(False, False)),  # "not acceptable"
        (None, "sha-512=10", DigestChoice(True, False)),  # a hint: sha-256 is what we have
        (None, "sha-512=10, sha-256=1", DigestChoice(True, False)),
        (None, "SHA-256=0", DigestChoice(True, False)),  # malformed: as if absent
        (ARIA2, "sha-256=0", DigestChoice(False, True)),
    ],
)
def test_the_choice_follows_the_preferences(
    want_digest: str | None, want_repr_digest: str | None, choice: DigestChoice
) -> None:
    assert choose(want_digest, want_repr_digest) == choice


def test_fields_are_a_byte_sequence_and_the_legacy_form() -> None:
    assert repr_digest_value(SHA) == f"sha-256=:{B64}:"
    assert legacy_digest_value(SHA) == f"SHA-256={B64}"
    assert digest_fields(SHA, DigestChoice(True, True)) == (
        ("Repr-Digest", f"sha-256=:{B64}:"),
        ("Digest", f"SHA-256={B64}"),
    )
    assert digest_fields(SHA, DigestChoice(False, False)) == ()


def test_the_digest_etag_is_strong_and_names_the_content_only() -> None:
    tag = digest_etag(SHA)
    assert not tag.weak
    assert tag.opaque == "sha256-" + base64.urlsafe_b64encode(SHA).decode().rstrip("=")
    assert '"' not in tag.opaque
    assert "," not in tag.opaque
    assert digest_etag(hashlib.sha256(b"other").digest()) != tag


# --- plans -------------------------------------------------------------------------------


def plan(
    method: str = "GET",
    rep: Representation = REP,
    digest_etag_policy: bool = False,
    **conditions: str,
) -> dict[str, str]:
    result = plan_response(
        method, Conditions(**conditions), rep, Policy(digest_etag=digest_etag_policy), NOW
    )
    return {"status": str(result.status), **dict(result.headers)}


@pytest.mark.parametrize(
    ("method", "conditions", "status"),
    [
        ("GET", {}, "200"),
        ("HEAD", {}, "200"),
        ("GET", {"range": "bytes=0-0"}, "206"),
        ("HEAD", {"range": "bytes=-3"}, "206"),
        ("GET", {"range": "bytes=0-0,5-6"}, "206"),
        ("GET", {"if_none_match": MTIME_TAG}, "304"),
    ],
)
def test_a_known_digest_goes_on_200_206_head_and_304(
    method: str, conditions: dict[str, str], status: str
) -> None:
    headers = plan(method, **conditions)
    assert headers["status"] == status
    # RFC 9530 §3: the whole representation's digest, also on a partial response.
    assert headers["Repr-Digest"] == f"sha-256=:{B64}:"
    assert "Digest" not in headers


def test_want_digest_adds_the_legacy_field() -> None:
    headers = plan(want_digest=ARIA2, range="bytes=0-4")
    assert headers["Digest"] == f"SHA-256={B64}"
    assert headers["Repr-Digest"] == f"sha-256=:{B64}:"


@pytest.mark.parametrize(
    "conditions", [{"if_match": '"other"'}, {"range": "bytes=999-"}], ids=["412", "416"]
)
def test_errors_carry_no_digest(conditions: dict[str, str]) -> None:
    headers = plan(want_digest=ARIA2, **conditions)
    assert "Repr-Digest" not in headers
    assert "Digest" not in headers


def test_an_unknown_digest_sends_no_field_and_the_mtime_tag() -> None:
    rep = Representation(REP.name, REP.size, REP.mtime_ns)
    headers = plan(rep=rep, digest_etag_policy=True, want_digest=ARIA2)
    assert "Repr-Digest" not in headers
    assert "Digest" not in headers
    assert headers["ETag"] == MTIME_TAG


@pytest.mark.parametrize(("digest_policy", "sent"), [(False, MTIME_TAG), (True, DIGEST_TAG)])
def test_the_etag_follows_the_policy_once_the_digest_is_known(
    digest_policy: bool, sent: str
) -> None:
    assert plan(digest_etag_policy=digest_policy)["ETag"] == sent


# §8.8.1: both tags are strong validators of exactly these bytes. A download that began
# while the digest was unknown resumes with the size-mtime tag after it became known.
@pytest.mark.parametrize("digest_policy", [False, True])
@pytest.mark.parametrize("tag", [MTIME_TAG, DIGEST_TAG])
def test_either_tag_of_this_version_is_accepted(digest_policy: bool, tag: str) -> None:
    assert plan(digest_etag_policy=digest_policy, range="bytes=0-4", if_range=tag)["status"] == (
        "206"
    )
    assert plan(digest_etag_policy=digest_policy, if_match=tag)["status"] == "200"
    assert plan(digest_etag_policy=digest_policy, if_none_match=tag)["status"] == "304"
    weak = plan(digest_etag_policy=digest_policy, if_none_match="W/" + tag)
    assert weak["status"] == "304"


def test_the_digest_tag_of_other_bytes_matches_nothing() -> None:
    other = str(digest_etag(hashlib.sha256(b"other bytes").digest()))
    assert plan(digest_etag_policy=True, range="bytes=0-4", if_range=other)["status"] == "200"
    assert plan(digest_etag_policy=True, if_match=other)["status"] == "412"
    assert plan(digest_etag_policy=True, if_none_match=other)["status"] == "200"


def test_without_a_known_digest_the_digest_tag_is_not_accepted() -> None:
    rep = Representation(REP.name, REP.size, REP.mtime_ns)
    assert plan(rep=rep, if_match=DIGEST_TAG)["status"] == "412"
    assert plan(rep=rep, range="bytes=0-4", if_range=DIGEST_TAG)["status"] == "200"


def test_validators_match_alternatives_as_the_primary_tag() -> None:
    primary, other = make_etag(5, 7), EntityTag("sha256-x")
    validators = Validators(primary, 0, NOW, (other,))
    assert validators.etags == (primary, other)
    assert if_match_passes('"sha256-x"', validators)
    assert not if_match_passes('W/"sha256-x"', validators)  # If-Match is strong (§13.1.1)
    assert not if_none_match_passes('W/"sha256-x"', validators)  # weak compare (§13.1.2)
    assert if_range_allows('"sha256-x"', validators)
    assert not if_range_allows('W/"sha256-x"', validators)  # §13.1.5: strong only
    assert not if_range_allows('"5-7", "sha256-x"', validators)  # one tag, not a list
