"""What a listening socket accepts, in the terms the inventory declares binds in."""

from __future__ import annotations

import ipaddress

from conformance.facts.parsers import Listener


def endpoints(listener: Listener) -> set[tuple[str, str]]:
    """The (family, address) pairs a listening socket really accepts connections on."""
    address = ipaddress.ip_address(listener.address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return {("ipv4", str(address.ipv4_mapped))}
    if listener.family == "ipv4":
        return {("ipv4", str(address))}
    found = {("ipv6", str(address))}
    if listener.dual_stack and address.is_unspecified:
        found.add(("ipv4", "0.0.0.0"))
    return found


def declared_endpoints(bind: str) -> set[tuple[str, str]]:
    address = ipaddress.ip_address(bind)
    return {("ipv4" if address.version == 4 else "ipv6", str(address))}


def describe(listeners: list[Listener]) -> str:
    """The tool's own lines for these sockets, each followed by what could not be learnt about it."""
    lines: list[str] = []
    for listener in listeners:
        lines.append(listener.raw)
        lines.extend(f"  note: {note}" for note in listener.notes)
    return "\n".join(lines) or "(none)"
