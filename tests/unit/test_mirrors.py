"""Mirrors and their RFC 6249 Link fields, from plain facts: service.sansio.mirrors."""

from __future__ import annotations

import pytest

from config import Settings, SettingsError
from service.sansio import Conditions, Policy, Representation, plan_response
from service.sansio.metalink import Source
from service.sansio.mirrors import (
    MAX_MIRRORS,
    Mirror,
    MirrorError,
    link_fields,
    parse_mirrors,
    sources,
)

NOW = 1_800_000_000
REP = Representation("a.iso", 1000, 1_700_000_000 * 10**9, b"\x01" * 32)
META4 = '</files/a.iso?format=meta4>; rel=describedby; type="application/metalink4+xml"'


def test_an_empty_setting_names_no_mirror() -> None:
    assert parse_mirrors("") == ()
    assert parse_mirrors("  ") == ()


def test_mirrors_without_pri_keep_their_order_after_this_node() -> None:
    assert parse_mirrors("http://b.example/files/, https://c.example:8443/dl/files") == (
        Mirror("http://b.example/files/", 2),
        Mirror("https://c.example:8443/dl/files/", 3),  # a base always ends in "/"
    )


def test_pri_and_geo_are_read_and_the_list_is_ordered_best_first() -> None:
    mirrors = parse_mirrors(
        "http://far.example/files/;pri=50;geo=JP, http://near.example/files/ ; geo=de ; pri=5,"
        "http://tie.example/files/;pri=5"
    )
    assert mirrors == (
        Mirror("http://near.example/files/", 5, "de"),
        Mirror("http://tie.example/files/", 5),  # a tie keeps the configured order
        Mirror("http://far.example/files/", 50, "jp"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ftp://b.example/files/", "is not an http"),
        ("b.example/files/", "is not an http"),
        ("http://user@b.example/files/", "is not an http"),
        ("http://b.example/files/?x=1", "is not an http"),
        ("http://b.example/files/#top", "is not an http"),
        ("http://b.example/fi les/", "is not an http"),
        ("http://b.example/<files>/", "is not an http"),
        ('http://b.example/"files"/', "is not an http"),
        ("http://b.example:0/files/", "port 0 is out of range"),
        ("http://b.example:70000/files/", "out of range"),
        ("http://b.example/files/;pri=0", "expected pri=1..999999"),
        ("http://b.example/files/;pri=1000000", "expected pri"),
        ("http://b.example/files/;pri=x", "expected pri"),
        ("http://b.example/files/;geo=deu", "expected pri"),
        ("http://b.example/files/;depth=2", "expected pri"),
        ("http://b.example/files/,", "mirror 2: '' is not"),
        ("http://b.example/files, http://b.example/files/", "mirror 2 repeats mirror 1"),
    ],
)
def test_a_bad_entry_is_refused_naming_it(text: str, message: str) -> None:
    with pytest.raises(MirrorError, match=message):
        parse_mirrors(text)


def test_at_most_max_mirrors_are_accepted() -> None:
    many = ",".join(f"http://m{n}.example/files/" for n in range(MAX_MIRRORS))
    assert len(parse_mirrors(many)) == MAX_MIRRORS
    with pytest.raises(MirrorError, match=f"at most {MAX_MIRRORS}"):
        parse_mirrors(many + ",http://one-more.example/files/")


def test_settings_read_dl_mirrors_and_fail_naming_the_variable(tmp_path: object) -> None:
    env = {"DL_DATA_ROOT": str(tmp_path), "DL_MIRRORS": "http://b.example/files/;pri=3"}
    settings = Settings.from_env({**env, "DL_MIRROR_LINKS": "2"})
    assert settings.mirrors == (Mirror("http://b.example/files/", 3),)
    assert settings.mirror_links == 2
    with pytest.raises(SettingsError, match=r"^DL_MIRRORS: mirror 1: "):
        Settings.from_env({**env, "DL_MIRRORS": "b.example"})
    with pytest.raises(SettingsError, match=r"^DL_MIRROR_LINKS: "):
        Settings.from_env({**env, "DL_MIRROR_LINKS": str(MAX_MIRRORS + 1)})


def test_link_fields_name_the_metalink_then_each_mirror_one_per_line() -> None:
    mirrors = parse_mirrors("http://b.example/files/;geo=de, http://c.example/pub/")
    assert link_fields("/files/a%20b.iso?format=meta4", mirrors, "a%20b.iso", "", 8) == (
        (
            "Link",
            '</files/a%20b.iso?format=meta4>; rel=describedby; type="application/metalink4+xml"',
        ),
        ("Link", "<http://b.example/files/a%20b.iso>; rel=duplicate; pri=2; geo=de"),
        ("Link", "<http://c.example/pub/a%20b.iso>; rel=duplicate; pri=3"),
    )


def test_link_fields_keep_the_best_mirrors_up_to_the_limit_and_carry_the_query() -> None:
    mirrors = parse_mirrors("http://b.example/files/;pri=9, http://c.example/files/;pri=4")
    fields = link_fields(None, mirrors, "x/y.bin", "expires=9&signature=s", 1)
    assert fields == (
        ("Link", "<http://c.example/files/x/y.bin?expires=9&signature=s>; rel=duplicate; pri=4"),
    )
    assert link_fields(None, mirrors, "y.bin", "", 0) == ()
    assert link_fields(None, (), "y.bin", "", 8) == ()


def test_sources_list_this_node_first_and_every_mirror_after_it() -> None:
    mirrors = parse_mirrors("http://b.example/files/;geo=fr;pri=7")
    assert sources("http://a.example/files/d/f?sig=1", mirrors, "d/f", "sig=1") == [
        Source("http://a.example/files/d/f?sig=1", 1),
        Source("http://b.example/files/d/f?sig=1", 7, "fr"),
    ]


@pytest.mark.parametrize(
    ("method", "conditions", "status"),
    [
        ("GET", Conditions(), 200),
        ("HEAD", Conditions(), 200),
        ("GET", Conditions(range="bytes=0-9"), 206),
        ("GET", Conditions(range="bytes=0-9,20-29"), 206),
        ("HEAD", Conditions(range="bytes=0-9"), 206),
        ("GET", Conditions(if_none_match="*"), 304),
    ],
)
def test_the_plan_carries_the_links_on_every_answer_with_the_file(
    method: str, conditions: Conditions, status: int
) -> None:
    links = (("Link", META4),)
    plan = plan_response(method, conditions, REP, Policy(links=links), NOW)
    assert plan.status == status
    assert [value for name, value in plan.headers if name == "Link"] == [META4]


@pytest.mark.parametrize(
    ("conditions", "status"),
    [(Conditions(if_match='"other"'), 412), (Conditions(range="bytes=5000-"), 416)],
)
def test_answers_without_the_file_carry_no_links(conditions: Conditions, status: int) -> None:
    plan = plan_response("GET", conditions, REP, Policy(links=(("Link", META4),)), NOW)
    assert plan.status == status
    assert "Link" not in dict(plan.headers)
