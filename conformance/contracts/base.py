"""What a contract module declares, and the cases its scope yields from the inventory.

A contract module holds one ``CONTRACT = ContractSpec(...)``: its id (the one spelling used
by the inventory's ``check:``, the module name, the test name, the Allure story and the
bulletin fingerprint), the suite it belongs to, its scope, the LAN probes it will make and
its judgement ``judge(case) -> Result``. The scope turns inventory records into cases, each
with a readable, stable id; no I/O happens here, so collection is instant and identical in
every xdist worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from conformance.errors import FactUnavailable
from conformance.facts.model import HostFacts
from conformance.inventory.model import (
    ConfigFile,
    Contract,
    Dependency,
    HealthCheck,
    Host,
    Inventory,
    Port,
    Service,
    Unit,
    Waiver,
)
from conformance.probes import LanRequest, ProbeResult
from conformance.results import Result, Subject

if TYPE_CHECKING:
    from conformance.runtime import Runtime

Suite = Literal["hosts", "contracts", "health"]


class Scope(StrEnum):
    """What one case of a contract is about; each scope yields its cases from the inventory."""

    HOST = "host"
    SERVICE = "service"
    UNIT = "unit"  # each unit: a service's, or an instance's own
    PORT = "port"  # each active port
    PORT_WITH_UNIT = "port-with-unit"  # each active port whose service or instance has a unit
    RESERVED_PORT = "reserved-port"
    FILE = "file"  # each declared config/env file, and each instance env file
    HEALTH_CHECK = "health-check"
    # Scopes of the seed's contracts: one case per inventory contract naming the check, times ...
    CONTRACT_SERVICE = "contract-service"  # ... each of its services
    CONTRACT_PORT = "contract-port"  # ... each active port of its services
    CONTRACT_EDGE = "contract-edge"  # ... each dependency edge
    CONTRACT_LAYER = "contract-layer"  # ... once, about the layer itself (no host)
    WAIVER = "waiver"  # each waiver of the site file (no host)

    @property
    def from_contracts_table(self) -> bool:
        return self.value.startswith("contract-")


@dataclass(repr=False)
class Case:
    """One subject of one contract: the inventory records it is about, bound to a run."""

    check: str
    id: str
    host: str
    service: Service | None = None
    port: Port | None = None
    unit: Unit | None = None
    contract: Contract | None = None
    health: HealthCheck | None = None
    dependency: Dependency | None = None
    file: ConfigFile | None = None
    waiver: Waiver | None = None
    # What, within host/service/port, the case is about (a file path, a health check id, a
    # dependency edge, a unit name): the last part of its bulletin fingerprint.
    item: str | None = None
    runtime: Runtime | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        # Reports (Allure parameters, pytest -v) show this: the readable id, not the records.
        return self.id

    # -- what a judgement reads -------------------------------------------------------------

    @property
    def bound(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError(f"case {self.id} is not bound to a run")
        return self.runtime

    @property
    def inventory(self) -> Inventory:
        return self.bound.inventory

    @property
    def host_record(self) -> Host:
        return self.inventory.host(self.host)

    def facts(self, host: str | None = None) -> HostFacts:
        """A host's facts (this case's host by default), gathered once per run."""
        return self.bound.facts(host or self.host)

    def lan(self, request: LanRequest) -> ProbeResult:
        return self.bound.lan(request)

    def address(self) -> str:
        address = self.host_record.address
        if not address:
            raise FactUnavailable(f"no address for {self.host} at this site")
        return address

    # -- what a result is about -------------------------------------------------------------

    def subject(self, inventory: Inventory) -> Subject:
        severity = (
            self.contract.severity if self.contract else ("critical" if self.check == "host-identity" else "major")
        )
        owner = self.contract.owner if self.contract and self.contract.owner else inventory.owner_of(self.service)
        if self.waiver is not None:
            owner, severity = self.waiver.owner, "minor"
        return Subject(
            check=self.check,
            host=self.host or None,
            service=self.service.name if self.service else None,
            port=self.port.port if self.port else None,
            item=self.item,
            contract=self.contract.id if self.contract else None,
            owner=owner,
            severity=severity,
            layer=inventory.layer.name,
        )


Judge = Callable[[Case], Result]
PlanProbes = Callable[[Case], Sequence[LanRequest]]


def _no_probes(case: Case) -> Sequence[LanRequest]:
    return ()


@dataclass(frozen=True)
class ContractSpec:
    """One contract, as its module declares it.

    ``needs_running``: the judgement is meaningless while the service is stopped, so it is
    then blocked by the unit's own check (one root cause, not one failure per contract).
    ``applies_when_not_live``: a disabled or planned service still has this contract (a
    reserved port must stay free whether or not its instance runs).
    """

    id: str
    suite: Suite
    scope: Scope
    judge: Judge
    statement: str
    rule: str = ""
    lan_probes: PlanProbes = _no_probes
    needs_running: bool = False
    applies_when_not_live: bool = False
    module: str = ""

    @property
    def test_name(self) -> str:
        return "test_" + self.id.replace("-", "_")


# --- scopes: inventory records -> cases (sorted, stable ids, no I/O) ---------------------


def port_id(port: Port) -> str:
    return f"{port.host}/{port.service}:{port.port}"


def _service_unit_cases(check: str, inventory: Inventory) -> list[Case]:
    cases = []
    for service in inventory.services:
        if service.unit is not None:
            cases.append(
                Case(
                    check,
                    f"{service.host}/{service.name}",
                    service.host,
                    service,
                    unit=service.unit,
                    item=service.unit.name,
                )
            )
        for port in inventory.ports_of(service.name):
            if port.unit is not None:
                cases.append(
                    Case(check, port_id(port), service.host, service, port, unit=port.unit, item=port.unit.name)
                )
    return cases


def _file_cases(check: str, inventory: Inventory) -> list[Case]:
    cases = []
    for service in inventory.services:
        files: list[tuple[ConfigFile, Port | None]] = [(file, None) for file in service.files]
        files += [
            (ConfigFile(path=port.env_file, role="instance_env", format="env", secret=True), port)
            for port in inventory.ports_of(service.name)
            if port.env_file
        ]
        for file, port in files:
            cases.append(
                Case(
                    check,
                    f"{service.host}/{service.name}:{file.path}",
                    service.host,
                    service,
                    port,
                    file=file,
                    item=file.path,
                )
            )
    return cases


def _health_cases(check: str, inventory: Inventory) -> list[Case]:
    cases = []
    for record in inventory.health_checks:
        service = inventory.service(record.service)
        port = next(port for port in inventory.ports_of(service.name) if port.port == record.port)
        cases.append(
            Case(check, f"{port_id(port)}{record.path}", service.host, service, port, health=record, item=record.id)
        )
    return cases


def _contract_cases(spec: ContractSpec, inventory: Inventory) -> list[Case]:
    cases = []
    for contract in inventory.contracts:
        if contract.check_id != spec.id:
            continue
        # The contract's id joins the case id only when it differs from the check's (a site
        # may state two contracts with one check); the seed's contracts are their checks.
        prefix = "" if contract.id == spec.id else f"{contract.id}/"
        if spec.scope is Scope.CONTRACT_LAYER:
            cases.append(Case(spec.id, f"{prefix}{inventory.layer.name}", "", contract=contract))
            continue
        if spec.scope is Scope.CONTRACT_EDGE:
            for edge in inventory.dependencies:
                source = inventory.service(edge.source)
                case_id = f"{prefix}{edge.source}->{edge.target}"
                edge_item = f"{edge.source}->{edge.target}"
                cases.append(
                    Case(spec.id, case_id, source.host, source, contract=contract, dependency=edge, item=edge_item)
                )
            continue
        for service in (inventory.service(name) for name in contract.services):
            if spec.scope is Scope.CONTRACT_PORT:
                for port in inventory.ports_of(service.name):
                    if port.state == "active":
                        cases.append(
                            Case(spec.id, f"{prefix}{port_id(port)}", service.host, service, port, contract=contract)
                        )
            else:
                case_id = f"{prefix}{service.host}/{service.name}"
                cases.append(Case(spec.id, case_id, service.host, service, contract=contract))
    return cases


def cases_of(spec: ContractSpec, inventory: Inventory) -> list[Case]:
    """Every case of one contract in this inventory, sorted by id (deterministic under xdist)."""
    check = spec.id
    scope = spec.scope
    if scope is Scope.HOST:
        cases = [Case(check, host.name, host.name) for host in inventory.hosts]
    elif scope is Scope.SERVICE:
        cases = [Case(check, f"{service.host}/{service.name}", service.host, service) for service in inventory.services]
    elif scope is Scope.UNIT:
        cases = _service_unit_cases(check, inventory)
    elif scope in (Scope.PORT, Scope.PORT_WITH_UNIT, Scope.RESERVED_PORT):
        state = "reserved" if scope is Scope.RESERVED_PORT else "active"
        cases = []
        for port in inventory.ports:
            service = inventory.service(port.service)
            unit = port.unit or service.unit
            if port.state != state or (scope is Scope.PORT_WITH_UNIT and unit is None):
                continue
            cases.append(Case(check, port_id(port), port.host, service, port, unit=unit))
    elif scope is Scope.FILE:
        cases = _file_cases(check, inventory)
    elif scope is Scope.HEALTH_CHECK:
        cases = _health_cases(check, inventory)
    elif scope is Scope.WAIVER:
        cases = [
            Case(check, f"{w.contract}@{w.subject}", "", waiver=w, item=f"{w.contract}@{w.subject}")
            for w in inventory.waivers
        ]
    else:
        cases = _contract_cases(spec, inventory)
    cases.sort(key=lambda case: case.id)
    return cases
