"""Waivers: accepted deviations declared in the site file, reviewed in git (InSpec-style).

A waived check still runs. Its violation becomes a ``waived`` result (a skipped test with
the justification in JUnit and Allure; the bulletin closes its entry instead of escalating
it) while the waiver is current. A waiver never covers more than its contract on its
subject, and with ``match`` only the failure it describes: any other failure on the same
subject counts, and so does a broken check (could not check is not the waived deviation).
An expired waiver stops applying (the check counts again, saying so). Each waiver is also
a case of the ``waiver-valid`` contract, which reports an expired waiver or one that names
no check of the inventory.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from conformance.inventory.model import Inventory, Waiver
from conformance.results import Outcome, Result, Subject


def today() -> date:
    return datetime.now(UTC).date()


def waiver_key(subject: Subject) -> tuple[str, str]:
    """(contract or check, the fingerprint after it): what a waiver names."""
    _layer, _contract, tail = subject.fingerprint.split("/", 2)
    return subject.contract or subject.check, tail


def waiver_id(waiver: Waiver) -> str:
    return f"{waiver.contract}@{waiver.subject}"


def find_waiver(inventory: Inventory, subject: Subject) -> Waiver | None:
    contract, tail = waiver_key(subject)
    return next((w for w in inventory.waivers if w.contract == contract and w.subject == tail), None)


def is_current(waiver: Waiver, on: date) -> bool:
    return on < waiver.expires


def apply_waiver(result: Result, inventory: Inventory, on: date) -> Result:
    """The result as reported: waived when a current waiver covers this very violation."""
    if result.subject is None or result.outcome is not Outcome.VIOLATED or not inventory.waivers:
        return result
    waiver = find_waiver(inventory, result.subject)
    if waiver is None:
        return result
    if not is_current(waiver, on):
        note = f"the waiver by {waiver.owner} expired on {waiver.expires}: this counts again"
        return replace(result, details=(*result.details, note))
    if waiver.match is not None and waiver.match not in result.render():
        note = f"the waiver by {waiver.owner} covers only a failure mentioning {waiver.match!r}: this one is not waived"
        return replace(result, details=(*result.details, note))
    return replace(
        result,
        outcome=Outcome.WAIVED,
        details=(*result.details, f"waived until {waiver.expires} by {waiver.owner}: {waiver.justification}"),
        evidence={**result.evidence, "waiver": f"{waiver_id(waiver)} (owner {waiver.owner})"},
    )


def skip_reason(result: Result) -> str:
    """The skipped test's message: the justification first, then the violation it waives."""
    return f"{result.details[-1] if result.details else 'waived'} (violation: {result.summary})"
