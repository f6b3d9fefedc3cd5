"""Listening TCP sockets from `ss`, `lsof` and `netstat` (Linux and macOS).

The one thing these parsers must get right is *which addresses a socket accepts*. Every
host-testing tool we studied has shipped bugs here (testinfra #286/#389, goss #149/#1006,
InSpec #897/#3209), so the rules are spelled out:

* ``0.0.0.0`` is the IPv4 wildcard. It accepts IPv4 only.
* ``::`` is the IPv6 wildcard. Whether it also accepts IPv4 depends on ``IPV6_V6ONLY``
  (Linux default: ``net.ipv6.bindv6only=0``, so dual-stack unless the program says otherwise).
  Modern ``ss`` (iproute2 >= 4.x) prints a v6-only wildcard as ``[::]`` and a dual-stack one as
  ``*``; macOS ``netstat`` says ``tcp6`` versus ``tcp46``. ``lsof`` and net-tools ``netstat``
  print both the same way (``*`` / ``::``), so from them ``dual_stack`` is ``False`` and
  ``dual_stack_known`` is ``False``.
* ``::ffff:a.b.c.d`` (an IPv6 socket bound to a v4-mapped address) accepts IPv4 connections to
  ``a.b.c.d`` only. ``::ffff:127.0.0.1`` is therefore loopback-only. ``lsof`` and net-tools
  ``netstat`` print such a socket as plain ``127.0.0.1`` on an IPv6 line; the parsers turn it
  back into ``::ffff:127.0.0.1`` so that the family stays truthful.
* ``%lo`` after an address is the interface the socket is bound to (``SO_BINDTODEVICE``) or the
  scope of a link-local address. It is kept in ``interface``; it never widens the address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from conformance.facts.parsers.errors import ParseError

Family = Literal["ipv4", "ipv6"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

__all__ = [
    "OLD_SS_V6ONLY",
    "PROC_V6ONLY",
    "Family",
    "KernelSocket",
    "KernelTables",
    "Listener",
    "NetstatReading",
    "SkippedRow",
    "format_address",
    "listeners_from_kernel",
    "parse_lsof",
    "parse_lsof_fields",
    "parse_netstat_linux",
    "parse_netstat_macos",
    "parse_proc_net_tcp",
    "parse_ss",
    "read_netstat_macos",
]


def format_address(ip: IPAddress) -> str:
    """Canonical text for an address; v4-mapped IPv6 keeps its dotted tail.

    Python 3.11 renders ``IPv6Address("::ffff:127.0.0.1")`` as ``::ffff:7f00:1``, which no
    tool prints and nobody recognises in a report, so the mapped form is built by hand.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return ip.compressed


def _effective(ip: IPAddress) -> IPAddress:
    """The address a connection must target: v4-mapped IPv6 collapses to its IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening TCP socket (or, from lsof, one bound address shared by several processes).

    ``processes`` lists every ``(name, pid)`` holding the socket, in the order the tool printed
    them; ``process``/``pid`` are the first of them (or what the tool showed when it printed
    a pid without a name). ``notes`` says what could not be learnt about this socket (for
    example a secondary source's row that could not be read), for the evidence.
    """

    address: str
    port: int
    family: Family
    dual_stack: bool
    process: str | None
    pid: int | None
    raw: str
    processes: tuple[tuple[str, int], ...] = ()
    interface: str | None = None
    dual_stack_known: bool = True
    notes: tuple[str, ...] = ()
    _ip: IPAddress = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            ip = ipaddress.ip_address(self.address)
        except ValueError as exc:
            raise ValueError(f"Listener address {self.address!r} is not an IP address") from exc
        if format_address(ip) != self.address:
            raise ValueError(f"Listener address {self.address!r} is not normalized (expected {format_address(ip)!r})")
        if (self.family == "ipv4") != isinstance(ip, ipaddress.IPv4Address):
            raise ValueError(f"Listener address {self.address!r} is not {self.family}")
        if not 0 < self.port < 65536:
            raise ValueError(f"Listener port {self.port} out of range")
        if self.dual_stack and not (self.family == "ipv6" and ip.is_unspecified):
            raise ValueError("dual_stack only applies to the IPv6 wildcard '::'")
        object.__setattr__(self, "_ip", ip)

    # -- semantics ---------------------------------------------------------------------------

    def is_wildcard(self) -> bool:
        """Bound to all addresses of its family (``0.0.0.0``, ``::``, ``*``)."""
        return _effective(self._ip).is_unspecified

    def is_loopback_only(self) -> bool:
        """Reachable only through loopback: 127.0.0.0/8, ``::1`` or ``::ffff:127.x.y.z``.

        A wildcard is never loopback-only, even when bound to ``lo`` with SO_BINDTODEVICE:
        this answers "is it exposed?", and the conservative answer for a wildcard is yes.
        """
        eff = _effective(self._ip)
        return not eff.is_unspecified and eff.is_loopback

    def accepts_ipv4(self) -> bool:
        """IPv4 clients can connect: an IPv4 socket, a dual-stack ``*``, or a v4-mapped bind."""
        return self.family == "ipv4" or self.dual_stack or isinstance(_effective(self._ip), ipaddress.IPv4Address)

    def accepts_ipv6(self) -> bool:
        """IPv6 clients can connect: an IPv6 socket not bound to a v4-mapped address."""
        return self.family == "ipv6" and isinstance(_effective(self._ip), ipaddress.IPv6Address)

    def reachable_at(self, address: str) -> bool:
        """Would a TCP connect to ``address``:``self.port`` on this host land on this socket?

        ``address`` is a concrete address of the host (``"127.0.0.1"``, ``"::1"``,
        ``"[fe80::1%eth0]"``, ``"::ffff:127.0.0.1"``). A v4-mapped target is an IPv4
        connection. Wildcard targets are refused with ValueError: where a connect to
        ``0.0.0.0`` lands is OS-specific (Linux: loopback; BSD: the primary interface).
        A link-local target only matches a listener on another interface if either scope is
        unknown. Device binding (``127.0.0.54%lo``) is otherwise ignored.
        """
        target, scope = _parse_target(address)
        if target.is_unspecified:
            raise ValueError(f"reachable_at needs a concrete address, not {address!r}")
        mine = _effective(self._ip)
        if isinstance(target, ipaddress.IPv4Address):
            if not self.accepts_ipv4():
                return False
            if isinstance(mine, ipaddress.IPv6Address):
                return self.dual_stack  # only the dual-stack '::' reaches here
            return mine.is_unspecified or mine == target
        if not self.accepts_ipv6():
            return False
        if mine.is_unspecified:
            return True
        if mine != target:
            return False
        return scope is None or self.interface is None or scope == self.interface

    def bind_text(self) -> str:
        """How a person writes the bind: ``0.0.0.0``, ``[::]``, ``*``, ``127.0.0.1``, ``[::1]``."""
        if self.dual_stack:
            return "*"
        scoped = self.address if self.interface is None else f"{self.address}%{self.interface}"
        return f"[{scoped}]" if self.family == "ipv6" else scoped

    def endpoint_text(self) -> str:
        """``bind_text():port``, e.g. ``127.0.0.1:4020`` or ``[::]:4000``."""
        return f"{self.bind_text()}:{self.port}"


