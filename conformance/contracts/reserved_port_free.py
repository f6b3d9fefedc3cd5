"""A reserved port (declared, not yet in use) stays free, whether or not its instance runs."""

from __future__ import annotations

from conformance.contracts._listeners import describe
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.model import HostFacts
from conformance.inventory.model import Port
from conformance.results import Result, passed, violated


def judge_reserved(port: Port, facts: HostFacts) -> Result:
    listeners = [item for item in facts.require_listeners() if item.port == port.port]
    if listeners:
        takers = ", ".join(f"{item.process or '?'}[{item.pid or '?'}] on {item.bind_text()}" for item in listeners)
        return violated(
            f"reserved port {port.port} ({port.instance or port.service}) is taken by {takers}",
            **{"listening": describe(listeners)},
        )
    return passed(f"reserved port {port.port} is free")


def judge(case: Case) -> Result:
    assert case.port is not None
    return judge_reserved(case.port, case.facts())


CONTRACT = ContractSpec(
    id="reserved-port-free",
    suite="hosts",
    scope=Scope.RESERVED_PORT,
    judge=judge,
    applies_when_not_live=True,
    statement="Reserved ports (4042, the Studio's fast instance) are free.",
    rule="Nothing listens on the port, on any address.",
)
