"""The offload decision (service.sansio.offload), the trusted-proxy middleware and the
offload settings, without servers."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from config import Settings, SettingsError
from deploy.render import NGINX_OFFLOAD_TEMPLATE
from service.sansio import Conditions, Policy, Representation, Span, plan_response
from service.sansio.offload import (
    MAX_LINKS,
    DeliveryReport,
    Location,
    RequestFields,
    accel_target,
    carried_links,
    choose_location,
    nginx_range_spans,
    parse_report,
)
from service.web.forwarded import PEER_KEY, TrustedProxy

SIZE = 1000
REP = Representation("file.bin", SIZE, 1_704_164_645 * 10**9)
NOW = 1_800_000_000


def spans(*pairs: tuple[int, int]) -> tuple[Span, ...]:
    return tuple(Span(start, stop) for start, stop in pairs)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", spans((0, 10))),
        ("Bytes=0-9", spans((0, 10))),
        ("bytes= 0 - 9 , 20-29", spans((0, 10), (20, 30))),
        ("bytes=-100", spans((900, 1000))),
        ("bytes=-2000", spans((0, 1000))),
        ("bytes=990-", spans((990, 1000))),
        ("bytes=0-5000", spans((0, 1000))),
        ("bytes=0-9,5000-", spans((0, 10))),
        ("bytes=5,9", None),  # syntax: 416 in nginx
        ("bytes=0-9,,20-29", None),  # empty element: 416 in nginx
        ("bytes=9-0", None),  # nothing satisfiable left: 416
        ("bytes=-0", None),
        ("bytes=1000-", None),
        ("bytes=99999999999999999999-", None),  # past off_t: 416
        ("bytes=0-999,0-999", None),  # adds up to more than the file: 200
        ("bytes =0-9", None),  # no "bytes=" prefix: nginx ignores Range
        ("items=0-9", None),
        ("bytes=", None),
        (None, None),
    ],
)
def test_the_model_of_nginx_range_parsing(header: str | None, expected: object) -> None:
    assert nginx_range_spans(header, SIZE) == expected


def location(method: str = "GET", **headers: str) -> Location | None:
    conditions = Conditions(
        range=headers.get("range"),
        if_range=headers.get("if_range"),
        if_match=headers.get("if_match"),
        if_none_match=headers.get("if_none_match"),
        if_modified_since=headers.get("if_modified_since"),
        if_unmodified_since=headers.get("if_unmodified_since"),
    )
    plan = plan_response(method, conditions, REP, Policy(), NOW, lambda: "b" * 20)
    fields = dict(plan.headers)
    return choose_location(
        plan,
        RequestFields(
            headers.get("range"),
            headers.get("if_range"),
            headers.get("if_match"),
            headers.get("if_unmodified_since"),
        ),
        SIZE,
        fields.get("ETag", ""),
        fields.get("Last-Modified", ""),
    )


ETAG = str(REP.etag)
LM = "Tue, 02 Jan 2024 03:04:05 GMT"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, Location.FULL),
        ({"range": "bytes=0-9"}, Location.RANGES),
        ({"range": "bytes=0-9,500-509"}, Location.RANGES),
        ({"range": "bytes=0-9,20-29"}, None),  # the app coalesces, nginx would not
        ({"range": "bytes=abc"}, Location.FULL),  # ignored by the app: nginx must too
        ({"range": "bytes=0-9", "if_range": ETAG}, Location.RANGES),
        ({"range": "bytes=0-9", "if_range": LM}, Location.RANGES),
        ({"range": "bytes=0-9", "if_range": '"stale"'}, Location.FULL),
        ({"range": "bytes=0-9", "if_range": "Tuesday, 02-Jan-24 03:04:05 GMT"}, None),
        ({"range": "bytes=5000-"}, None),  # 416 from the app
        ({"if_none_match": ETAG}, None),  # 304 from the app
        ({"if_match": ETAG}, None),  # nginx would compare it with no ETag: 412
        ({"if_match": "*"}, Location.FULL),
        ({"if_unmodified_since": LM}, None),
        ({"if_modified_since": "Mon, 01 Jan 2024 00:00:00 GMT"}, Location.FULL),
    ],
)
def test_only_answers_nginx_sends_unchanged_are_offloaded(
    headers: dict[str, str], expected: Location | None
) -> None:
    assert location(**headers) is expected


def test_head_is_answered_by_the_app() -> None:
    assert location("HEAD") is None


def test_the_redirect_target_is_percent_encoded_below_the_internal_prefix() -> None:
    assert accel_target(Location.FULL, "a dir/ü?#%.bin") == (
        "/_offload/full/a%20dir/%C3%BC%3F%23%25.bin"
    )
    assert accel_target(Location.RANGES, "x.bin") == "/_offload/ranges/x.bin"


def peer_and_client(proxy: TrustedProxy, peer: str, real_ip: str | None) -> tuple[str, str]:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return []

    proxy.app = app
    environ = {"REMOTE_ADDR": peer}
    if real_ip is not None:
        environ["HTTP_X_REAL_IP"] = real_ip
    proxy(environ, lambda *args: None)
    return seen[PEER_KEY], seen["REMOTE_ADDR"]


@pytest.mark.parametrize(
    ("peer", "real_ip", "client"),
    [
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("::ffff:127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("10.1.2.3", "2001:db8::1", "2001:db8::1"),
        ("127.0.0.1", "::ffff:198.51.100.2", "198.51.100.2"),
        ("127.0.0.1", "not an address", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("192.0.2.50", "203.0.113.7", "192.0.2.50"),  # not a trusted proxy
        ("", "203.0.113.7", "203.0.113.7"),  # a unix socket peer
    ],
)
def test_x_real_ip_is_believed_only_from_trusted_proxies(
    peer: str, real_ip: str | None, client: str
) -> None:
    networks = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))
    proxy = TrustedProxy(lambda e, s: [], networks)
    assert peer_and_client(proxy, peer, real_ip) == (peer, client)


@pytest.mark.parametrize(
    ("peer", "proto", "scheme"),
    [
        ("127.0.0.1", "https", "https"),
        ("127.0.0.1", " HTTPS ", "https"),
        ("127.0.0.1", "http", "http"),
        ("127.0.0.1", "https, http", "http"),  # a list is not a scheme
        ("127.0.0.1", "ftp", "http"),
        ("127.0.0.1", None, "http"),
        ("192.0.2.50", "https", "http"),  # not a trusted proxy
    ],
)
def test_x_forwarded_proto_sets_the_scheme_only_from_trusted_proxies(
    peer: str, proto: str | None, scheme: str
) -> None:
    seen: dict[str, Any] = {}
    proxy = TrustedProxy(lambda e, s: seen.update(e) or [], (ipaddress.ip_network("127.0.0.1"),))
    environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http"}
    if proto is not None:
        environ["HTTP_X_FORWARDED_PROTO"] = proto
    proxy(environ, lambda *args: None)
    assert seen["wsgi.url_scheme"] == scheme


def test_offload_settings_are_parsed_and_checked(tmp_path: Path) -> None:
    root = {"DL_DATA_ROOT": str(tmp_path)}
    defaults = Settings.from_env(root)
    assert defaults.offload == "off"
    assert [str(n) for n in defaults.trusted_proxies] == ["127.0.0.1/32", "::1/128"]
    settings = Settings.from_env(
        {**root, "DL_OFFLOAD": "X-Accel", "DL_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16"}
    )
    assert settings.offload == "x-accel"
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.1/32", "192.168.0.0/16"]
    for variable, raw in (("DL_OFFLOAD", "sendfile"), ("DL_TRUSTED_PROXIES", "nginx.local")):
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env({**root, variable: raw})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (("full", "1048576", "OK", "12.345"), DeliveryReport("full", 1048576, True, 12.345)),
        (("multipart", "0", None, "0.000"), DeliveryReport("multipart", 0, False, 0.0)),
        (("range", "10", "", "3"), DeliveryReport("range", 10, False, 3.0)),
        (("listing", "10", "OK", "1.000"), None),  # not a kind nginx delivers
        ((None, "10", "OK", "1.000"), None),
        (("full", None, "OK", "1.000"), None),
        (("full", "-1", "OK", "1.000"), None),
        (("full", "1e3", "OK", "1.000"), None),
        (("full", "\u0661\u0660", "OK", "1.000"), None),  # Unicode digits are not nginx's
        (("full", "9" * 19, "OK", "1.000"), None),
        (("full", "10", "OK", None), None),
        (("full", "10", "OK", "1.2345"), None),
        (("full", "10", "OK", ".5"), None),
        (("full", "10", "OK", "nan"), None),
    ],
)
def test_nginx_delivery_reports_are_parsed_strictly(
    fields: tuple[str | None, ...], expected: DeliveryReport | None
) -> None:
    assert parse_report(*fields) == expected


def test_each_link_is_carried_in_a_numbered_field_for_nginx_to_copy_back() -> None:
    headers = (("ETag", '"x"'), ("Link", "<a>; rel=describedby"), ("Link", "<b>; rel=duplicate"))
    assert carried_links(headers) == (
        ("ETag", '"x"'),
        ("X-Offload-Link-1", "<a>; rel=describedby"),
        ("X-Offload-Link-2", "<b>; rel=duplicate"),
    )
    template = NGINX_OFFLOAD_TEMPLATE.read_text()
    for n in range(1, MAX_LINKS + 1):  # each location copies every one of them
        assert template.count(f"add_header Link $upstream_http_x_offload_link_{n};") == 2
    assert f"x_offload_link_{MAX_LINKS + 1}" not in template
    with pytest.raises(ValueError, match=f"more than {MAX_LINKS}"):
        carried_links((("Link", "<c>"),) * (MAX_LINKS + 1))


def test_offload_refuses_more_mirror_links_than_nginx_copies(tmp_path: Path) -> None:
    env = {"DL_DATA_ROOT": str(tmp_path), "DL_OFFLOAD": "x-accel"}
    mirrors = {"DL_MIRRORS": "http://b.example/files/"}
    assert Settings.from_env({**env, **mirrors}).mirror_links == MAX_LINKS - 1
    with pytest.raises(SettingsError, match=r"^DL_MIRROR_LINKS: 9; with DL_OFFLOAD"):
        Settings.from_env({**env, **mirrors, "DL_MIRROR_LINKS": "9"})
    assert Settings.from_env({**env, "DL_MIRROR_LINKS": "9"}).mirror_links == 9  # no mirrors