def _parse_target(address: str) -> tuple[IPAddress, str | None]:
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    scope: str | None = None
    if "%" in text:
        text, scope = text.split("%", 1)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError as exc:
        raise ValueError(f"not an IP address: {address!r}") from exc
    return _effective(ip), scope


# -- shared helpers -------------------------------------------------------------------------


def _ip_or_error(text: str, *, source: str, line_no: int, line: str, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ParseError(source, f"cannot parse {what} {text!r} as an IP address", line_no=line_no, line=line) from None


def _port_or_error(text: str, *, source: str, line_no: int, line: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ParseError(
            source,
            f"port {text!r} is not a number in 1..65535 (was the numeric-port flag given?)",
            line_no=line_no,
            line=line,
        )
    return int(text)


def _unique_processes(pairs: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    seen: dict[tuple[str, int], None] = {}
    for pair in pairs:
        seen.setdefault(pair, None)
    return tuple(seen)


def _make(
    ip: IPAddress,
    port: int,
    *,
    family: Family,
    dual_stack: bool,
    raw: str,
    processes: tuple[tuple[str, int], ...] = (),
    pid: int | None = None,
    process: str | None = None,
    interface: str | None = None,
    dual_stack_known: bool = True,
) -> Listener:
    if processes:
        process, pid = processes[0]
    return Listener(
        address=format_address(ip),
        port=port,
        family=family,
        dual_stack=dual_stack,
        process=process,
        pid=pid,
        raw=raw,
        processes=processes,
        interface=interface,
        dual_stack_known=dual_stack_known,
    )


def _merge_same_binding(listeners: list[Listener]) -> list[Listener]:
    """Fold rows that describe the same bound address into one Listener.

    lsof prints one row per (process, descriptor): a socket inherited across fork, or
    duplicated within a process, appears several times. Bindings are what the checks reason
    about, so rows with the same family/address/port/interface are merged, keeping every
    process and every raw line as evidence. (SO_REUSEPORT siblings merge too; they accept
    exactly the same connections.)
    """
    merged: dict[tuple[str, str, int, str | None], Listener] = {}
    for item in listeners:
        key = (item.family, item.address, item.port, item.interface)
        old = merged.get(key)
        if old is None:
            merged[key] = item
            continue
        raws = old.raw.split("\n")
        raw = old.raw if item.raw in raws else f"{old.raw}\n{item.raw}"
        processes = _unique_processes(old.processes + item.processes)
        merged[key] = _make(
            ipaddress.ip_address(old.address),
            old.port,
            family=old.family,
            dual_stack=old.dual_stack or item.dual_stack,
            raw=raw,
            processes=processes,
            pid=old.pid if old.pid is not None else item.pid,
            process=old.process if old.process is not None else item.process,
            interface=old.interface,
            dual_stack_known=old.dual_stack_known and item.dual_stack_known,
        )
    return list(merged.values())


# -- ss ----------------------------------------------------------------------------------------

_SS_SOURCE = "ss -Htlnp"
_SS_STATES = frozenset(
    {
        "LISTEN",
        "ESTAB",
        "SYN-SENT",
        "SYN-RECV",
        "FIN-WAIT-1",
        "FIN-WAIT-2",
        "TIME-WAIT",
        "CLOSE-WAIT",
        "LAST-ACK",
        "CLOSING",
        "CLOSED",
        "UNCONN",
        "UNKNOWN",
    }
)
_SS_NETIDS = frozenset(
    {
        "tcp",
        "udp",
        "raw",
        "mptcp",
        "sctp",
        "dccp",
        "u_str",
        "u_dgr",
        "u_seq",
        "p_raw",
        "p_dgr",
        "nl",
        "tipc",
        "v_str",
        "v_dgr",
        "xdp",
        "???",
    }
)
_SS_ROW = re.compile(
    r"^(?P<state>\S+)\s+(?P<recvq>\d+)\s+(?P<sendq>\d+)\s+(?P<local>\S+)\s+(?P<peer>\S+)"
    r"(?:\s+(?P<rest>.*?))?\s*$"
)
_SS_USERS = re.compile(r"users:\((?P<body>.*)\)")
_SS_USER = re.compile(r'\("(?P<name>(?:(?!",pid=).)*)",pid=(?P<pid>\d+),fd=(?P<fd>\d+)\)')


@dataclass(frozen=True, slots=True)
class KernelSocket:
    """One row of ``/proc/net/tcp`` or ``/proc/net/tcp6``: the kernel's own word on a socket."""

    family: Family
    local_hex: str  # as the kernel printed it (32-bit words in the host's byte order)
    port: int
    state: int  # 0x0A is TCP_LISTEN (include/net/tcp_states.h)
    uid: int
    inode: int
    raw: str

    @property
    def wildcard(self) -> bool:
        """Bound to the family's unspecified address (all zero, whatever the byte order)."""
        return set(self.local_hex) == {"0"}


_TCP_LISTEN = 0x0A
_PROC_ROW = re.compile(
    r"^\s*\d+:\s+(?P<local>[0-9A-Fa-f]+):(?P<port>[0-9A-Fa-f]{4})\s+[0-9A-Fa-f]+:[0-9A-Fa-f]{4}\s+"
    r"(?P<state>[0-9A-Fa-f]{2})\s+\S+\s+\S+\s+\S+\s+(?P<uid>\d+)\s+\d+\s+(?P<inode>\d+)"
)


def parse_proc_net_tcp(text: str, family: Family) -> list[KernelSocket]:
    """Parse ``/proc/net/tcp`` (``family="ipv4"``) or ``/proc/net/tcp6`` (``"ipv6"``).

    The file a row is in *is* its family (net/ipv4/tcp_ipv4.c ``tcp4_seq_show``,
    net/ipv6/tcp_ipv6.c ``tcp6_seq_show``); the port is printed in host order (``%04X`` of
    ``ntohs``), the address as 32-bit words in the host's byte order. Every row is returned,
    in any state; a line that is neither the header nor a row is refused.
    """
    source = "/proc/net/tcp" if family == "ipv4" else "/proc/net/tcp6"
    width = 8 if family == "ipv4" else 32
    out: list[KernelSocket] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("sl "):
            continue
        match = _PROC_ROW.match(line)
        if match is None or len(match["local"]) != width:
            raise ParseError(
                source, "expected 'sl: LOCAL:PORT REMOTE:PORT st ... uid timeout inode'", line_no=line_no, line=line
            )
        out.append(
            KernelSocket(
                family,
                match["local"].upper(),
                int(match["port"], 16),
                int(match["state"], 16),
                int(match["uid"]),
                int(match["inode"]),
                line,
            )
        )
    return out


@dataclass(frozen=True)
class KernelTables:
    """What the kernel says is listening, by family: the authority ss's ``*`` needs.

    ``tcp6`` is None when ``/proc/net/tcp6`` does not exist (IPv6 is off: no IPv6 socket).
    """

    tcp: tuple[KernelSocket, ...]
    tcp6: tuple[KernelSocket, ...] | None

    @classmethod
    def read(cls, tcp: str, tcp6: str | None) -> KernelTables:
        return cls(
            tuple(parse_proc_net_tcp(tcp, "ipv4")),
            tuple(parse_proc_net_tcp(tcp6, "ipv6")) if tcp6 is not None else None,
        )

    def wildcards(self, family: Family, port: int) -> int:
        """How many listening sockets of ``family`` are bound to its wildcard at ``port``."""
        rows = self.tcp if family == "ipv4" else (self.tcp6 or ())
        return sum(1 for row in rows if row.state == _TCP_LISTEN and row.port == port and row.wildcard)


@dataclass
class _SsRow:
    line_no: int
    line: str
    ip: IPAddress | None  # None: '*', until the kernel's tables settle it
    port: int
    family: Family | None
    dual: bool
    iface: str | None
    legacy: bool  # an unbracketed IPv6 address (the old dialect)
    processes: tuple[tuple[str, int], ...] = ()


# The note an IPv6 wildcard carries when its ss predates showing IPV6_V6ONLY.
OLD_SS_V6ONLY = (
    "this ss prints '*' for the IPv4 wildcard (or IPv6 without brackets), the convention from before ss "
    "showed IPV6_V6ONLY: whether this IPv6 wildcard also accepts IPv4 is not known (net.ipv6.bindv6only "
    "is only a default a program may override)"
)


def parse_ss(text: str, kernel: KernelTables | None = None) -> list[Listener]:
    """Parse ``ss -Htlnp`` / ``ss -Htln`` (header tolerated; a Netid column is tolerated).

    Only LISTEN rows of TCP are returned. ``*`` means two things: iproute2, since its change
    that tells IPv4 and IPv6 wildcard sockets apart, prints ``0.0.0.0:P`` for the IPv4
    wildcard, ``[::]:P`` for a v6-only IPv6 wildcard and ``*:P`` for a dual-stack one (no
    IPV6_V6ONLY); older ss (CentOS 7's iproute) prints ``*:P`` for the IPv4 wildcard and
    ``:::P`` or ``[::]:P`` for any IPv6 wildcard, v6-only or not. So the family of a ``*`` row
    is taken from ``kernel`` (``/proc/net/tcp`` and ``/proc/net/tcp6``, read in the same round),
    never from its look: a ``*`` the kernel lists as IPv4 is the IPv4 wildcard (and then every
    IPv6 wildcard of that output has an unknown dual-stack answer, ``OLD_SS_V6ONLY``); one it
    lists as IPv6 is the dual-stack wildcard. A ``*`` the tables cannot settle (a socket opened
    or closed between the reads) is taken as the widest reading, the dual-stack wildcard, with
    a note. Other addresses carry their family in their text (dotted IPv4; bracketed or
    colon-separated IPv6; ``::ffff:a.b.c.d`` v4-mapped).

    Without ``kernel``, ``*`` is read as newer ss prints it, and the unbracketed IPv6 of old
    ss is refused (in that dialect ``*`` means something else). ``users:((...),(...))`` lists
    every process sharing the socket; all are kept.
    """
    rows: list[_SsRow] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        first = stripped.split(None, 1)[0]
        if first in ("State", "Netid"):
            continue  # header of plain `ss -tlnp`
        body = stripped
        if first in _SS_NETIDS:
            if first != "tcp":
                continue
            body = stripped[len(first) :].lstrip()
        match = _SS_ROW.match(body)
        if match is None:
            raise ParseError(
                _SS_SOURCE,
                "expected 'STATE RECV-Q SEND-Q LOCAL:PORT PEER:PORT [users:(...)]'",
                line_no=line_no,
                line=line,
            )
        state = match["state"]
        if state not in _SS_STATES:
            raise ParseError(_SS_SOURCE, f"unknown socket state {state!r}", line_no=line_no, line=line)
        if state != "LISTEN":
            continue
        row = _parse_ss_local(match["local"], line_no, line, legacy_ok=kernel is not None)
        rest = match["rest"] or ""
        if "users:(" in rest:
            users = _SS_USERS.search(rest)
            found = [(m["name"], int(m["pid"])) for m in _SS_USER.finditer(users["body"])] if (users) else []
            if not found:
                raise ParseError(_SS_SOURCE, "cannot parse the users:(...) column", line_no=line_no, line=line)
            row.processes = _unique_processes(found)
        rows.append(row)
    notes = _resolve_stars(rows, kernel)
    out: list[Listener] = []
    for index, row in enumerate(rows):
        assert row.ip is not None and row.family is not None
        listener = _make(
            row.ip,
            row.port,
            family=row.family,
            dual_stack=row.dual,
            raw=row.line,
            processes=row.processes,
            interface=row.iface,
            dual_stack_known=index not in notes and not row.legacy,
        )
        if index in notes:
            listener = replace(listener, notes=notes[index])
        out.append(listener)
    return out


def _resolve_stars(rows: list[_SsRow], kernel: KernelTables | None) -> dict[int, tuple[str, ...]]:
    """Give every ``*`` row its family (see ``parse_ss``); returns the notes by row index."""
    notes: dict[int, tuple[str, ...]] = {}
    stars = [index for index, row in enumerate(rows) if row.ip is None]
    if kernel is None:
        for index in stars:
            rows[index].ip, rows[index].family, rows[index].dual = ipaddress.IPv6Address("::"), "ipv6", True
        return notes

    def shown(family: Family, port: int) -> int:
        return sum(
            1
            for row in rows
            if row.port == port and row.family == family and row.ip is not None and row.ip.is_unspecified
        )

    old_dialect = any(row.legacy for row in rows)
    for port in sorted({rows[index].port for index in stars}):
        at_port = [index for index in stars if rows[index].port == port]
        free4 = kernel.wildcards("ipv4", port) - shown("ipv4", port)
        free6 = kernel.wildcards("ipv6", port) - shown("ipv6", port)
        if free4 >= len(at_port) and free6 <= 0:
            old_dialect = True
            for index in at_port:
                rows[index].ip, rows[index].family = ipaddress.IPv4Address("0.0.0.0"), "ipv4"
            continue
        for index in at_port:
            rows[index].ip, rows[index].family, rows[index].dual = ipaddress.IPv6Address("::"), "ipv6", True
            if not (free6 >= len(at_port) and free4 <= 0):
                notes[index] = (
                    f"family not known: the kernel lists {kernel.wildcards('ipv4', port)} IPv4 and "
                    f"{kernel.wildcards('ipv6', port)} IPv6 wildcard listener(s) at port {port} (a socket may "
                    "have opened or closed between the reads); taken as the widest reading, IPv4 and IPv6",
                )
    for index, row in enumerate(rows):
        if index in stars or row.family != "ipv6" or row.ip is None or not row.ip.is_unspecified:
            continue
        if old_dialect:
            row.dual = False
            notes[index] = (OLD_SS_V6ONLY,)
    return notes


def _parse_ss_local(token: str, line_no: int, line: str, *, legacy_ok: bool) -> _SsRow:
    host, sep, port_text = token.rpartition(":")
    if not sep or not host:
        raise ParseError(
            _SS_SOURCE,
            f"cannot parse local address {token!r} (expected ADDRESS:PORT)",
            line_no=line_no,
            line=line,
        )
    port = _port_or_error(port_text, source=_SS_SOURCE, line_no=line_no, line=line)
    iface: str | None = None
    if host.startswith("["):
        inner, bracket, after = host[1:].partition("]")
        if not bracket or (after and not after.startswith("%")) or after == "%":
            raise ParseError(_SS_SOURCE, f"cannot parse local address {token!r}", line_no=line_no, line=line)
        iface = after[1:] or None
        ip = _ip_or_error(inner, source=_SS_SOURCE, line_no=line_no, line=line, what="local address")
        if not isinstance(ip, ipaddress.IPv6Address):
            raise ParseError(_SS_SOURCE, f"bracketed address {inner!r} is not IPv6", line_no=line_no, line=line)
        return _SsRow(line_no, line, ip, port, "ipv6", False, iface, False)
    if "%" in host:
        host, _, iface_text = host.partition("%")
        iface = iface_text or None
    if host == "*":
        # The IPv4 wildcard (older ss) or the dual-stack IPv6 one (newer ss): the kernel settles it.
        return _SsRow(line_no, line, None, port, None, False, iface, False)
    if ":" in host:
        if not legacy_ok:
            raise ParseError(
                _SS_SOURCE,
                f"unbracketed IPv6 address {host!r}: legacy ss output (iproute2 < 4), whose '*' "
                "means the IPv4 wildcard; not read without the kernel's tables",
                line_no=line_no,
                line=line,
            )
        ip = _ip_or_error(host, source=_SS_SOURCE, line_no=line_no, line=line, what="local address")
        if not isinstance(ip, ipaddress.IPv6Address):
            raise ParseError(_SS_SOURCE, f"cannot parse local address {token!r}", line_no=line_no, line=line)
        return _SsRow(line_no, line, ip, port, "ipv6", False, iface, True)
    ip = _ip_or_error(host, source=_SS_SOURCE, line_no=line_no, line=line, what="local address")
    return _SsRow(line_no, line, ip, port, "ipv4", False, iface, False)


# -- lsof ----------------------------------------------------------------------------------------

_LSOF_SOURCE = "lsof -nP -iTCP -sTCP:LISTEN"
_LSOF_FIELDS_SOURCE = "lsof -nP -iTCP -sTCP:LISTEN -Fpcnt"
_LSOF_ROW = re.compile(
    r"^(?P<command>\S+)\s+(?P<pid>\d+)\s+.*?\s(?P<type>IPv4|IPv6)\s+(?P<device>\S+)\s+"
    r"(?:(?P<sizeoff>\S+)\s+)?(?P<node>TCP|UDP)\s+(?P<name>\S+)"
    r"(?:\s+\((?P<state>[A-Z_0-9]+)\))?\s*$"
)
_LSOF_HEX = re.compile(r"\\x([0-9a-fA-F]{2})")


def _lsof_command(text: str) -> str:
    """lsof escapes spaces and unprintable bytes in COMMAND as ``\\xNN``; undo that."""
    return _LSOF_HEX.sub(lambda m: chr(int(m[1], 16)), text)


def _parse_lsof_name(
    name: str, type_: str | None, *, source: str, line_no: int, line: str
) -> tuple[IPAddress, int, Family, bool, str | None]:
    """``*:4000``, ``127.0.0.1:4020``, ``[::1]:4042`` -> address, port, family, known, iface.

    The 4th item says whether the dual-stack question is settled (it never is for ``*`` on
    IPv6). An IPv6 socket printed with a dotted address is a v4-mapped bind.
    """
    host, sep, port_text = name.rpartition(":")
    if not sep or not host:
        raise ParseError(
            source,
            f"cannot parse NAME {name!r} (expected ADDRESS:PORT)",
            line_no=line_no,
            line=line,
        )
    port = _port_or_error(port_text, source=source, line_no=line_no, line=line)
    iface: str | None = None
    if host == "*":
        if type_ is None:
            raise ParseError(
                source,
                "'*' without the type field: cannot tell 0.0.0.0 from '::' (request the t field, -Fpcnt)",
                line_no=line_no,
                line=line,
            )
        if type_ == "IPv4":
            return ipaddress.IPv4Address("0.0.0.0"), port, "ipv4", True, None
        return ipaddress.IPv6Address("::"), port, "ipv6", False, None
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        if "%" in inner:
            inner, _, iface_text = inner.partition("%")
            iface = iface_text or None
        ip = _ip_or_error(inner, source=source, line_no=line_no, line=line, what="address")
        if type_ == "IPv4" or not isinstance(ip, ipaddress.IPv6Address):
            raise ParseError(
                source,
                f"bracketed address {inner!r} on a non-IPv6 socket",
                line_no=line_no,
                line=line,
            )
        return ip, port, "ipv6", True, iface
    if "%" in host:
        host, _, iface_text = host.partition("%")
        iface = iface_text or None
    ip = _ip_or_error(host, source=source, line_no=line_no, line=line, what="address")
    if isinstance(ip, ipaddress.IPv6Address):
        raise ParseError(source, f"unbracketed IPv6 address {host!r}", line_no=line_no, line=line)
    if type_ == "IPv6":
        mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
        return mapped, port, "ipv6", True, iface
    return ip, port, "ipv4", True, iface


def parse_lsof(text: str) -> list[Listener]:
    """Parse ``lsof -nP -iTCP -sTCP:LISTEN`` (Linux and macOS; header line expected).

    ``*`` is ``0.0.0.0`` on an IPv4 row and ``::`` on an IPv6 row; lsof cannot show whether
    an IPv6 wildcard is dual-stack, so ``dual_stack=False, dual_stack_known=False``. Rows for
    the same binding (one per process/descriptor) are merged (see ``_merge_same_binding``).
    Rows in a state other than LISTEN are skipped; a row without a state is refused, because
    then a bound-but-idle socket cannot be told from a listener.
    """
    found: list[Listener] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("COMMAND ") or stripped.startswith("lsof: WARN"):
            continue
        match = _LSOF_ROW.match(stripped)
        if match is None:
            raise ParseError(
                _LSOF_SOURCE,
                "expected 'COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME (STATE)' with TYPE IPv4/IPv6",
                line_no=line_no,
                line=line,
            )
        if match["node"] != "TCP":
            continue
        state = match["state"]
        if state is None:
            raise ParseError(_LSOF_SOURCE, "no TCP state after NAME (was -T given?)", line_no=line_no, line=line)
        if state != "LISTEN" or "->" in match["name"]:
            continue
        ip, port, family, known, iface = _parse_lsof_name(
            match["name"], match["type"], source=_LSOF_SOURCE, line_no=line_no, line=line
        )
        processes = ((_lsof_command(match["command"]), int(match["pid"])),)
        found.append(
            _make(
                ip,
                port,
                family=family,
                dual_stack=False,
                raw=line,
                processes=processes,
                interface=iface,
                dual_stack_known=known,
            )
        )
    return _merge_same_binding(found)


_LSOF_KNOWN_FIELDS = frozenset("acdfgiklnopstuCDFGKLMNPRSTZ")


def parse_lsof_fields(text: str) -> list[Listener]:
    """Parse lsof field output: ``lsof -nP -iTCP -sTCP:LISTEN -Fpcnt`` (``-F0`` tolerated).

    A process set starts with ``p``; a file set starts with ``f`` or, when the descriptor
    field was not requested, with a repeat of a field the current file already has. ``t``
    (IPv4/IPv6) is needed to read ``*``; without it ``*`` is refused, and a dotted address is
    taken as IPv4 (it could be a v4-mapped IPv6 bind; both accept the same connections).
    ``T`` (``TST=LISTEN``) and ``P`` (``TCP``) are honoured when present.
    """
    found: list[Listener] = []
    pid: int | None = None
    command: str | None = None
    current: dict[str, list[str]] = {}
    start_line = 0
    raw_lines: list[str] = []

    def flush() -> None:
        if not current:
            return
        raw = "\n".join(raw_lines)
        if "n" not in current:
            raise ParseError(
                _LSOF_FIELDS_SOURCE,
                "file set without an n (name) field",
                line_no=start_line,
                line=raw,
            )
        if pid is None:
            raise ParseError(
                _LSOF_FIELDS_SOURCE,
                "file set before any p (pid) field",
                line_no=start_line,
                line=raw,
            )
        name = current["n"][0]
        protocol = current.get("P", ["TCP"])[0]
        states = [t[4:] for t in current.get("T", []) if t.startswith("ST=")]
        if protocol != "TCP" or (states and states[0] != "LISTEN") or "->" in name:
            return
        type_ = current.get("t", [None])[0]
        if type_ is not None and type_ not in ("IPv4", "IPv6"):
            raise ParseError(
                _LSOF_FIELDS_SOURCE,
                f"type {type_!r} is not IPv4/IPv6",
                line_no=start_line,
                line=raw,
            )
        ip, port, family, known, iface = _parse_lsof_name(
            name, type_, source=_LSOF_FIELDS_SOURCE, line_no=start_line, line=raw
        )
        if type_ is None:
            family = "ipv6" if isinstance(ip, ipaddress.IPv6Address) else "ipv4"
        processes = ((command, pid),) if command is not None else ()
        found.append(
            _make(
                ip,
                port,
                family=family,
                dual_stack=False,
                raw=raw,
                processes=processes,
                pid=pid,
                interface=iface,
                dual_stack_known=known,
            )
        )

    lines = text.replace("\0", "\n").splitlines()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, value = line[0], line[1:]
        if key not in _LSOF_KNOWN_FIELDS:
            raise ParseError(_LSOF_FIELDS_SOURCE, f"unknown field identifier {key!r}", line_no=line_no, line=line)
        if key == "p":
            flush()
            current, raw_lines = {}, []
            if not value.isdigit():
                raise ParseError(
                    _LSOF_FIELDS_SOURCE,
                    f"pid {value!r} is not a number",
                    line_no=line_no,
                    line=line,
                )
            pid, command = int(value), None
            continue
        if key in "cgRuLk" and not current:
            if key == "c":
                command = _lsof_command(value)
            continue  # process-level fields
        new_file = key == "f" or (key in "tnPdDsoi" and key in current)
        if new_file:
            flush()
            current, raw_lines = {}, []
        if not current:
            start_line = line_no
        current.setdefault(key, []).append(value)
        raw_lines.append(line)
    flush()
    return _merge_same_binding(found)


# -- netstat ---------------------------------------------------------------------------------

_NETSTAT_LINUX_SOURCE = "netstat -tlnp"
_NETSTAT_LINUX_ROW = re.compile(
    r"^(?P<proto>tcp6?)\s+(?P<recvq>\d+)\s+(?P<sendq>\d+)\s+(?P<local>\S+)\s+(?P<foreign>\S+)"
    r"\s+(?P<state>[A-Z_0-9]+)(?:\s+(?P<prog>\S.*?))?\s*$"
)
# net-tools cuts "address" so that address + port fits 22 characters unless -W/--wide is given.
_NETSTAT_LINUX_WIDTH = 22


def parse_netstat_linux(text: str, *, wide: bool | None = None) -> list[Listener]:
    """Parse net-tools ``netstat -tlnp`` (or ``-tln``); a fallback where ``ss`` is missing.

    ``tcp6`` with ``::`` cannot say whether the socket is dual-stack (``dual_stack_known``
    False); ``tcp6`` with a dotted address is a v4-mapped bind. Without ``-W`` net-tools
    silently truncates long IPv6 addresses (``fe80::fc:ff:fe00:1:47109`` becomes
    ``fe80::fc:ff:fe00::47109``), so an IPv6 address whose length hits the cut exactly is
    refused unless ``wide=True``; ``wide=None`` infers wide mode from any longer row.
    """
    rows: list[tuple[int, str, re.Match[str]]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(
            (
                "Active Internet",
                "Proto ",
                "(Not all processes",
                "will not be shown",
                "(No info could be read",
            )
        ):
            continue
        if stripped.startswith("Active "):
            break  # UNIX domain / Bluetooth sections follow the Internet one
        if stripped.split(None, 1)[0] in ("udp", "udp6", "raw", "raw6", "udpl", "udpl6"):
            continue
        match = _NETSTAT_LINUX_ROW.match(stripped)
        if match is None:
            raise ParseError(
                _NETSTAT_LINUX_SOURCE,
                "expected 'tcp|tcp6 RECV-Q SEND-Q LOCAL FOREIGN STATE [PID/PROGRAM]'",
                line_no=line_no,
                line=line,
            )
        rows.append((line_no, line, match))
    if wide is None:
        wide = any(len(m["local"]) > _NETSTAT_LINUX_WIDTH + 1 for _, _, m in rows)
    out: list[Listener] = []
    for line_no, line, match in rows:
        if match["state"] != "LISTEN":
            continue
        host, sep, port_text = match["local"].rpartition(":")
        if not sep or not host:
            raise ParseError(
                _NETSTAT_LINUX_SOURCE,
                f"cannot parse local address {match['local']!r} (expected ADDRESS:PORT)",
                line_no=line_no,
                line=line,
            )
        port = _port_or_error(port_text, source=_NETSTAT_LINUX_SOURCE, line_no=line_no, line=line)
        if not wide and ":" in host and len(host) + len(port_text) == _NETSTAT_LINUX_WIDTH:
            raise ParseError(
                _NETSTAT_LINUX_SOURCE,
                f"IPv6 address {host!r} may be truncated; run netstat with -W/--wide",
                line_no=line_no,
                line=line,
            )
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            hint = "; truncated? run netstat with -W/--wide" if not wide else ""
            raise ParseError(
                _NETSTAT_LINUX_SOURCE,
                f"cannot parse local address {host!r} as an IP address{hint}",
                line_no=line_no,
                line=line,
            ) from None
        known = True
        family: Family
        if match["proto"] == "tcp":
            if not isinstance(ip, ipaddress.IPv4Address):
                raise ParseError(
                    _NETSTAT_LINUX_SOURCE,
                    f"IPv6 address {host!r} on a tcp (IPv4) row",
                    line_no=line_no,
                    line=line,
                )
            family = "ipv4"
        else:
            family = "ipv6"
            if isinstance(ip, ipaddress.IPv4Address):
                ip = ipaddress.IPv6Address(f"::ffff:{ip}")
            elif ip.is_unspecified:
                known = False
        pid: int | None = None
        processes: tuple[tuple[str, int], ...] = ()
        prog = match["prog"]
        if prog is not None and prog != "-":
            pid_text, slash, name = prog.partition("/")
            if not slash or not pid_text.isdigit():
                raise ParseError(
                    _NETSTAT_LINUX_SOURCE,
                    f"cannot parse PID/Program {prog!r}",
                    line_no=line_no,
                    line=line,
                )
            pid = int(pid_text)
            processes = ((name, pid),)
        out.append(
            _make(
                ip,
                port,
                family=family,
                dual_stack=False,
                raw=line,
                processes=processes,
                pid=pid,
                dual_stack_known=known,
            )
        )
    return out


_NETSTAT_MACOS_SOURCE = "netstat -anv -p tcp"
# BSD netstat prints at most 16 characters of an IPv6 host unless -W is given.
_NETSTAT_MACOS_V6_CUT = 16
_PROCESS_PID = re.compile(r"^(?P<name>.+?)\s*:(?P<pid>\d+)$")
# Columns every macOS release prints before the optional verbose ones.
_NETSTAT_MACOS_FIXED = 6


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """One LISTEN row of a secondary source that could not be read, and why.

    ``port`` is the port when the row still showed one (a truncated IPv6 host keeps its
    ``.port`` tail), so a caller can degrade only what that row would have told it.
    """

    line_no: int
    line: str
    port: int | None
    error: ParseError


@dataclass(frozen=True, slots=True)
class NetstatReading:
    """What ``read_netstat_macos`` could read, and the LISTEN rows it could not."""

    listeners: list[Listener]
    skipped: list[SkippedRow]


@dataclass(frozen=True, slots=True)
class _MacosHeader:
    pid_index: int | None
    process_index: int | None
    after_process: int


def _macos_header(stripped: str) -> _MacosHeader:
    joined = stripped.replace("Local Address", "Local-Address").replace("Foreign Address", "Foreign-Address")
    header = joined.split()
    process_index = header.index("process:pid") if "process:pid" in header else None
    return _MacosHeader(
        pid_index=header.index("pid") if "pid" in header else None,
        process_index=process_index,
        after_process=len(header) - process_index - 1 if process_index is not None else 0,
    )


def _macos_process(tokens: list[str], header: _MacosHeader) -> tuple[str, int] | None:
    """The ``name:pid`` cell of macOS 26 netstat, whose name may contain spaces.

    netstat (network_cmds, macOS 26) prints the process name cut to 16 characters followed by
    ``:pid`` in one right-aligned column, so ``Google Drive:1341`` and
    ``Antigravity IDE :2086`` are split by whitespace into several tokens. The cell is every
    token between the header's column position and the fixed number of columns after it.
    """
    if header.process_index is None:
        return None
    end = len(tokens) - header.after_process
    if end <= header.process_index:
        return None
    match = _PROCESS_PID.match(" ".join(tokens[header.process_index : end]))
    if match is None:
        return None
    return match["name"], int(match["pid"])


def read_netstat_macos(text: str, *, wide: bool | None = None) -> NetstatReading:
    """Read macOS ``netstat -anv -p tcp``, keeping going past LISTEN rows it cannot read.

    netstat is a secondary source on macOS (lsof is the primary one): a row it cannot read,
    such as an IPv6 link-local host cut to 16 characters (``fe80::c4c8:5ff:f.62503``,
    recorded on macOS 26), must not cost the caller the rows it could read. Such rows are
    returned in ``skipped`` with their error and, when readable, their port. Problems with the
    output as a whole (no header, an unknown protocol) still raise ParseError.

    The pid column moves between macOS releases (``rxbytes``/``txbytes`` appeared in 15, and
    26 replaced ``pid``/``epid`` with one ``process:pid`` column whose name may contain
    spaces), so columns are located from the ``Proto`` header after joining ``Local
    Address``/``Foreign Address`` into one column each. Addresses are ``host.port`` split on
    the LAST dot; ``*`` is ``0.0.0.0`` on ``tcp4`` and ``::`` on ``tcp6``/``tcp46``;
    ``tcp46`` is the dual-stack wildcard. ``%scope`` goes to ``interface``. BSD netstat
    truncates IPv6 hosts to 16 characters without ``-W``; a host of exactly that length is
    refused unless ``wide=True`` (or a longer host proves -W).
    """
    header: _MacosHeader | None = None
    in_internet = True
    rows: list[tuple[int, str, list[str], _MacosHeader]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("Active "):
            in_internet = stripped.startswith("Active Internet")
            continue
        if not in_internet:
            continue  # Multipath / UNIX sections have their own columns
        if stripped.startswith("Proto "):
            header = _macos_header(stripped)
            continue
        tokens = stripped.split()
        if not tokens[0].startswith("tcp"):
            if tokens[0].startswith(("udp", "icm", "raw")):
                continue
            raise ParseError(_NETSTAT_MACOS_SOURCE, "expected a tcp4/tcp6/tcp46 row", line_no=line_no, line=line)
        if header is None:
            raise ParseError(
                _NETSTAT_MACOS_SOURCE,
                "row before the 'Proto ...' header: cannot locate the pid column",
                line_no=line_no,
                line=line,
            )
        if tokens[0] not in ("tcp4", "tcp6", "tcp46") or len(tokens) < _NETSTAT_MACOS_FIXED:
            raise ParseError(
                _NETSTAT_MACOS_SOURCE,
                "expected 'tcp4|tcp6|tcp46 RECV-Q SEND-Q LOCAL FOREIGN STATE ...'",
                line_no=line_no,
                line=line,
            )
        rows.append((line_no, line, tokens, header))
    if wide is None:
        wide = any(len(t[3].rpartition(".")[0].partition("%")[0]) > _NETSTAT_MACOS_V6_CUT for _, _, t, _ in rows)
    out: list[Listener] = []
    skipped: list[SkippedRow] = []
    for line_no, line, tokens, row_header in rows:
        if tokens[5] != "LISTEN":
            continue
        port_text = tokens[3].rpartition(".")[2]
        try:
            out.append(_macos_row(line_no, line, tokens, row_header, wide=wide))
        except ParseError as exc:
            port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else None
            skipped.append(SkippedRow(line_no, line, port, exc))
    return NetstatReading(out, skipped)


def _macos_row(line_no: int, line: str, tokens: list[str], header: _MacosHeader, *, wide: bool) -> Listener:
    proto = tokens[0]
    host, sep, port_text = tokens[3].rpartition(".")
    if not sep or not host or not port_text.isdigit():
        raise ParseError(
            _NETSTAT_MACOS_SOURCE,
            f"cannot parse local address {tokens[3]!r} (expected ADDRESS.PORT)",
            line_no=line_no,
            line=line,
        )
    port = _port_or_error(port_text, source=_NETSTAT_MACOS_SOURCE, line_no=line_no, line=line)
    iface: str | None = None
    if "%" in host:
        host, _, iface_text = host.partition("%")
        iface = iface_text or None
    family: Family = "ipv4" if proto == "tcp4" else "ipv6"
    dual = False
    if host == "*":
        ip: IPAddress = ipaddress.IPv4Address("0.0.0.0") if family == "ipv4" else ipaddress.IPv6Address("::")
        dual = proto == "tcp46"
    else:
        if not wide and ":" in host and len(host) == _NETSTAT_MACOS_V6_CUT:
            raise ParseError(
                _NETSTAT_MACOS_SOURCE,
                f"IPv6 address {host!r} may be truncated; run netstat with -W",
                line_no=line_no,
                line=line,
            )
        ip = _ip_or_error(host, source=_NETSTAT_MACOS_SOURCE, line_no=line_no, line=line, what="local address")
        if family == "ipv4" and not isinstance(ip, ipaddress.IPv4Address):
            raise ParseError(
                _NETSTAT_MACOS_SOURCE,
                f"IPv6 address {host!r} on a tcp4 row",
                line_no=line_no,
                line=line,
            )
        if family == "ipv6" and isinstance(ip, ipaddress.IPv4Address):
            ip = ipaddress.IPv6Address(f"::ffff:{ip}")
    pid: int | None = None
    process: str | None = None
    if header.pid_index is not None:
        if len(tokens) <= header.pid_index or not tokens[header.pid_index].isdigit():
            raise ParseError(
                _NETSTAT_MACOS_SOURCE,
                "no numeric value in the pid column",
                line_no=line_no,
                line=line,
            )
        pid = int(tokens[header.pid_index])
    named = _macos_process(tokens, header)
    if named is None and header.process_index is None and len(tokens) > _NETSTAT_MACOS_FIXED:
        # A trailing name:pid after the last header column (no spaces possible there).
        tail = _PROCESS_PID.match(tokens[-1])
        named = (tail["name"], int(tail["pid"])) if tail is not None else None
    if named is not None and (pid is None or named[1] == pid):
        process, pid = named
    elif header.process_index is not None:
        raise ParseError(
            _NETSTAT_MACOS_SOURCE,
            "no 'name:pid' in the process:pid column",
            line_no=line_no,
            line=line,
        )
    processes = ((process, pid),) if process is not None and pid is not None else ()
    return _make(
        ip,
        port,
        family=family,
        dual_stack=dual,
        raw=line,
        processes=processes,
        pid=pid,
        interface=iface,
    )


def parse_netstat_macos(text: str, *, wide: bool | None = None) -> list[Listener]:
    """Parse macOS ``netstat -anv -p tcp`` strictly: any unreadable LISTEN row raises.

    See ``read_netstat_macos`` for the format; use that one where netstat only enriches
    another source.
    """
    reading = read_netstat_macos(text, wide=wide)
    if reading.skipped:
        raise reading.skipped[0].error
    return reading.listeners


# -- the kernel's tables alone (ss without -H) -------------------------------------------------

_PROC_SOURCE = {"ipv4": "/proc/net/tcp", "ipv6": "/proc/net/tcp6"}
PROC_V6ONLY = "read from /proc/net/tcp6, which does not show IPV6_V6ONLY: this IPv6 wildcard may also accept IPv4"


def _proc_address(socket: KernelSocket) -> IPAddress:
    """The local address of a row: 32-bit words as the host stores them, read little-endian.

    Little-endian is the byte order of the hosts this harness meets (x86-64, arm64); the
    all-zero wildcard reads the same in either order.
    """
    words = [socket.local_hex[index : index + 8] for index in range(0, len(socket.local_hex), 8)]
    raw = b"".join(bytes.fromhex(word)[::-1] for word in words)
    return ipaddress.IPv4Address(raw) if socket.family == "ipv4" else ipaddress.IPv6Address(raw)


def listeners_from_kernel(kernel: KernelTables) -> list[Listener]:
    """The listening sockets (state 0A, TCP_LISTEN) of ``/proc/net/tcp`` and ``/proc/net/tcp6``.

    For a host whose ss cannot be asked: family (the file), address and port are the kernel's
    own; the owning process is not in these files (only uid and inode), so ``pid`` is None. An
    IPv6 wildcard's dual-stack answer is not known (``PROC_V6ONLY``). A v4-mapped bind
    (``::ffff:a.b.c.d``) keeps its IPv6 family and accepts IPv4 to ``a.b.c.d`` only.
    """
    out: list[Listener] = []
    for socket in (*kernel.tcp, *(kernel.tcp6 or ())):
        if socket.state != _TCP_LISTEN:
            continue
        ip = _proc_address(socket)
        wildcard6 = socket.family == "ipv6" and ip.is_unspecified
        listener = _make(
            ip,
            socket.port,
            family=socket.family,
            dual_stack=False,
            raw=f"{_PROC_SOURCE[socket.family]}: {socket.raw.strip()}",
            dual_stack_known=not wildcard6,
        )
        out.append(listener)
    # SO_REUSEPORT siblings are one binding; the note goes on after the merge (which rebuilds).
    return [
        replace(item, notes=(PROC_V6ONLY,)) if not item.dual_stack_known else item for item in _merge_same_binding(out)
    ]
