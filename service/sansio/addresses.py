"""Client addresses as text from a server (``REMOTE_ADDR``): parsed one way for every
use — signed-link binding, trusted proxies, who may read ``/metrics``."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> Address | None:
    """The IP address in ``text``, None if it is none (a unix-socket peer). An
    IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, as a dual-stack listener reports
    IPv4 peers) is its IPv4 address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def local_or_within(peer: str, networks: Iterable[Network]) -> bool:
    """Whether the peer ``peer`` lies in one of ``networks``. An empty peer is a
    unix-socket client, which only processes on this host can reach: local. Any other
    text that is no IP address is trusted with nothing."""
    if peer == "":
        return True
    address = parse_address(peer)
    return address is not None and any(address in network for network in networks)
