"""No listener on a non-loopback address that the inventory does not declare or allow."""

from __future__ import annotations

from conformance.contracts._listeners import declared_endpoints, describe, endpoints
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.model import HostFacts
from conformance.inventory.model import Host, Inventory
from conformance.results import Result, passed, violated


def judge_listeners(host: Host, inventory: Inventory, facts: HostFacts) -> Result:
    listeners = facts.require_listeners()
    declared = {port.port for port in inventory.ports if port.host == host.name}
    strays = []
    for listener in listeners:
        if listener.is_loopback_only() or listener.port in declared:
            continue
        allowed = any(
            rule.port == listener.port
            and (rule.bind is None or declared_endpoints(rule.bind) >= endpoints(listener))
            and (rule.process is None or rule.process == listener.process)
            for rule in host.allowed_listeners
        )
        if not allowed:
            strays.append(listener)
    notes = {"not known": "\n".join(facts.listeners_notes)} if facts.listeners_notes else {}
    if strays:
        names = ", ".join(f"{item.bind_text()}:{item.port} ({item.process or 'unknown process'})" for item in strays)
        return violated(
            f"{host.name} has listeners the inventory does not declare: {names}",
            **{"undeclared": describe(strays), **notes},
        )
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
