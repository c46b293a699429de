"""Typed settings read from ``DL_*`` environment variables, failing fast.

Every knob of the service and of ``gunicorn.conf.py`` is read here, once, with an
explicit cast; a bad value raises :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from service.sansio.cors import DEFAULT_MAX_AGE, CorsPolicy, OriginError
from service.sansio.mirrors import MAX_MIRRORS, Mirror, MirrorError, parse_mirrors
from service.sansio.offload import MAX_LINKS as MAX_OFFLOAD_LINKS

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_BIND = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})|unix:/.+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
_SIGNING_KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces (commas split)
MIN_SIGNING_KEY_LENGTH = 32
MAX_SIGNING_KEY_LENGTH = 1024
MAX_SIGNING_KEYS = 16


class SettingsError(ValueError):
    """A DL_* variable has a value we cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    """All settings, with their defaults. The env variable is ``DL_`` + NAME."""

    data_root: Path = Path("data")
    bind: str = "127.0.0.1:8000"
    workers: int = os.cpu_count() or 1
    worker_connections: int = 1000
    timeout: int = 30
    graceful_timeout: int = 30
    keepalive: int = 5
    chunk_size: int = 256 * 1024
    sendfile: bool = True
    yield_interval: int = 256 * 1024
    send_timeout: int = 60
    # Storage calls that may block run in I/O threads (see README "Storage"). 0: sized
    # from worker_connections (io_threads) and from io_threads (io_threads_per_file).
    io_threads: int = 0
    io_threads_per_file: int = 0
    read_timeout: int = 60
    rate_limit: int = 0
    rate_limit_after: int = 0
    max_downloads_per_client: int = 0
    max_ranges: int = 16
    cache_control: str = "no-cache"
    inline: bool = False
    serve_hidden: bool = False
    allow_outside_symlinks: bool = False
    log_level: str = "info"
    access_log: bool = True
    digests: bool = True
    digest_cache: Path | None = None  # None: service.digests.default_cache_dirs()
    # SHA-256 per piece of this many bytes, from the digest pass (Metalink <pieces>).
    piece_size: int = 4 * 1024 * 1024
    etag: str = "mtime"
    # Other servers with the same tree (their /files/ URLs), named in each file answer's
    # Link fields (at most mirror_links of them) and in its Metalink.
    mirrors: tuple[Mirror, ...] = ()
    mirror_links: int = 8
    # Folder archives (?format=tar): off answers them 404; larger trees get a 403.
    archives: bool = True
    archive_max_members: int = 100_000
    # Signed links: off while no key is set. Kept out of repr, so keys never reach a log.
    signing_key: tuple[str, ...] = field(default=(), repr=False)
    signing_bind_client: bool = False
    signed_link_ttl: int = 3600
    # CORS: the origins whose pages may read answers (("*",): any); () sends no CORS.
    cors_origins: tuple[str, ...] = ()
    cors_max_age: int = DEFAULT_MAX_AGE
    # nginx offload (deploy/nginx/): "off", or "x-accel" to hand file bytes to nginx.
    offload: str = "off"
    # The client address from a trusted proxy's X-Real-IP: always with offload on, and
    # behind any other proxy that overwrites the header (deploy/haproxy/) when asked.
    behind_proxy: bool = False
    trusted_proxies: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    # Prometheus metrics at /metrics, for the networks in metrics_allow (loopback).
    metrics: bool = True
    metrics_dir: Path | None = None
    metrics_allow: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            variable = "DL_" + spec.name.upper()
            raw = environ.get(variable)
            if raw is not None:
                values[spec.name] = _PARSERS[spec.name](variable, raw.strip())
        return cls(**values).validated()

    def io_thread_limits(self) -> tuple[int, int]:
        """(threads per worker, of which at most per file): a thread for every eighth
        connection, 8 to 256, and an eighth of them (at least 2) for any one file."""
        threads = self.io_threads or max(8, min(256, self.worker_connections // 8))
        per_file = self.io_threads_per_file or max(2, threads // 8)
        return threads, min(per_file, threads)

    def cors_policy(self) -> CorsPolicy | None:
        """The CORS policy ``DL_CORS_ORIGINS`` asks for; None: no CORS fields at all."""
        return CorsPolicy.parse(",".join(self.cors_origins), self.cors_max_age)

    def validated(self) -> Settings:
        """Check the data root exists and the settings fit together; returns a copy with
        the data root made absolute."""
        root = self.data_root.expanduser().resolve()
        if not root.is_dir():
            raise SettingsError(f"DL_DATA_ROOT: {str(root)!r} is not an existing folder")
        if self.offload != "off" and self.mirrors and self.mirror_links > MAX_OFFLOAD_LINKS - 1:
            raise SettingsError(
                f"DL_MIRROR_LINKS: {self.mirror_links}; with DL_OFFLOAD nginx copies at most "
                f"{MAX_OFFLOAD_LINKS - 1} mirror links (deploy/nginx/download.conf.in)"
            )
        return replace(self, data_root=root)


def _integer(low: int, high: int) -> Callable[[str, str], int]:
    def parse(variable: str, raw: str) -> int:
        if not re.fullmatch(r"[0-9]+", raw):
            raise SettingsError(f"{variable}: expected a whole number, got {raw!r}")
        digits = raw.lstrip("0") or "0"
        if len(digits) > len(str(high)):  # int() refuses over 4300 digits with a bare error
            raise SettingsError(
                f"{variable}: a {len(digits)}-digit number is outside {low}..{high}"
            )
        value = int(digits)
        if not low <= value <= high:
            raise SettingsError(f"{variable}: {value} is outside {low}..{high}")
        return value

    return parse


_SIZE = re.compile(r"([0-9]{1,19})([kmg]?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _size(low: int, high: int) -> Callable[[str, str], int]:
    """Bytes, with an optional k, m or g suffix (powers of 1024), as nginx writes sizes."""

    def parse(variable: str, raw: str) -> int:
        match = _SIZE.fullmatch(raw)
        if match is None:
            raise SettingsError(f"{variable}: expected bytes such as 500k or 2m, got {raw!r}")
        value = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if not low <= value <= high:
            raise SettingsError(f"{variable}: {value} is outside {low}..{high}")
        return value

    return parse


def _boolean(variable: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{variable}: expected one of 1/0/true/false, got {raw!r}")


def _path(variable: str, raw: str) -> Path:
    if not raw:
        raise SettingsError(f"{variable}: must not be empty")
    return Path(raw)


def _bind(variable: str, raw: str) -> str:
    match = _BIND.fullmatch(raw)
    if not match:
        raise SettingsError(f"{variable}: expected HOST:PORT or unix:/path, got {raw!r}")
    if match.group(2) is not None and int(match.group(2)) > 65535:
        raise SettingsError(f"{variable}: port {match.group(2)} is outside 0..65535")
    return raw


def _header_value(variable: str, raw: str) -> str:
    if not raw or not _HEADER_VALUE.fullmatch(raw):
        raise SettingsError(f"{variable}: expected printable ASCII, got {raw!r}")
    return raw


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(variable: str, raw: str) -> str:
        if raw.lower() not in choices:
            raise SettingsError(f"{variable}: expected one of {', '.join(choices)}, got {raw!r}")
        return raw.lower()

    return parse


def _signing_keys(variable: str, raw: str) -> tuple[str, ...]:
    """Comma-separated keys, the first signing. Errors say which key, never what it is."""
    if not raw:
        raise SettingsError(f"{variable}: is empty; unset it to turn signing off")
    keys = tuple(key.strip() for key in raw.split(","))
    if len(keys) > MAX_SIGNING_KEYS:
        raise SettingsError(f"{variable}: {len(keys)} keys; at most {MAX_SIGNING_KEYS}")
    for number, key in enumerate(keys, 1):
        where = f"{variable}: key {number} of {len(keys)}"
        if not key:
            raise SettingsError(f"{where} is empty (keys are separated by commas)")
        if not _SIGNING_KEY.fullmatch(key):
            raise SettingsError(f"{where} has a space, control or non-ASCII character")
        if not MIN_SIGNING_KEY_LENGTH <= len(key) <= MAX_SIGNING_KEY_LENGTH:
            raise SettingsError(
                f"{where} has {len(key)} characters; expected {MIN_SIGNING_KEY_LENGTH}.."
                f"{MAX_SIGNING_KEY_LENGTH} (e.g. python -c "
                "'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if key in keys[: number - 1]:
            raise SettingsError(f"{where} repeats key {keys.index(key) + 1}")
    return keys


def _cors_origins(variable: str, raw: str) -> tuple[str, ...]:
    """Empty, ``*``, or comma-separated origins, kept as browsers send them."""
    try:
        policy = CorsPolicy.parse(raw)
    except OriginError as error:
        raise SettingsError(f"{variable}: {error}") from None
    if policy is None:
        return ()
    return ("*",) if policy.origins is None else tuple(sorted(policy.origins))


def _mirrors(variable: str, raw: str) -> tuple[Mirror, ...]:
    try:
        return parse_mirrors(raw)
    except MirrorError as error:
        raise SettingsError(f"{variable}: {error}") from None


def _networks(variable: str, raw: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR networks (host bits may be set)."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        raise SettingsError(f"{variable}: expected at least one address or network")
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as error:
        raise SettingsError(f"{variable}: {error}") from None


def read_setting(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting from its ``DL_*`` variable, else its default, without reading the others
    (for tools such as ``python -m service.sign`` that need no data root)."""
    environ = os.environ if environ is None else environ
    raw = environ.get("DL_" + name.upper())
    if raw is None:
        return next(spec.default for spec in fields(Settings) if spec.name == name)
    return _PARSERS[name]("DL_" + name.upper(), raw.strip())


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "data_root": _path,
    "bind": _bind,
    "workers": _integer(1, 256),
    "worker_connections": _integer(1, 100_000),
    "timeout": _integer(1, 3600),
    "graceful_timeout": _integer(0, 86_400),
    # Also gevent's deadline for each request's header section: 0 would let slowloris
    # connections trickle for ever.
    "keepalive": _integer(1, 3600),
    "chunk_size": _integer(4096, 16 * 1024 * 1024),
    "sendfile": _boolean,
    "yield_interval": _integer(4096, 1024 * 1024 * 1024),
    "send_timeout": _integer(0, 86_400),
    "io_threads": _integer(0, 1024),
    "io_threads_per_file": _integer(0, 1024),
    "read_timeout": _integer(1, 86_400),
    "rate_limit": _size(0, 2**40),
    "rate_limit_after": _size(0, 2**60),
    "max_downloads_per_client": _integer(0, 100_000),
    "max_ranges": _integer(1, 1000),
    "cache_control": _header_value,
    "inline": _boolean,
    "serve_hidden": _boolean,
    "allow_outside_symlinks": _boolean,
    "access_log": _boolean,
    "digests": _boolean,
    "digest_cache": _path,
    "piece_size": _size(64 * 1024, 1024 * 1024 * 1024),
    "etag": _choice("mtime", "digest"),
    "mirrors": _mirrors,
    "mirror_links": _integer(0, MAX_MIRRORS),
    "archives": _boolean,
    "archive_max_members": _integer(1, 10_000_000),
    "log_level": _choice("debug", "info", "warning", "error", "critical"),
    "signing_key": _signing_keys,
    "signing_bind_client": _boolean,
    "signed_link_ttl": _integer(1, 10 * 366 * 86_400),
    "cors_origins": _cors_origins,
    # Browsers cap it (Chromium: 7200 s); 0 asks them not to cache preflights.
    "cors_max_age": _integer(0, 86_400),
    "offload": _choice("off", "x-accel"),
    "behind_proxy": _boolean,
    "trusted_proxies": _networks,
    "metrics": _boolean,
    "metrics_dir": _path,
    "metrics_allow": _networks,
}
