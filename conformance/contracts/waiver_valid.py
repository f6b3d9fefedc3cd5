"""Each waiver of the site file is current and names a check of this inventory.

A waiver past its expiry no longer applies (the check counts again), and it is reported
here so its owner renews or removes it; a waiver whose contract and subject match no case
of the registry (a misspelt subject, a check that left the inventory) waives nothing, and
is reported too, rather than silently left in the site file.
"""

from __future__ import annotations

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.results import Result, passed, violated
from conformance.waivers import is_current, today, waiver_id, waiver_key


def known_keys(case: Case) -> set[tuple[str, str]]:
    """What the waivers of this inventory could name: every case's (contract, subject tail)."""
    from conformance.contracts import active_registry

    inventory = case.inventory
    return {
        waiver_key(other.subject(inventory))
        for other in active_registry().cases(inventory)
        if other.waiver is None and other.host
    }


def judge(case: Case) -> Result:
    waiver = case.waiver
    if waiver is None:
        return passed("no waiver")
    evidence = {"waiver": f"{waiver_id(waiver)}, owner {waiver.owner}, expires {waiver.expires}"}
    if not is_current(waiver, today()):
        return violated(
            f"the waiver of {waiver.contract} on {waiver.subject} expired on {waiver.expires}: renew or remove it",
            waiver.justification,
            **evidence,
        )
    if (waiver.contract, waiver.subject) not in known_keys(case):
        return violated(
            f"the waiver of {waiver.contract} on {waiver.subject} names no check of this inventory "
            "(unknown contract or subject): it waives nothing",
            **evidence,
        )
    return passed(f"the waiver of {waiver.contract} on {waiver.subject} is current until {waiver.expires}", **evidence)


CONTRACT = ContractSpec(
    id="waiver-valid",
    suite="contracts",
    scope=Scope.WAIVER,
    judge=judge,
    statement="Each waiver in the site file is current and names a check of the inventory.",
    rule="An expired waiver, or one that matches no contract and subject, is reported to its owner.",
)
