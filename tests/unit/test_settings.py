"""Settings from DL_* variables: defaults, every cast, and failing fast naming the variable."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest

from config import Settings, SettingsError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def load(root: Path, **variables: str) -> Settings:
    return Settings.from_env({"DL_DATA_ROOT": str(root), **variables})


def test_defaults_apply_when_no_variable_is_set(root: Path) -> None:
    settings = load(root)
    assert settings.data_root == root.resolve()
    assert settings.bind == "127.0.0.1:8000"
    assert settings.workers == (os.cpu_count() or 1)
    assert settings.worker_connections == 1000
    assert settings.timeout == 30
    assert settings.graceful_timeout == 30
    assert settings.keepalive == 5
    assert settings.chunk_size == 256 * 1024
    assert settings.max_ranges == 16
    assert settings.cache_control == "no-cache"
    assert settings.inline is False
    assert settings.serve_hidden is False
    assert settings.allow_outside_symlinks is False
    assert settings.log_level == "info"
    assert settings.digests is True
    assert settings.digest_cache is None  # service.digests.default_cache_dirs()
    assert settings.etag == "mtime"


def test_the_default_data_root_is_data_relative_to_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).data_root == (tmp_path / "data").resolve()


def test_from_env_reads_os_environ_without_an_explicit_mapping(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DL_DATA_ROOT", str(root))
    monkeypatch.setenv("DL_MAX_RANGES", "3")
    settings = Settings.from_env()
    assert settings.data_root == root.resolve()
    assert settings.max_ranges == 3


def test_every_setting_has_a_parser_for_its_variable(root: Path) -> None:
    from config.settings import _PARSERS

    assert set(_PARSERS) == {spec.name for spec in fields(Settings)}


def test_variables_outside_the_dl_prefix_and_unknown_dl_names_are_ignored(root: Path) -> None:
    settings = load(root, WORKERS="x", DL_UNKNOWN="whatever")
    assert settings.workers == (os.cpu_count() or 1)


@pytest.mark.parametrize(
    ("variable", "attribute", "raw", "expected"),
    [
        ("DL_WORKERS", "workers", "4", 4),
        ("DL_WORKER_CONNECTIONS", "worker_connections", "2500", 2500),
        ("DL_TIMEOUT", "timeout", "90", 90),
        ("DL_GRACEFUL_TIMEOUT", "graceful_timeout", "0", 0),
        ("DL_KEEPALIVE", "keepalive", "1", 1),
        ("DL_CHUNK_SIZE", "chunk_size", "65536", 65536),
        ("DL_MAX_RANGES", "max_ranges", "1", 1),
        ("DL_CACHE_CONTROL", "cache_control", "public, max-age=3600", "public, max-age=3600"),
        ("DL_INLINE", "inline", "yes", True),
        ("DL_SERVE_HIDDEN", "serve_hidden", "on", True),
        ("DL_ALLOW_OUTSIDE_SYMLINKS", "allow_outside_symlinks", "1", True),
        ("DL_LOG_LEVEL", "log_level", "debug", "debug"),
        ("DL_BIND", "bind", "0.0.0.0:9000", "0.0.0.0:9000"),
        ("DL_DIGESTS", "digests", "0", False),
        ("DL_DIGEST_CACHE", "digest_cache", "/var/cache/dl", Path("/var/cache/dl")),
        ("DL_ETAG", "etag", "Digest", "digest"),
        ("DL_IO_THREADS", "io_threads", "32", 32),
        ("DL_IO_THREADS_PER_FILE", "io_threads_per_file", "4", 4),
        ("DL_READ_TIMEOUT", "read_timeout", "15", 15),
        ("DL_CORS_ORIGINS", "cors_origins", "*", ("*",)),
        ("DL_CORS_ORIGINS", "cors_origins", "", ()),
        (
            "DL_CORS_ORIGINS",
            "cors_origins",
            "https://b.example, HTTP://A.example:80",
            ("http://a.example", "https://b.example"),
        ),
        ("DL_CORS_MAX_AGE", "cors_max_age", "0", 0),
    ],
)
def test_each_variable_is_parsed_into_its_setting(
    root: Path, variable: str, attribute: str, raw: str, expected: object
) -> None:
    assert getattr(load(root, **{variable: raw}), attribute) == expected


def test_surrounding_whitespace_is_stripped_before_parsing(root: Path) -> None:
    settings = load(root, DL_WORKERS=" 3 ", DL_INLINE="\ttrue\n", DL_LOG_LEVEL=" error ")
    assert (settings.workers, settings.inline, settings.log_level) == (3, True, "error")


@pytest.mark.parametrize(
    ("variable", "low", "high"),
    [
        ("DL_WORKERS", 1, 256),
        ("DL_WORKER_CONNECTIONS", 1, 100_000),
        ("DL_TIMEOUT", 1, 3600),
        ("DL_GRACEFUL_TIMEOUT", 0, 86_400),
        ("DL_KEEPALIVE", 1, 3600),
        ("DL_CHUNK_SIZE", 4096, 16 * 1024 * 1024),
        ("DL_MAX_RANGES", 1, 1000),
        ("DL_IO_THREADS", 0, 1024),
        ("DL_IO_THREADS_PER_FILE", 0, 1024),
        ("DL_READ_TIMEOUT", 1, 86_400),
        ("DL_CORS_MAX_AGE", 0, 86_400),
    ],
)
def test_integers_are_accepted_at_their_bounds_and_refused_just_outside(
    root: Path, variable: str, low: int, high: int
) -> None:
    attribute = variable.removeprefix("DL_").lower()
    assert getattr(load(root, **{variable: str(low)}), attribute) == low
    assert getattr(load(root, **{variable: str(high)}), attribute) == high
    with pytest.raises(SettingsError, match=rf"^{variable}: .*outside"):
        load(root, **{variable: str(high + 1)})
    if low > 0:
        with pytest.raises(SettingsError, match=rf"^{variable}: .*outside"):
            load(root, **{variable: str(low - 1)})


@pytest.mark.parametrize("raw", ["", "-1", "+3", "1.5", "1e3", "0x10", "four", "1 2", "٣"])
def test_integers_must_be_plain_ascii_digits(root: Path, raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^DL_WORKERS: expected a whole number"):
        load(root, DL_WORKERS=raw)


def test_leading_zeros_are_a_plain_number(root: Path) -> None:
    assert load(root, DL_WORKERS="007").workers == 7


def test_an_integer_with_thousands_of_digits_is_a_settings_error_naming_the_variable(
    root: Path,
) -> None:
    # Python refuses int() of more than 4300 digits with a bare ValueError.
    with pytest.raises(SettingsError, match=r"^DL_CHUNK_SIZE: "):
        load(root, DL_CHUNK_SIZE="9" * 5000)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("yes", True),
        ("on", True),
        ("TRUE", True),
        ("Yes", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("OFF", False),
    ],
)
def test_booleans_accept_only_the_six_words_and_two_digits(
    root: Path, raw: str, expected: bool
) -> None:
    assert load(root, DL_INLINE=raw).inline is expected


@pytest.mark.parametrize("raw", ["", "2", "y", "n", "t", "f", "enabled", "none", "-1", "truee"])
def test_other_boolean_spellings_are_refused_naming_the_variable(root: Path, raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^DL_SERVE_HIDDEN: "):
        load(root, DL_SERVE_HIDDEN=raw)


@pytest.mark.parametrize(
    "raw",
    [
        "127.0.0.1:8000",
        "localhost:80",
        "0.0.0.0:65535",
        "files.example.org:8080",
        "[::1]:8000",
        "[::]:80",
        "[2001:db8::1]:443",
        "[::ffff:127.0.0.1]:8000",
        "unix:/run/download.sock",
        "unix:/tmp/a b.sock",
    ],
)
def test_bind_accepts_host_port_bracketed_ipv6_and_unix_sockets(root: Path, raw: str) -> None:
    assert load(root, DL_BIND=raw).bind == raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "8000",
        ":8000",
        "localhost",
        "localhost:",
        "localhost:http",
        "localhost:123456",
        "localhost:65536",
        "localhost:99999",
        "::1:8000",
        "[::1]",
        "[::1]8000",
        "[zz::1]:80",
        "host name:80",
        "unix:",
        "unix:relative.sock",
        "http://localhost:8000",
    ],
)
def test_bind_refuses_anything_else_naming_the_variable(root: Path, raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^DL_BIND: "):
        load(root, DL_BIND=raw)


@pytest.mark.parametrize(
    "raw", ["no-store", "public, max-age=3600", 'private, no-cache="Set-Cookie"', "~ !"]
)
def test_cache_control_accepts_printable_ascii(root: Path, raw: str) -> None:
    assert load(root, DL_CACHE_CONTROL=raw).cache_control == raw


@pytest.mark.parametrize(
    "raw", ["", "   ", "no-cache\r\nX-Evil: 1", "max-age=1\x00", "caf\u00e9", "a\x7fb", "a\tb"]
)
def test_cache_control_refuses_empty_control_and_non_ascii_characters(root: Path, raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^DL_CACHE_CONTROL: "):
        load(root, DL_CACHE_CONTROL=raw)


@pytest.mark.parametrize("raw", ["debug", "info", "warning", "error", "critical", "WARNING"])
def test_log_level_is_one_of_the_known_levels_in_lower_case(root: Path, raw: str) -> None:
    assert load(root, DL_LOG_LEVEL=raw).log_level == raw.lower()


@pytest.mark.parametrize("raw", ["", "warn", "trace", "fatal", "10", "information"])
def test_an_unknown_log_level_is_refused_listing_the_choices(root: Path, raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^DL_LOG_LEVEL: expected one of debug, info"):
        load(root, DL_LOG_LEVEL=raw)


def test_a_missing_data_root_fails_fast_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^DL_DATA_ROOT: .*not an existing folder"):
        Settings.from_env({"DL_DATA_ROOT": str(tmp_path / "absent")})


def test_a_data_root_that_is_a_file_fails_fast(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_bytes(b"x")
    with pytest.raises(SettingsError, match=r"^DL_DATA_ROOT: "):
        Settings.from_env({"DL_DATA_ROOT": str(file)})


@pytest.mark.parametrize("raw", ["", "   "])
def test_an_empty_data_root_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^DL_DATA_ROOT: must not be empty"):
        Settings.from_env({"DL_DATA_ROOT": raw})


def test_a_relative_data_root_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "files" / "here").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"DL_DATA_ROOT": "files/./here/../here"})
    assert settings.data_root.is_absolute()
    assert settings.data_root == (tmp_path / "files" / "here").resolve()


def test_a_data_root_through_a_symlink_is_resolved(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    settings = Settings.from_env({"DL_DATA_ROOT": str(tmp_path / "link")})
    assert settings.data_root == (tmp_path / "real").resolve()


def test_a_data_root_starting_with_tilde_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "served").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = Settings.from_env({"DL_DATA_ROOT": "~/served"})
    assert settings.data_root == (tmp_path / "served").resolve()


def test_validated_returns_a_copy_and_leaves_the_original_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    original = Settings(data_root=Path("data"), max_ranges=2)
    checked = original.validated()
    assert original.data_root == Path("data")
    assert checked.data_root == (tmp_path / "data").resolve()
    assert checked.max_ranges == 2


def test_validated_refuses_settings_built_in_code_with_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^DL_DATA_ROOT: "):
        Settings(data_root=tmp_path / "nope").validated()


def test_settings_are_immutable(root: Path) -> None:
    settings = load(root)
    with pytest.raises(AttributeError):
        settings.workers = 2  # type: ignore[misc]


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_the_first_bad_variable_stops_loading_even_if_others_are_fine(root: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        load(root, DL_WORKERS="2", DL_TIMEOUT="0")
    assert str(raised.value).startswith("DL_TIMEOUT: ")


# --- signed links ----------------------------------------------------------------------------

KEY_A = "a" * 31 + "A"
KEY_B = "Zm9vYmFyLWJhei1xdXV4LTAxMjM0NTY3ODkwMTIz"


def test_signing_is_off_by_default(root: Path) -> None:
    settings = load(root)
    assert settings.signing_key == ()
    assert settings.signing_bind_client is False
    assert settings.signed_link_ttl == 3600


def test_signing_keys_are_comma_separated_and_trimmed_in_order(root: Path) -> None:
    assert load(root, DL_SIGNING_KEY=KEY_A).signing_key == (KEY_A,)
    assert load(root, DL_SIGNING_KEY=f" {KEY_B} , {KEY_A}\n").signing_key == (KEY_B, KEY_A)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", r"is empty; unset it to turn signing off"),
        ("   ", r"is empty; unset it to turn signing off"),
        (f"{KEY_A},", r"key 2 of 2 is empty"),
        (f"{KEY_A},,{KEY_B}", r"key 2 of 3 is empty"),
        ("short-secret", r"key 1 of 1 has 12 characters; expected 32\.\.1024"),
        (f"{KEY_A},{'s' * 31}", r"key 2 of 2 has 31 characters"),
        ("x" * 1025, r"key 1 of 1 has 1025 characters"),
        (f"{KEY_A[:-1]} {KEY_B}", r"key 1 of 1 has a space, control or non-ASCII character"),
        (f"{KEY_B}\u00e9", r"key 1 of 1 has a space, control or non-ASCII character"),
        (f"{KEY_A},{KEY_B},{KEY_A}", r"key 3 of 3 repeats key 1"),
        (",".join(f"{n:032d}" for n in range(17)), r"17 keys; at most 16"),
    ],
)
def test_a_bad_signing_key_fails_fast_without_showing_any_key(
    root: Path, raw: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=rf"^DL_SIGNING_KEY: .*{message}") as raised:
        load(root, DL_SIGNING_KEY=raw)
    for secret in [KEY_A, KEY_B, "short-secret", KEY_A[:-1], "s" * 31, "x" * 1025, "0" * 32]:
        assert secret not in str(raised.value)


def test_the_keys_stay_out_of_the_settings_repr(root: Path) -> None:
    settings = load(root, DL_SIGNING_KEY=f"{KEY_A},{KEY_B}", DL_SIGNING_BIND_CLIENT="yes")
    assert settings.signing_key == (KEY_A, KEY_B)
    assert KEY_A not in repr(settings)
    assert KEY_B not in repr(settings)
    assert "signing_bind_client=True" in repr(settings)


def test_client_binding_and_the_link_lifetime_are_parsed(root: Path) -> None:
    settings = load(root, DL_SIGNING_BIND_CLIENT="on", DL_SIGNED_LINK_TTL="600")
    assert (settings.signing_bind_client, settings.signed_link_ttl) == (True, 600)
    with pytest.raises(SettingsError, match=r"^DL_SIGNED_LINK_TTL: .*outside"):
        load(root, DL_SIGNED_LINK_TTL="0")
    with pytest.raises(SettingsError, match=r"^DL_SIGNING_BIND_CLIENT: "):
        load(root, DL_SIGNING_BIND_CLIENT="client")


def test_read_setting_reads_one_variable_without_a_data_root(tmp_path: Path) -> None:
    from config.settings import read_setting

    environ = {"DL_DATA_ROOT": str(tmp_path / "absent"), "DL_SIGNING_KEY": KEY_A}
    assert read_setting("signing_key", environ) == (KEY_A,)
    assert read_setting("signed_link_ttl", environ) == 3600
    with pytest.raises(SettingsError, match=r"^DL_SIGNING_KEY: "):
        read_setting("signing_key", {"DL_SIGNING_KEY": "short"})


@pytest.mark.parametrize("raw", ["", "sha256", "inode", "size"])
def test_an_unknown_etag_kind_is_refused_listing_the_choices(root: Path, raw: str) -> None:
    with pytest.raises(SettingsError, match="DL_ETAG: expected one of mtime, digest"):
        load(root, DL_ETAG=raw)


@pytest.mark.parametrize(
    "raw", ["null", "https://app.example.org/files", "*, https://a.example", "app.example.org"]
)
def test_cors_origins_refuse_what_no_browser_sends_naming_the_variable(
    root: Path, raw: str
) -> None:
    with pytest.raises(SettingsError, match=r"^DL_CORS_ORIGINS: "):
        load(root, DL_CORS_ORIGINS=raw)
