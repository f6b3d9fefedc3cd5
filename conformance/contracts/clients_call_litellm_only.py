"""Clients call LiteLLM only: from the LAN, LiteLLM answers and nothing else of the gateway does."""

from __future__ import annotations

from collections.abc import Sequence

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.inventory.model import Port
from conformance.probes import LanRequest, ProbeResult
from conformance.results import Result, broken, listener_cause, passed, violated


def judge_reachability(
    host: str,
    litellm_probe: ProbeResult,
    local_probes: list[tuple[Port, ProbeResult]],
    stray_probes: list[tuple[str, int, ProbeResult]],
) -> Result:
    problems = []
    causes = []
    evidence = {"litellm": litellm_probe.describe()}
    if not litellm_probe.answered:
        return broken(f"LiteLLM does not answer from the LAN ({litellm_probe.describe()})", **evidence)
    for port, probe in local_probes:
        evidence[f"{port.service}:{port.port} from LAN"] = probe.describe()
        if probe.answered:
            problems.append(f"{port.service} (local only) answers from the LAN on {probe.target}")
            causes.append(listener_cause(host, port.port))
    for label, stray_port, probe in stray_probes:
        evidence[f"{label} from LAN"] = probe.describe()
        if probe.answered:
            problems.append(f"{label} is reachable from the LAN: {probe.describe()}")
            causes.append(listener_cause(host, stray_port))
    if problems:
        result = violated(f"clients on the LAN can reach more than LiteLLM on {host}", *problems, **evidence)
        return result.caused_by(*causes)
    return passed(f"from the LAN only LiteLLM answers on {host}", **evidence)


def _litellm_request(case: Case) -> LanRequest:
    assert case.service is not None
    port = next(port for port in case.inventory.ports_of(case.service.name) if port.state == "active")
    return LanRequest(case.address(), port.port, "/health/liveliness")


def _local_ports(case: Case) -> list[Port]:
    return [port for port in case.inventory.ports if port.host == case.host and port.exposure == "local"]


def lan_probes(case: Case) -> Sequence[LanRequest]:
    if not case.host_record.address:
        return ()
    return (_litellm_request(case), *(LanRequest(case.address(), port.port) for port in _local_ports(case)))


def judge(case: Case) -> Result:
    inventory, host = case.inventory, case.host_record
    address = case.address()
    local = [(port, case.lan(LanRequest(address, port.port))) for port in _local_ports(case)]
    declared = {port.port for port in inventory.ports if port.host == host.name}
    allowed = {rule.port for rule in host.allowed_listeners}
    strays: list[tuple[str, int, ProbeResult]] = []
    for listener in case.facts().require_listeners():
        if listener.port in declared or listener.port in allowed or listener.is_loopback_only():
            continue
        label = f"undeclared {listener.process or 'listener'} on port {listener.port}"
        if not any(existing == label for existing, _, _ in strays):
            strays.append((label, listener.port, case.lan(LanRequest(address, listener.port))))
    return judge_reachability(host.name, case.lan(_litellm_request(case)), local, strays)


CONTRACT = ContractSpec(
    id="clients-call-litellm-only",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    lan_probes=lan_probes,
    needs_running=True,
    statement="Client -> LiteLLM only (http://<mini>:4000/v1).",
    rule="From the LAN vantage, LiteLLM's /health/liveliness answers; no local-only port of the gateway host and "
    "no undeclared listener accepts a TCP connection.",
)
