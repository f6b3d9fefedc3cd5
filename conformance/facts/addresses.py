"""Which spellings of a URL's host reach a given machine, compared by what they reach.

A connect to a loopback address (127.0.0.0/8, ::1, or IPv4-mapped ``::ffff:127.x``) or to the
unspecified address (``0.0.0.0``, ``::``: Linux and macOS deliver such a connect to the local
host) stays on the machine that makes it. A name reaches a host only when it is that host's
whole name (case-insensitive, a trailing dot ignored) or one of its declared aliases: a first
label is not enough (``mini.attacker.example`` is not ``mini``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names every resolver maps to loopback (/etc/hosts on Debian and macOS, and RFC 6761 for
# "localhost" and its subdomains).
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def normalize_name(text: str) -> str:
    return text.strip().strip("[]").rstrip(".").lower()


def parse_address(text: str) -> IPAddress | None:
    """An IP address in any spelling a URL or a tool prints (brackets, zone id, IPv4-mapped)."""
    bare = normalize_name(text).split("%", 1)[0]
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback_name(name: str) -> bool:
    text = normalize_name(name)
    return text in LOOPBACK_NAMES or text.endswith(".localhost")


@dataclass(frozen=True)
class HostIdentity:
    """What a machine answers to: its names (whole, or declared aliases) and its addresses."""

    names: frozenset[str]
    addresses: frozenset[IPAddress]

    @classmethod
    def of(cls, names: Iterable[str | None], addresses: Iterable[str | None] = ()) -> HostIdentity:
        parsed: set[IPAddress] = set()
        plain: set[str] = set()
        for value in [*names, *addresses]:
            if not value:
                continue
            address = parse_address(value)
            if address is not None:
                parsed.add(address)
            else:
                plain.add(normalize_name(value))
        return cls(frozenset(plain), frozenset(parsed))

    def named_by(self, url_host: str) -> bool:
        """The spelling names this machine from elsewhere (whole name, alias, or one of its addresses)."""
        address = parse_address(url_host)
        if address is not None:
            return address in self.addresses
        return normalize_name(url_host) in self.names

    def reached_from_itself(self, url_host: str) -> bool:
        """A connect made *on this machine* to ``url_host`` stays on it."""
        address = parse_address(url_host)
        if address is not None:
            return address.is_loopback or address.is_unspecified or address in self.addresses
        return is_loopback_name(url_host) or normalize_name(url_host) in self.names


def connect_address(url_host: str, identity: HostIdentity) -> str | None:
    """The address a connect to ``url_host`` made on the machine goes to, when it is knowable.

    ``localhost`` is tried as 127.0.0.1 first by glibc and macOS resolvers; a whole host name
    goes to the host's one declared address when it has exactly one. The unspecified address
    stays on the host but which local address it lands on is OS-specific (Linux: loopback;
    BSD and macOS: the primary interface), so it gives None.
    """
    address = parse_address(url_host)
    if address is not None:
        return None if address.is_unspecified else str(address)
    if is_loopback_name(url_host):
        return "127.0.0.1"
    if normalize_name(url_host) in identity.names and len(identity.addresses) == 1:
        return str(next(iter(identity.addresses)))
    return None
