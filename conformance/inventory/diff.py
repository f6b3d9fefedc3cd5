"""The owners' document against the inventory, both ways.

The inventory is the document's transcription. Structured parts (the services table, the
ports list, the health checks, the owners) are compared field by field. Free text (the
contracts, the notes, the escalation rules, the planned tables' descriptions) cannot be
compared mechanically, so :data:`STATEMENTS` maps each sentence, exactly as written, to
the inventory records that carry it. A sentence the table does not know, a mapped sentence
the document no longer has, and a mapped record the inventory lacks are all findings: an
edited note is never noise. Every finding names the document's row and the inventory's
record (with file and line where the inventory's source is known).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from conformance.inventory.document import (
    DocService,
    GatewayDocument,
    normalize,
)
from conformance.inventory.model import Inventory, Port, Service
from conformance.inventory.yamlsrc import mark_for_path


@dataclass(frozen=True)
class ContractAnchor:
    """The inventory has this contract."""

    contract: str


@dataclass(frozen=True)
class ServiceAnchor:
    """A field of a service record has this value."""

    service: str
    field: str
    value: object


@dataclass(frozen=True)
class PinAnchor:
    service: str
    distribution: str
    specifier: str


@dataclass(frozen=True)
class TableAnchor:
    """An inventory table (services, ports, ...) exists and is not empty."""

    table: str


@dataclass(frozen=True)
class HarnessAnchor:
    """Carried by the harness's code, not by an inventory record; says where."""

    where: str


Anchor = ContractAnchor | ServiceAnchor | PinAnchor | TableAnchor | HarnessAnchor


@dataclass(frozen=True)
class Statement:
    section: str  # "Contracts", "Escalation model", "Planned DB tables", "<service title> / Notes" ...
    text: str  # normalized (see document.normalize), without the final full stop
    anchors: tuple[Anchor, ...]


_READ_ONLY = HarnessAnchor("the transport allow-list (conformance/transport/allowlist.py) runs read-only commands only")

# Every free-text sentence of the document and where the inventory carries it.
STATEMENTS: tuple[Statement, ...] = (
    # Contracts
    Statement(
        "Contracts", "Client -> LiteLLM only (http://<mini>:4000/v1)", (ContractAnchor("clients-call-litellm-only"),)
    ),
    Statement(
        "Contracts",
        "OptiLLM must call LiteLLM upstream only; never expose OptiLLM directly",
        (
            ContractAnchor("optillm-upstream-litellm"),
            ContractAnchor("optillm-never-exposed"),
            ServiceAnchor("optillm-proxy", "upstream_service", "litellm-orch"),
        ),
    ),
    Statement(
        "Contracts",
        "Gateway never runs inference",
        (
            ContractAnchor("gateway-never-runs-inference"),
            ServiceAnchor("litellm-orch", "forwards_only", True),
            ServiceAnchor("optillm-proxy", "forwards_only", True),
        ),
    ),
    Statement(
        "Contracts",
        "Showroom/backroom rule: only models present on Mini/Studio get handles",
        # live-route: the handles the files give really go there (opt-in, --probe-routes).
        (ContractAnchor("showroom-backroom"), ContractAnchor("live-route")),
    ),
    Statement(
        "Contracts",
        "Studio OptiLLM local uses HF cache at /Users/thestudio/models/hf/hub (HF token required for gated pulls)",
        (
            ContractAnchor("hf-cache-path"),
            ContractAnchor("hf-token-for-gated-pulls"),
            ServiceAnchor("optillm-local", "hf_cache", "/Users/thestudio/models/hf/hub"),
        ),
    ),
    # Notes of the services table
    Statement(
        "LiteLLM (litellm-orch) / Notes",
        "Clients must call LiteLLM only",
        (ContractAnchor("clients-call-litellm-only"),),
    ),
    Statement(
        "OptiLLM proxy / Notes",
        "Must point upstream to LiteLLM",
        (
            ContractAnchor("optillm-upstream-litellm"),
            ServiceAnchor("optillm-proxy", "upstream_service", "litellm-orch"),
        ),
    ),
    Statement("OptiLLM proxy / Notes", "avoid routing loops", (ContractAnchor("no-routing-loop"),)),
    Statement(
        "OptiLLM local (Studio) / Notes",
        "Single-model OptiLLM instances",
        (ServiceAnchor("optillm-local", "kind", "optillm-local"),),
    ),
    Statement(
        "OptiLLM local (Studio) / Notes",
        "HF cache at /Users/thestudio/models/hf/hub",
        (ContractAnchor("hf-cache-path"), ServiceAnchor("optillm-local", "hf_cache", "/Users/thestudio/models/hf/hub")),
    ),
    Statement(
        "OptiLLM local (Studio) / Notes",
        "pin transformers<5",
        (ContractAnchor("transformers-pin"), PinAnchor("optillm-local", "transformers", "<5")),
    ),
    Statement(
        "OptiLLM local (Studio) / Notes",
        "currently disabled by default",
        (ServiceAnchor("optillm-local", "state", "disabled"),),
    ),
    Statement("System monitor / Notes", "Read-only monitor", (_READ_ONLY,)),
    Statement("System monitor / Notes", "escalates via DB bulletin", (TableAnchor("bulletin"),)),
    # The row's exposure is compared with the port record; the contract that proves it is this one.
    Statement("System monitor / Exposure", "Local only", (ContractAnchor("local-only"),)),
    Statement("OptiLLM proxy / Exposure", "Local only", (ContractAnchor("optillm-never-exposed"),)),
    # Escalation model
    Statement("Escalation model", "Monitor is read-only", (_READ_ONLY,)),
    Statement(
        "Escalation model",
        "Monitor escalates by writing a bulletin entry (planned DB table)",
        (TableAnchor("bulletin"),),
    ),
    Statement(
        "Escalation model",
        "Root or layer/service agents perform restarts",
        (HarnessAnchor("the harness never restarts anything; owners act on its bulletin entries"),),
    ),
    # Planned DB tables
    Statement("Planned DB tables", "services (gateway entries)", (TableAnchor("services"),)),
    Statement("Planned DB tables", "ports (bindings + exposure)", (TableAnchor("ports"),)),
    Statement("Planned DB tables", "health_checks (urls + last status)", (TableAnchor("health_checks"),)),
    Statement("Planned DB tables", "alerts / bulletin (escalations)", (TableAnchor("bulletin"),)),
    Statement(
        "Planned DB tables",
        "dependencies (gateway <-> inference/tools)",
        (TableAnchor("dependencies"), ContractAnchor("dependencies-reachable")),
    ),
)

