"""Listening sockets on macOS: lsof is the primary source, netstat only enriches it.

lsof (``lsof -nP -iTCP -sTCP:LISTEN``) names every listening socket and its process, but it
prints a dual-stack IPv6 wildcard and a v6-only one the same way (``*:port`` on an IPv6 row).
netstat (``netstat -anv -p tcp``) tells them apart (``tcp46`` versus ``tcp6``), so it is read
only for that. A netstat row that cannot be read (macOS netstat cuts IPv6 hosts to 16
characters without ``-W``; a link-local host such as ``fe80::c4c8:5ff:f.62503`` was recorded
that way on macOS 26) must never cost what lsof said: the sockets on that row's port keep
lsof's answer ("dual-stack unknown") and carry a note saying why, and every other socket is
enriched as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from conformance.facts.parsers import Listener, ParseError, parse_lsof, read_netstat_macos


@dataclass(frozen=True, slots=True)
class MacosListeners:
    listeners: list[Listener]
    notes: list[str]


def combine(lsof_text: str, netstat_text: str | None, netstat_problem: str | None = None) -> MacosListeners:
    """lsof's listeners, with netstat's ``tcp46`` marking the dual-stack wildcards.

    Raises ParseError only when lsof's own output cannot be read. ``netstat_text`` is None
    when netstat was not run or failed; ``netstat_problem`` then says why, as a note.
    """
    listeners = parse_lsof(lsof_text)
    if netstat_text is None:
        return MacosListeners(listeners, [f"dual-stack not checked: {netstat_problem}"] if netstat_problem else [])
    try:
        reading = read_netstat_macos(netstat_text)
    except ParseError as exc:
        note = f"dual-stack not checked: netstat output unreadable ({exc})"
        return MacosListeners([_noted(item, note) if _needs_netstat(item) else item for item in listeners], [note])
    dual = {(item.port, item.pid) for item in reading.listeners if item.dual_stack}
    notes: list[str] = []
    degraded_ports: dict[int, str] = {}
    degraded_all: str | None = None
    for row in reading.skipped:
        text = f"netstat line {row.line_no} unreadable ({row.error.reason})"
        notes.append(f"{text}: dual-stack not known for port {row.port if row.port is not None else '(unknown)'}")
        if row.port is None:
            degraded_all = text
        else:
            degraded_ports[row.port] = text
    out: list[Listener] = []
    for item in listeners:
        reason = degraded_ports.get(item.port, degraded_all)
        if reason is not None and _needs_netstat(item):
            out.append(_noted(item, f"dual-stack not known: {reason}"))
        elif (item.port, item.pid) in dual:
            # netstat's tcp46 is the authority lsof lacks: that socket also accepts IPv4.
            out.append(replace(item, dual_stack=True, dual_stack_known=True))
        else:
            out.append(item)
    return MacosListeners(out, notes)


def _needs_netstat(listener: Listener) -> bool:
    """Only an IPv6 wildcard's dual-stack question is left open by lsof."""
    return not listener.dual_stack_known


def _noted(listener: Listener, note: str) -> Listener:
    return replace(listener, notes=(*listener.notes, note))
