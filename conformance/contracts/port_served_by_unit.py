"""The process on each port belongs to the port's unit (not an impostor on the same port)."""

from __future__ import annotations

from conformance.contracts._listeners import describe
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.model import HostFacts
from conformance.inventory.model import Port, Unit
from conformance.results import Result, broken, listener_cause, passed, violated


def judge_owner(port: Port, unit: Unit, facts: HostFacts) -> Result:
    fact = facts.unit(unit.name)
    listeners = [item for item in facts.require_listeners() if item.port == port.port]
    if not listeners:
        return violated(
            f"nothing listens on port {port.port}, so {unit.name} does not serve it", **{"unit state": fact.state_text}
        )
    if fact.main_pid is None:
        return violated(
            f"{unit.name} has no running process, yet port {port.port} is served by someone else",
            **{"listeners": describe(listeners)},
        ).caused_by(listener_cause(port.host, port.port))
    unknown = [item for item in listeners if item.pid is None]
    if unknown:
        why = facts.listeners_without_processes or "process info needs root for ss -p"
        return broken(
            f"could not check: the owner of port {port.port} is not visible ({why})", **{"listeners": describe(unknown)}
        )
    strangers = [
        item for item in listeners if item.pid is not None and not facts.descends_from(item.pid, fact.main_pid)
    ]
    evidence = {"listeners": describe(listeners), "unit main pid": str(fact.main_pid)}
    if fact.notes:
        evidence["partial read"] = "; ".join(fact.notes)
    if strangers:
        names = ", ".join(f"{item.process}[{item.pid}]" for item in strangers)
        return violated(
            f"port {port.port} is served by {names}, not by {unit.name} (main pid {fact.main_pid})", **evidence
        ).caused_by(listener_cause(port.host, port.port))
    return passed(f"port {port.port} is served by {unit.name} (pid {fact.main_pid})", **evidence)


def judge(case: Case) -> Result:
    assert case.port is not None and case.unit is not None
    return judge_owner(case.port, case.unit, case.facts())


CONTRACT = ContractSpec(
    id="port-served-by-unit",
    suite="hosts",
    scope=Scope.PORT_WITH_UNIT,
    judge=judge,
    needs_running=True,
    statement="The process listening on each port belongs to the port's declared unit.",
    rule="Every listener's pid is the unit's main pid or one of its descendants (workers, reloaders).",
)
