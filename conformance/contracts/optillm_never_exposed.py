"""OptiLLM is reachable only on localhost: bound to loopback, answering there, refused from the LAN."""

from __future__ import annotations

from collections.abc import Sequence

from conformance.contracts._listeners import describe
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.model import HostFacts
from conformance.inventory.model import Port
from conformance.probes import LanRequest, ProbeResult
from conformance.results import Result, listener_cause, passed, violated


def judge_exposure(port: Port, facts: HostFacts, loopback: ProbeResult | None, lan: ProbeResult) -> Result:
    listeners = [item for item in facts.require_listeners() if item.port == port.port]
    evidence = {
        "listening": describe(listeners),
        "from the LAN": lan.describe(),
        "on loopback": loopback.describe() if loopback else "(not probed)",
    }
    exposed = [item for item in listeners if not item.is_loopback_only()]
    problems = []
    if exposed:
        problems.append("bound beyond loopback: " + ", ".join(f"{item.bind_text()}:{item.port}" for item in exposed))
    if lan.answered:
        problems.append(f"answers from the LAN at {lan.target}")
    if problems:
        result = violated(f"{port.service} is EXPOSED beyond localhost", *problems, **evidence)
        return result.caused_by(listener_cause(port.host, port.port))
    if not listeners:
        return violated(f"{port.service} is not listening on port {port.port} at all", **evidence)
    if loopback is None or not loopback.answered or loopback.status is None or loopback.status >= 500:
        # whatever listens there gives this answer: one incident with the port's health check
        result = violated(f"{port.service} does not answer on loopback inside {port.host}", **evidence)
        return result.caused_by(listener_cause(port.host, port.port))
    return passed(f"{port.service} listens on loopback only, answers there and is refused from the LAN", **evidence)


def lan_probes(case: Case) -> Sequence[LanRequest]:
    if case.port is None or not case.host_record.address:
        return ()
    return (LanRequest(case.address(), case.port.port),)


def judge(case: Case) -> Result:
    port = case.port
    assert port is not None
    facts = case.facts()
    check = next(
        (item for item in case.inventory.health_checks if item.port == port.port and item.vantage == "loopback"),
        None,
    )
    in_host = facts.probes.get(f"http://127.0.0.1:{port.port}{check.path if check else '/health'}")
    loopback = in_host.to_probe_result() if in_host else None
    return judge_exposure(port, facts, loopback, case.lan(LanRequest(case.address(), port.port)))


CONTRACT = ContractSpec(
    id="optillm-never-exposed",
    suite="contracts",
    scope=Scope.CONTRACT_PORT,
    judge=judge,
    lan_probes=lan_probes,
    needs_running=True,
    statement="OptiLLM is reachable only on localhost; never expose OptiLLM directly.",
    rule="Every socket on the port is loopback-only, a GET on 127.0.0.1 from inside the host answers, and a TCP "
    "connect from the LAN is refused.",
)
