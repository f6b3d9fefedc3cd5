"""No listener on a non-loopback address that the inventory does not declare or allow."""

from __future__ import annotations

from conformance.contracts._listeners import declared_endpoints, describe, endpoints
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.model import HostFacts
from conformance.inventory.model import Host, Inventory
from conformance.results import Result, broken, listener_cause, passed, violated


def judge_listeners(host: Host, inventory: Inventory, facts: HostFacts) -> Result:
    listeners = facts.require_listeners()
    declared = {port.port for port in inventory.ports if port.host == host.name}
    strays = []
    unknown = []  # allowed only if its process is the rule's, and its process is not known
    for listener in listeners:
        if listener.is_loopback_only() or listener.port in declared:
            continue
        bound = [
            rule
            for rule in host.allowed_listeners
            if rule.port == listener.port
            and (rule.bind is None or declared_endpoints(rule.bind) >= endpoints(listener))
        ]
        if any(rule.process is None or rule.process == listener.process for rule in bound):
            continue
        if bound and listener.process is None and listener.pid is None:
            unknown.append(listener)
        else:
            strays.append(listener)
    notes = {"not known": "\n".join(facts.listeners_notes)} if facts.listeners_notes else {}
    if not strays and unknown:
        why = facts.listeners_without_processes or "the listening process is not known"
        names = ", ".join(f"{item.bind_text()}:{item.port}" for item in unknown)
        return broken(
            f"could not check: {names} is allowed only for a named process, and {why}",
            **{"unknown owner": describe(unknown), **notes},
        )
    if strays:
        names = ", ".join(f"{item.bind_text()}:{item.port} ({item.process or 'unknown process'})" for item in strays)
        return violated(
            f"{host.name} has listeners the inventory does not declare: {names}",
            **{"undeclared": describe(strays), **notes},
        ).caused_by(*(listener_cause(host.name, item.port) for item in strays))
    return passed(
        f"every non-loopback listener on {host.name} is declared or allowed",
        **{"listening": describe([item for item in listeners if not item.is_loopback_only()]), **notes},
    )


def judge(case: Case) -> Result:
    return judge_listeners(case.host_record, case.inventory, case.facts())


CONTRACT = ContractSpec(
    id="no-unexpected-listeners",
    suite="hosts",
    scope=Scope.HOST,
    judge=judge,
    statement="Nothing listens beyond loopback on a host except the declared ports and allowed listeners (ssh).",
    rule="Every listener not loopback-only is on a declared port of that host or matches an allowed_listeners rule "
    "(port, bind, process).",
)
