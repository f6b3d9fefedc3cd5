"""The outcome policy: how every contract's judgement becomes exactly one Result.

In order, for every case of every contract:

1. not applicable: the case's service is disabled or planned -> skipped, with the reason
   (unless the contract applies anyway, like a reserved port that must stay free);
2. blocked: the contract needs the service running and its unit is known to be down ->
   broken, blocked by the unit's own check (one outage, one root cause);
3. the judgement runs; a ``HostUnavailable`` becomes broken, blocked by the host's one root
   cause (the host-identity check of that host, which is the root itself);
4. any other ``CannotCheck`` (a fact missing, a parse error, a refused command) -> broken
   with its cause; a parse error is shown without the offending line, which may hold a key;
5. any other exception is a defect of the harness, and still a result: broken,
   "internal error in check X: ...", so the summary line, the bulletin and the report count
   it instead of a traceback bypassing them;
6. a violation that a current site waiver covers (its contract, its subject, and with
   ``match`` its very failure) -> waived: reported as skipped with the justification, never
   escalated (``conformance.waivers``).
"""

from __future__ import annotations

from datetime import date

from conformance.contracts.base import Case, ContractSpec
from conformance.errors import CannotCheck, HostUnavailable, ParseError
from conformance.inventory.model import Inventory, Port, Service
from conformance.paths import unit_of
from conformance.redact import redact
from conformance.results import Result, Subject, access_cause, broken, file_cause, skipped
from conformance.waivers import apply_waiver, today

ROOT_CHECK = "host-identity"
UNIT_CHECK = "unit-active"


def host_root_subject(inventory: Inventory, host: str) -> Subject:
    """The one subject an unreachable host is reported under: its host-identity check."""
    return Subject(
        check=ROOT_CHECK, host=host, owner=inventory.layer.owner, severity="critical", layer=inventory.layer.name
    )


def unit_root_subject(inventory: Inventory, service: Service, port: Port | None) -> Subject | None:
    """The subject of the unit-active check of the unit running ``service`` (or its instance)."""
    own_unit = port is not None and port.unit is not None
    unit = port.unit if own_unit and port is not None else service.unit
    if unit is None:
        return None
    return Subject(
        check=UNIT_CHECK,
        host=service.host,
        service=service.name,
        port=port.port if own_unit and port is not None else None,
        item=unit.name,
        owner=inventory.owner_of(service),
        severity="major",
        layer=inventory.layer.name,
    )


def evaluate(spec: ContractSpec, case: Case, on: date | None = None) -> Result:
    """Judge one case under the policy; never raises. ``on``: today's date, for waivers."""
    inventory = case.inventory
    subject = case.subject(inventory)
    service = case.service
    if service is not None and not service.is_live and not spec.applies_when_not_live:
        return skipped(f"{service.name} is {service.state}: {service.state_reason or 'not live'}").about(subject)
    try:
        if spec.needs_running and service is not None:
            blocker = stopped_service(case, service, case.port)
            if blocker is not None:
                return blocker.about(subject)
        result = spec.judge(case)
    except HostUnavailable as exc:
        is_root = spec.id == ROOT_CHECK and case.host == exc.host
        root = host_root_subject(inventory, exc.host)
        result = broken(
            f"{exc.host} could not be checked: {exc.cause}", blocked_by=None if is_root else root.fingerprint
        )
    except ParseError as exc:
        result = broken(f"could not check: {exc.safe_text()}")
    except CannotCheck as exc:
        result = broken(f"could not check: {exc}")
        unparsable = getattr(exc, "file", None)
        if unparsable:  # a file that does not parse: one incident with that file's own check
            result = result.caused_by(file_cause(unparsable))
        refused_on = getattr(exc, "refused_on", None)
        if refused_on:  # the monitor's missing sudo rule: one incident, however many checks
            result = result.caused_by(access_cause(refused_on))
    except Exception as exc:  # noqa: BLE001 - every failure must become a result
        result = broken(f"internal error in check {spec.id}: {type(exc).__name__}: {redact(str(exc))[:500]}")
    return apply_waiver(result.about(subject), inventory, on or today())


def stopped_service(case: Case, service: Service, port: Port | None) -> Result | None:
    """Broken, blocked by the unit's check, when the unit running ``service`` is known down.

    Raises ``HostUnavailable`` when the service's host cannot be checked at all.
    """
    unit_ref = unit_of(service, port)
    if unit_ref is None:
        return None
    facts = case.facts(service.host)
    unit = facts.units.get(unit_ref[1])
    if unit is None or unit.active:
        return None
    root = unit_root_subject(case.inventory, service, port)
    return broken(
        f"{service.name} is down ({unit.name}: {unit.state_text}), so this cannot be checked",
        blocked_by=root.fingerprint if root else None,
    )
