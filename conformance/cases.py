"""Test cases derived from the inventory, with readable, stable ids and no I/O.

Each suite test names the *kind* of case it takes (a fixture name such as ``port_case``);
the plugin asks ``cases_for`` for the list and parametrizes with it. The order is sorted so
that every xdist worker collects exactly the same tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conformance.inventory.model import (
    Contract,
    Dependency,
    HealthCheck,
    Host,
    Inventory,
    Port,
    Service,
    Unit,
)
from conformance.results import Subject

if TYPE_CHECKING:
    from conformance.runtime import Runtime


@dataclass(repr=False)
class Case:
    kind: str
    id: str
    host: str
    service: Service | None = None
    port: Port | None = None
    unit: Unit | None = None
    contract: Contract | None = None
    health: HealthCheck | None = None
    dependency: Dependency | None = None
    file: tuple[str, str, str] | None = None  # (declared path, format, fact key)
    check: str = ""
    runtime: Runtime | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        # Reports (Allure parameters, pytest -v) show this: the readable id, not the records.
        return self.id

    @property
    def inventory(self) -> Inventory:
        assert self.runtime is not None, "case is not bound to a run"
        return self.runtime.inventory

    @property
    def host_record(self) -> Host:
        return self.inventory.host(self.host)

    def subject(self, inventory: Inventory) -> Subject:
        service = self.service
        item = None
        if self.file:
            item = self.file[0]
        elif self.health:
            item = self.health.id
        elif self.dependency:
            item = f"{self.dependency.source}->{self.dependency.target}"
        elif self.unit and self.check == "unit-active":
            item = self.unit.name
        severity = (
            self.contract.severity if self.contract else ("critical" if self.check in {"host-reachable"} else "major")
        )
        owner = self.contract.owner if self.contract and self.contract.owner else inventory.owner_of(service)
        return Subject(
            check=self.check,
            host=self.host,
            service=service.name if service else None,
            port=self.port.port if self.port else None,
            item=item,
            contract=self.contract.id if self.contract else None,
            owner=owner,
            severity=severity,
            layer=inventory.layer.name,
        )


def _port_id(port: Port) -> str:
    return f"{port.host}/{port.service}:{port.port}"


def host_root_subject(inventory: Inventory, host: str) -> Subject:
    """The one subject an unreachable host is reported under."""
    return Subject(
        check="host-reachable", host=host, owner=inventory.layer.owner, severity="critical", layer=inventory.layer.name
    )


def unit_subject(inventory: Inventory, service: Service, port: Port | None, unit: Unit) -> Subject:
    return Subject(
        check="unit-active",
        host=service.host,
        service=service.name,
        port=port.port if port and port.unit else None,
        item=unit.name,
        owner=inventory.owner_of(service),
        severity="major",
        layer=inventory.layer.name,
    )


def _units(inventory: Inventory) -> list[Case]:
    cases = []
    for service in inventory.services:
        if service.unit is not None:
            cases.append(
                Case(
                    "unit_case",
                    f"{service.host}/{service.name}",
                    service.host,
                    service,
                    unit=service.unit,
                    check="unit-active",
                )
            )
        for port in inventory.ports_of(service.name):
            if port.unit is not None:
                cases.append(
                    Case("unit_case", _port_id(port), service.host, service, port, unit=port.unit, check="unit-active")
                )
    return cases


def _port_owner_cases(inventory: Inventory) -> list[Case]:
    cases = []
    for port in inventory.ports:
        service = inventory.service(port.service)
        unit = port.unit or service.unit
        if unit is not None and port.state == "active":
            cases.append(
                Case(
                    "port_owner_case", _port_id(port), port.host, service, port, unit=unit, check="port-served-by-unit"
                )
            )
    return cases


def _files(inventory: Inventory) -> list[Case]:
    cases = []
    for service in inventory.services:
        for file in service.files:
            cases.append(
                Case(
                    "file_case",
                    f"{service.host}/{service.name}:{file.path}",
                    service.host,
                    service,
                    file=(file.path, file.format, f"{service.name}:{file.path}"),
                    check="file-parses",
                )
            )
        for port in inventory.ports_of(service.name):
            if port.env_file:
                cases.append(
                    Case(
                        "file_case",
                        f"{service.host}/{service.name}:{port.env_file}",
                        service.host,
                        service,
                        port,
                        file=(port.env_file, "env", f"{service.name}:{port.env_file}"),
                        check="file-parses",
                    )
                )
    return cases


def _contract_cases(inventory: Inventory, check: str) -> list[Case]:
    cases = []
    for contract in inventory.contracts:
        if contract.check != check:
            continue
        services = [inventory.service(name) for name in contract.services]
        if check == "dependencies_reachable":
            for dependency in inventory.dependencies:
                source = inventory.service(dependency.source)
                cases.append(
                    Case(
                        "contract_case",
                        f"{contract.id}/{dependency.source}->{dependency.target}",
                        source.host,
                        source,
                        contract=contract,
                        dependency=dependency,
                        check=check,
                    )
                )
            continue
        per_port = check in {"optillm_local_only", "hf_cache_path", "hf_token_present"}
        for service in services:
            if per_port:
                for port in inventory.ports_of(service.name):
                    if port.state == "active":
                        cases.append(
                            Case(
                                "contract_case",
                                f"{contract.id}/{_port_id(port)}",
                                service.host,
                                service,
                                port,
                                contract=contract,
                                check=check,
                            )
                        )
            else:
                cases.append(
                    Case(
                        "contract_case",
                        f"{contract.id}/{service.host}/{service.name}",
                        service.host,
                        service,
                        contract=contract,
                        check=check,
                    )
                )
    return cases


def cases_for(inventory: Inventory, kind: str, check: str | None = None) -> list[Case]:
    """All cases of one kind, sorted by id (deterministic under xdist)."""
    if kind == "host_case":
        cases = [Case(kind, host.name, host.name, check="host-reachable") for host in inventory.hosts]
    elif kind == "service_case":
        cases = [
            Case(kind, f"{service.host}/{service.name}", service.host, service, check=check or "service-account")
            for service in inventory.services
        ]
    elif kind == "unit_case":
        cases = _units(inventory)
    elif kind == "port_owner_case":
        cases = _port_owner_cases(inventory)
    elif kind == "port_case":
        cases = [
            Case(kind, _port_id(port), port.host, inventory.service(port.service), port, check="port-bound")
            for port in inventory.ports
            if port.state == "active"
        ]
    elif kind == "reserved_port_case":
        cases = [
            Case(kind, _port_id(port), port.host, inventory.service(port.service), port, check="reserved-port-free")
            for port in inventory.ports
            if port.state == "reserved"
        ]
    elif kind == "file_case":
        cases = _files(inventory)
    elif kind == "health_case":
        cases = []
        for check_record in inventory.health_checks:
            service = inventory.service(check_record.service)
            port = next(port for port in inventory.ports_of(service.name) if port.port == check_record.port)
            cases.append(
                Case(
                    kind,
                    f"{_port_id(port)}{check_record.path}",
                    service.host,
                    service,
                    port,
                    health=check_record,
                    check="health",
                )
            )
    elif kind == "contract_case":
        cases = _contract_cases(inventory, check or "")
    else:
        raise ValueError(f"unknown case kind {kind!r}")
    cases.sort(key=lambda case: case.id)
    return cases
