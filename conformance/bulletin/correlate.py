"""One problem, one entry, also among violations: violations that share a cause are one incident.

A contract that knows what on the host makes its violation names it as a cause (the same
listener, the same environment variable, the same file: ``Result.causes``). Violations of
one run that share a cause, directly or through each other, are one incident: one bulletin
entry that lists every contract it breaks, under the most severe one's fingerprint, owner
and severity (among equally severe ones, the most specific subject's). The incident stays
open while any of them fails and resolves when all pass. Outages already work this way
(``blocked_by``). A broken result joins an incident only when its check names the cause
itself (a health endpoint refused where the listener should be) and a violation shares
it; a check that could not be checked for its own reasons is never folded in. The one
exception is the monitor's own access: checks that sudo refused on one host share that
cause (``results.access_cause``) and are one incident even with no violation among them.

An incident keeps its fingerprint across runs: when one of its members already leads an
open entry, that entry goes on (so one lasting problem never becomes resolved+opened).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.bulletin import events
from conformance.results import Outcome, Result, access_cause

SEVERITY_RANK = {"critical": 0, "major": 1, "minor": 2}
ACCESS_CAUSE_PREFIX = access_cause("").split(" ", 1)[0] + " "


@dataclass
class Incident:
    lead: str  # the fingerprint the entry is kept under
    result: Result  # the result that describes it (the lead's, or its most severe member's)
    members: list[str] = field(default_factory=list)  # every fingerprint, the lead's included
    contracts: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)


def _rank(result: Result, fingerprint: str) -> tuple[int, int, str]:
    """Most severe first; among equals the most specific subject (a port, then a service),
    which is the one nearest the cause (the exposed port's own contract, not the host's)."""
    subject = result.subject
    if subject is None:
        return 1, 0, fingerprint
    specificity = (subject.port is not None) * 2 + (subject.service is not None)
    return SEVERITY_RANK.get(subject.severity, 1), -specificity, fingerprint


def _host_first(result: Result, fingerprint: str) -> tuple[int, int, str]:
    subject = result.subject
    if subject is None:
        return 0, 1, fingerprint
    specificity = (subject.port is not None) * 2 + (subject.service is not None)
    return specificity, SEVERITY_RANK.get(subject.severity, 1), fingerprint


def correlate(roots: Mapping[str, Result], open_entries: Mapping[str, Any]) -> list[Incident]:
    """The incidents among ``roots`` (fingerprint -> failing result) with more than one member.

    ``open_entries``: fingerprint -> open problem (its ``opened`` entry lists the members of
    an incident), so an incident already open keeps its lead.
    """
    parent: dict[str, str] = {}

    def find(item: str) -> str:
        while parent.setdefault(item, item) != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    by_cause: dict[str, str] = {}
    for fingerprint, result in sorted(roots.items()):
        if result.outcome not in (Outcome.VIOLATED, Outcome.BROKEN) or not result.causes:
            continue
        find(fingerprint)
        for cause in result.causes:
            if cause in by_cause:
                parent[find(fingerprint)] = find(by_cause[cause])
            else:
                by_cause[cause] = fingerprint
    groups: dict[str, list[str]] = {}
    for fingerprint in parent:
        groups.setdefault(find(fingerprint), []).append(fingerprint)
    incidents = []
    for members in groups.values():
        if len(members) < 2 or not (
            any(roots[fp].outcome is Outcome.VIOLATED for fp in members)
            or any(cause.startswith(ACCESS_CAUSE_PREFIX) for fp in members for cause in roots[fp].causes)
        ):
            continue
        members.sort()
        # a violation describes the incident before a check that could not tell
        ranked = sorted(members, key=lambda fp: (roots[fp].outcome is not Outcome.VIOLATED, *_rank(roots[fp], fp)))
        if not any(roots[fp].outcome is Outcome.VIOLATED for fp in members):
            # Only the monitor's access: the host-wide check leads (the layer's owner runs the
            # monitor), not the most specific service's, which is not at fault.
            ranked = sorted(members, key=lambda fp: _host_first(roots[fp], fp))
        lead = next(
            (
                fp
                for fp, problem in sorted(open_entries.items())
                if fp in members or set(getattr(problem, "opened", {}).get(events.CORRELATED) or ()) & set(members)
            ),
            ranked[0],
        )
        describing = roots[lead] if lead in roots else roots[ranked[0]]
        incidents.append(
            Incident(
                lead=lead,
                result=describing,
                members=members,
                contracts=sorted({_contract(roots[fp]) for fp in members}),
                causes=sorted({cause for fp in members for cause in roots[fp].causes}),
            )
        )
    return incidents


def _contract(result: Result) -> str:
    subject = result.subject
    return (subject.contract or subject.check) if subject is not None else "?"
