"""Each dependency edge (gateway <-> inference/tools) is reachable from its source host, as it is used."""

from __future__ import annotations

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.errors import HostUnavailable
from conformance.facts.gather import dependency_targets
from conformance.inventory.model import Inventory, Service
from conformance.outcomes import host_root_subject, stopped_service
from conformance.probes import ProbeResult
from conformance.results import Result, broken, listener_cause, passed, skipped, violated


def judge_edge(source: Service, target: Service, probes: list[ProbeResult]) -> Result:
    if not probes:
        return broken(f"{target.name} has no active port to reach")
    evidence = {probe.target: probe.describe() for probe in probes}
    failed = [probe for probe in probes if not probe.answered]
    if failed:
        ports = [probe.target.rsplit(":", 1)[-1] for probe in failed]
        return violated(
            f"{source.name} ({source.host}) cannot reach {target.name}",
            *(f"{probe.target}: {probe.describe()}" for probe in failed),
            **evidence,
        ).caused_by(*(listener_cause(target.host, int(port)) for port in ports if port.isdigit()))
    return passed(f"{source.name} reaches {target.name} at {', '.join(probe.target for probe in probes)}", **evidence)


def _target_host_matches(inventory: Inventory, target: Service, source_host: str, target_text: str) -> bool:
    address = target_text.rsplit(":", 1)[0].strip("[]")
    if target.host == source_host:
        return address == "127.0.0.1"
    return address == inventory.host(target.host).address


def _target_down(case: Case, target: Service) -> Result | None:
    """An unreachable target whose host or service is down is that outage, not a new one."""
    try:
        for port in [None, *case.inventory.ports_of(target.name)]:
            if port is not None and (port.state != "active" or port.unit is None):
                continue
            blocker = stopped_service(case, target, port)
            if blocker is not None:
                return broken(blocker.summary.replace(", so this cannot be checked", ""), blocked_by=blocker.blocked_by)
    except HostUnavailable as exc:
        root = host_root_subject(case.inventory, exc.host)
        return broken(
            f"{target.name} cannot be reached because {exc.host} is down: {exc.cause}", blocked_by=root.fingerprint
        )
    return None


def judge(case: Case) -> Result:
    assert case.dependency is not None
    inventory = case.inventory
    source = inventory.service(case.dependency.source)
    target = inventory.service(case.dependency.target)
    if not (source.is_live and target.is_live):
        down = source if not source.is_live else target
        return skipped(f"{down.name} is {down.state}: the edge {source.name} -> {target.name} is not in use")
    facts = case.facts(source.host)
    wanted = {f"{port.port}" for port in inventory.ports_of(target.name) if port.state == "active"}
    probes = [
        facts.probe(target_text).to_probe_result()
        for target_text in dependency_targets(inventory, source.host)
        if target_text.rsplit(":", 1)[1] in wanted and _target_host_matches(inventory, target, source.host, target_text)
    ]
    if any(not probe.answered for probe in probes):
        blocker = _target_down(case, target)
        if blocker is not None:
            return blocker
    return judge_edge(source, target, probes)


CONTRACT = ContractSpec(
    id="dependencies-reachable",
    suite="contracts",
    scope=Scope.CONTRACT_EDGE,
    judge=judge,
    needs_running=True,
    statement="Gateway <-> inference/tools dependencies are reachable from their source.",
    rule="From inside the source service's host, a TCP connect to each active port of the target (127.0.0.1 on the "
    "same host, else the target host's address) succeeds. A target that is down is blocked by that outage.",
)