# "Studio" in the document -> host "studio"; qualifiers of the ports list.
_PORT_EXPOSURE = {"LAN": "lan", "localhost only": "local"}
_MISSING = object()


@dataclass(frozen=True)
class Finding:
    document: str  # "docs/gateway-layer.md:10 (Services: OptiLLM proxy, Port)" or "(not in the document)"
    inventory: str  # "inventory/gateway.yaml:150 ports[mini:4020].bind" or "(not in the inventory)"
    message: str

    def __str__(self) -> str:
        return f"{self.document}\n    inventory: {self.inventory}\n    {self.message}"


NOT_IN_DOCUMENT = "(not in the document)"
NOT_IN_INVENTORY = "(not in the inventory)"


class _Diff:
    def __init__(self, document: GatewayDocument, inventory: Inventory, source: Any) -> None:
        self.document = document
        self.inventory = inventory
        self.source = source
        self.findings: list[Finding] = []

    # -- naming -----------------------------------------------------------------------
    def doc(self, line: int, what: str) -> str:
        return f"{self.document.path}:{line} ({what})"

    def inv(self, table: str, key: str, index: int | None = None, *fields: str) -> str:
        name = f"{table}[{key}]" + "".join(f".{field}" for field in fields)
        where = self.inventory.source_path or "inventory"
        if self.source is not None and index is not None:
            mark = mark_for_path(self.source, [table, index, *fields])
            if mark is not None:
                where = f"{mark.file}:{mark.line}"
        return f"{where} {name}"

    def service_ref(self, service: Service, *fields: str) -> str:
        return self.inv("services", service.name, self.inventory.services.index(service), *fields)

    def port_ref(self, port: Port, *fields: str) -> str:
        return self.inv("ports", f"{port.host}:{port.port}", self.inventory.ports.index(port), *fields)

    def add(self, document: str, inventory: str, message: str) -> None:
        self.findings.append(Finding(document, inventory, message))

    # -- the comparison ------------------------------------------------------------------
    def run(self) -> list[Finding]:
        self.services()
        self.ports()
        self.health_checks()
        self.owners()
        self.statements()
        return self.findings

    def services(self) -> None:
        by_title = {service.title: service for service in self.inventory.services}
        seen: set[str] = set()
        for row in self.document.services:
            where = f"Services: {row.title}"
            service = by_title.get(row.title)
            if service is None:
                self.add(
                    self.doc(row.line, where), NOT_IN_INVENTORY, f"no inventory service has the title {row.title!r}"
                )
                continue
            seen.add(service.name)
            self.service_row(row, service)
        for service in self.inventory.services:
            if service.name not in seen:
                self.add(
                    NOT_IN_DOCUMENT, self.service_ref(service, "title"), f"no services row is titled {service.title!r}"
                )

    def service_row(self, row: DocService, service: Service) -> None:
        def doc(column: str) -> str:
            return self.doc(row.line, f"Services: {row.title}, {column}")

        if row.role != service.role:
            self.add(doc("Role"), self.service_ref(service, "role"), f"role {row.role!r} vs {service.role!r}")
        ports = self.inventory.ports_of(service.name)
        numbers = sorted(port.port for port in ports)
        if row.ports is None or row.bind is None:
            if ports or service.state != "planned":
                self.add(
                    doc("Bind/Port"),
                    self.service_ref(service, "state"),
                    f"the document plans this service's bind and port; the inventory has state {service.state!r} "
                    f"and ports {numbers}",
                )
        else:
            if sorted(row.ports) != numbers:
                self.add(
                    doc("Port"), self.service_ref(service), f"ports {sorted(row.ports)} vs {numbers} in the ports table"
                )
            for port in ports:
                if port.bind != row.bind:
                    self.add(doc("Bind"), self.port_ref(port, "bind"), f"bind {row.bind!r} vs {port.bind!r}")
                if row.exposure_kind is not None and port.exposure != row.exposure_kind:
                    self.add(
                        doc("Exposure"),
                        self.port_ref(port, "exposure"),
                        f"exposure {row.exposure!r} vs {port.exposure!r}",
                    )
            if row.exposure_kind is None:
                self.add(
                    doc("Exposure"),
                    self.service_ref(service),
                    f"exposure {row.exposure!r} is neither 'LAN' nor 'Local only'",
                )
            if row.exposure_host is not None and row.exposure_host.lower() != service.host:
                self.add(
                    doc("Exposure"),
                    self.service_ref(service, "host"),
                    f"exposure names host {row.exposure_host!r}, the service runs on {service.host!r}",
                )
        self.service_health(row, service, doc("Health/Status"))
        self.service_unit(row, service, doc("Systemd Unit"))
        self.service_files(row, service, doc("Env/Config"))

    def service_health(self, row: DocService, service: Service, where: str) -> None:
        if not row.health_paths and row.health_text not in ("none documented", "N/A"):
            self.add(
                where, NOT_IN_INVENTORY, f"health {row.health_text!r} names no `path` (nor 'none documented', 'N/A')"
            )
        checks = [(i, check) for i, check in enumerate(self.inventory.health_checks) if check.service == service.name]
        documented = {check.path for _, check in checks if check.not_in_document is None}
        for path in sorted(set(row.health_paths) - documented):
            stale = [(i, c) for i, c in checks if c.path == path]
            if stale:
                index, check = stale[0]
                self.add(
                    where,
                    self.inv("health_checks", check.id, index, "not_in_document"),
                    f"the document now lists {path}: drop not_in_document",
                )
            else:
                self.add(where, NOT_IN_INVENTORY, f"no health check of {service.name} requests {path}")
        for index, check in checks:
            if check.not_in_document is None and check.path not in row.health_paths:
                self.add(
                    where,
                    self.inv("health_checks", check.id, index, "path"),
                    f"the document does not list {check.path} (say why in not_in_document, or add it to the document)",
                )

    def service_unit(self, row: DocService, service: Service, where: str) -> None:
        unit = service.unit
        if row.unit_planned:
            if unit is not None or service.state != "planned":
                self.add(
                    where,
                    self.service_ref(service, "unit"),
                    "the document plans the unit; the inventory has one or the service is not planned",
                )
        elif row.unit_path is not None:
            if unit is None or unit.path != row.unit_path:
                self.add(
                    where,
                    self.service_ref(service, "unit"),
                    f"unit {row.unit_path!r} vs {unit.path if unit else None!r}",
                )
        else:
            host = self.inventory.host(service.host)
            manager = unit.manager if unit else host.service_manager
            if manager != row.unit_manager:
                self.add(
                    where,
                    self.service_ref(service, "unit"),
                    f"the document says ({row.unit_manager}); the inventory says {manager}",
                )

    def service_files(self, row: DocService, service: Service, where: str) -> None:
        paths = [file.path for file in service.files]
        if row.config_planned:
            if paths:
                self.add(
                    where,
                    self.service_ref(service, "files"),
                    f"the document plans the configuration; the inventory lists {paths}",
                )
            return
        for pattern in row.config_paths:
            if not any(path == pattern or fnmatch.fnmatchcase(path, pattern) for path in paths):
                self.add(where, self.service_ref(service, "files"), f"no file of {service.name} is {pattern!r}")
        for index, path in enumerate(paths):
            if not any(path == pattern or fnmatch.fnmatchcase(path, pattern) for pattern in row.config_paths):
                self.add(
                    where,
                    self.service_ref(service, "files") + f"[{index}]",
                    f"{path!r} is not in the document's Env/Config",
                )

    def ports(self) -> None:
        listed: set[tuple[str, int]] = set()
        instances = {port.instance for port in self.inventory.ports if port.instance}
        hosts = {host.name for host in self.inventory.hosts}
        for row in self.document.ports:
            where = self.doc(row.line, f"Ports: {row.port}")
            candidates = [port for port in self.inventory.ports if port.port == row.port]
            if not candidates:
                self.add(where, NOT_IN_INVENTORY, f"no inventory port {row.port}")
                continue
            host_names = [q.lower() for q in row.qualifiers if q.lower() in hosts]
            if host_names:
                candidates = [port for port in candidates if port.host in host_names] or candidates
            port = candidates[0]
            listed.add((port.host, port.port))
            service = self.inventory.service(port.service)
            if not service.title.startswith(row.label):
                self.add(
                    where,
                    self.port_ref(port, "service"),
                    f"the document names {row.label!r}; the port belongs to {service.title!r}",
                )
            reserved = False
            for qualifier in row.qualifiers:
                if qualifier in _PORT_EXPOSURE:
                    if port.exposure != _PORT_EXPOSURE[qualifier]:
                        self.add(where, self.port_ref(port, "exposure"), f"{qualifier!r} vs exposure {port.exposure!r}")
                elif qualifier.lower() in hosts:
                    if port.host != qualifier.lower():
                        self.add(where, self.port_ref(port, "host"), f"{qualifier!r} vs host {port.host!r}")
                elif qualifier in instances:
                    if port.instance != qualifier:
                        self.add(where, self.port_ref(port, "instance"), f"{qualifier!r} vs instance {port.instance!r}")
                elif qualifier == "reserved":
                    reserved = True
                else:
                    self.add(
                        where,
                        self.port_ref(port),
                        f"the qualifier {qualifier!r} is not transcribed (exposure, host, instance or 'reserved')",
                    )
            if reserved != (port.state == "reserved"):
                self.add(
                    where,
                    self.port_ref(port, "state"),
                    f"the document {'says' if reserved else 'does not say'} reserved; "
                    f"the inventory has state {port.state!r}",
                )
        for port in self.inventory.ports:
            if (port.host, port.port) not in listed:
                self.add(
                    NOT_IN_DOCUMENT,
                    self.port_ref(port),
                    f"port {port.port} on {port.host} is not in the document's ports list",
                )

    def health_checks(self) -> None:
        # The document's curl lines run on the gateway host itself (127.0.0.1); the inventory
        # may request the same path from the LAN. Port and path are what both must name.
        for row in self.document.health_checks:
            if not any(check.port == row.port and check.path == row.path for check in self.inventory.health_checks):
                self.add(
                    self.doc(row.line, f"Health checks: {row.port}{row.path}"),
                    NOT_IN_INVENTORY,
                    f"no health check requests port {row.port} path {row.path}",
                )

    def owners(self) -> None:
        owners = self.document.owners
        if owners is None:
            self.add(
                NOT_IN_DOCUMENT, self.inv("layer", "owner"), "the document has no Ownership section with both bullets"
            )
            return
        slug = "-".join(owners.layer_owner.lower().split())
        if slug != self.inventory.layer.owner:
            self.add(
                self.doc(owners.layer_line, "Ownership: layer owner"),
                "layer.owner",
                f"{owners.layer_owner!r} ({slug}) vs {self.inventory.layer.owner!r}",
            )
        service_owners = {owner.id: i for i, owner in enumerate(self.inventory.owners) if owner.kind == "service"}
        for name in owners.service_owners:
            if name not in service_owners:
                self.add(
                    self.doc(owners.services_line, "Ownership: service owners"),
                    NOT_IN_INVENTORY,
                    f"no owner {name!r} of kind service",
                )
        for name, index in service_owners.items():
            if name not in owners.service_owners:
                self.add(
                    NOT_IN_DOCUMENT,
                    self.inv("owners", name, index),
                    f"service owner {name!r} is not in the document's Ownership",
                )

    def statements(self) -> None:
        written: list[tuple[str, str, int]] = []
        for row in self.document.services:
            written.extend((f"{row.title} / Notes", note, row.line) for note in row.notes)
            # A planned row's exposure has no port record to compare with; a "Local only" row's
            # is also a promise, proved by a contract of its own: both are statements to map.
            if row.ports is None or row.exposure_kind == "local":
                written.append((f"{row.title} / Exposure", row.exposure, row.line))
        written.extend(("Contracts", s.text, s.line) for s in self.document.contracts)
        written.extend(("Escalation model", s.text, s.line) for s in self.document.escalation)
        written.extend(("Planned DB tables", normalize(t.text), t.line) for t in self.document.planned_tables)
        known = {(s.section, s.text): s for s in STATEMENTS}
        present: set[tuple[str, str]] = set()
        for section, text, line in written:
            present.add((section, text))
            statement = known.get((section, text))
            where = self.doc(line, section)
            if statement is None:
                self.add(
                    where,
                    NOT_IN_INVENTORY,
                    f"{text!r} is not mapped to the inventory (a changed or new statement: transcribe it)",
                )
                continue
            for anchor in statement.anchors:
                problem = self.anchor_problem(anchor)
                if problem is not None:
                    self.add(where, problem[0], f"{text!r}: {problem[1]}")
        claimed: set[str] = set()
        for statement in STATEMENTS:
            if (statement.section, statement.text) in present:
                claimed.update(a.contract for a in statement.anchors if isinstance(a, ContractAnchor))
            else:
                carried = ", ".join(_describe(a) for a in statement.anchors)
                self.add(
                    NOT_IN_DOCUMENT, carried, f"{statement.section}: {statement.text!r} is no longer in the document"
                )
        for index, contract in enumerate(self.inventory.contracts):
            if contract.id not in claimed and contract.not_in_document is None:
                self.add(
                    NOT_IN_DOCUMENT,
                    self.inv("contracts", contract.id, index),
                    "no statement of the document is the source of this contract",
                )

    def anchor_problem(self, anchor: Anchor) -> tuple[str, str] | None:
        if isinstance(anchor, ContractAnchor):
            if not any(c.id == anchor.contract for c in self.inventory.contracts):
                return NOT_IN_INVENTORY, f"no contract {anchor.contract!r}"
        elif isinstance(anchor, ServiceAnchor | PinAnchor):
            service = next((s for s in self.inventory.services if s.name == anchor.service), None)
            if service is None:
                return NOT_IN_INVENTORY, f"no service {anchor.service!r}"
            if isinstance(anchor, ServiceAnchor):
                value = getattr(service, anchor.field, _MISSING)
                if value != anchor.value:
                    return self.service_ref(service, anchor.field), f"{anchor.field} is {value!r}, not {anchor.value!r}"
            elif (pinned := service.package_pins.get(anchor.distribution)) != anchor.specifier:
                return (
                    self.service_ref(service, "package_pins"),
                    f"{anchor.distribution} pinned {pinned!r}, not {anchor.specifier!r}",
                )
        elif isinstance(anchor, TableAnchor) and not getattr(self.inventory, anchor.table, None):
            return anchor.table, f"the inventory has no {anchor.table} table"
        return None


def _describe(anchor: Anchor) -> str:
    if isinstance(anchor, ContractAnchor):
        return f"contracts[{anchor.contract}]"
    if isinstance(anchor, ServiceAnchor):
        return f"services[{anchor.service}].{anchor.field}"
    if isinstance(anchor, PinAnchor):
        return f"services[{anchor.service}].package_pins.{anchor.distribution}"
    if isinstance(anchor, TableAnchor):
        return anchor.table
    return anchor.where


def diff_document(document: GatewayDocument, inventory: Inventory, source: Any = None) -> list[Finding]:
    """Every disagreement between the document and the inventory; empty when they agree.

    ``source``: the inventory's located YAML (loader.load_located_inventory), to name lines.
    """
    return _Diff(document, inventory, source).run()


def render(findings: Iterable[Finding]) -> str:
    return "\n".join(str(finding) for finding in findings)
