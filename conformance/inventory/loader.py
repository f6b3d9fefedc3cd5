"""Loading an inventory: YAML -> overlays -> typed records -> cross-reference checks.

Every problem is reported with the file, line and field it concerns and what was expected,
and all problems are reported at once; a broken inventory never runs a single check.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import reprlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from conformance.errors import InventoryError
from conformance.inventory.merge import merge
from conformance.inventory.model import Inventory
from conformance.inventory.yamlsrc import (
    LocatedDict,
    Mark,
    YamlSourceError,
    load_located_yaml,
    mark_for_path,
)

INVENTORY_ENV = "CONFORMANCE_INVENTORY"
SITE_ENV = "CONFORMANCE_SITE"
# CONFORMANCE_HOST_<NAME>_<FIELD>: the per-site values that are commonly set in CI.
HOST_ENV_RE = re.compile(r"^CONFORMANCE_HOST_([A-Z0-9_]+)_(ADDRESS|USER|HOSTNAME|KNOWN_HOSTS|IDENTITY_FILE)$")
MAX_EXTENDS_DEPTH = 4


@dataclass(frozen=True, slots=True)
class InventoryIssue:
    """One problem in an inventory, located as precisely as the source allows."""

    mark: Mark | None
    field: str
    message: str

    def __str__(self) -> str:
        where = str(self.mark) if self.mark else "<inventory>"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


def _field_text(path: Iterable[str | int]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _bounded_repr(value: object, limit: int = 200) -> str:
    """repr of an inventory value, cut short: a value may be huge (or an alias bomb)."""
    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxdict, shortener.maxlist = 2, 6, 6
    shortener.maxstring = shortener.maxother = limit
    text = shortener.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read_with_extends(path: Path, depth: int = 0) -> Any:
    document = load_located_yaml(path, _display(path))
    if not isinstance(document, LocatedDict):
        raise InventoryError(
            [
                InventoryIssue(
                    getattr(document, "mark", None) or Mark(_display(path), 1, 1),
                    "",
                    "an inventory must be a YAML mapping",
                )
            ]
        )
    # Paths are relative to the file that names them, whichever file extends it.
    _resolve_relative_paths(document, path.resolve().parent)
    parent = document.pop("extends", None)
    if parent is None:
        return document
    if depth >= MAX_EXTENDS_DEPTH or not isinstance(parent, str):
        raise InventoryError(
            [
                InventoryIssue(
                    document.key_marks.get("extends"),
                    "extends",
                    "expected the relative path of one inventory file (at most 4 deep)",
                )
            ]
        )
    base = _read_with_extends((path.parent / parent).resolve(), depth + 1)
    return merge(base, document)


def _host_env_overrides(environ: Mapping[str, str]) -> LocatedDict | None:
    hosts: dict[str, dict[str, Any]] = {}
    for key, value in sorted(environ.items()):
        match = HOST_ENV_RE.match(key)
        if not match:
            continue
        host = match.group(1).lower().replace("_", "-")
        field = match.group(2).lower()
        entry = hosts.setdefault(host, {"name": host})
        if field in {"address", "hostname"}:
            entry[field] = value
        else:
            entry.setdefault("ssh", {})[field] = value
    if not hosts:
        return None
    overlay = LocatedDict(hosts=_located_records(list(hosts.values())))
    overlay.mark = Mark("<environment>", 0, 0)
    return overlay


def _located_records(items: list[dict[str, Any]]) -> Any:
    from conformance.inventory.yamlsrc import LocatedList

    located = LocatedList(items)
    located.item_marks = [Mark("<environment CONFORMANCE_HOST_*>", 0, 0) for _ in items]
    return located


def _resolve_relative_paths(document: LocatedDict, base_dir: Path) -> None:
    """SSH key, known_hosts, secrets file and the owners' document paths are relative to the
    inventory file, not the cwd."""
    secrets_file = document.get("secrets_file")
    if isinstance(secrets_file, str) and secrets_file:
        document["secrets_file"] = str(
            Path(secrets_file).expanduser() if secrets_file.startswith("~") else (base_dir / secrets_file).resolve()
        )
    layer = document.get("layer")
    if isinstance(layer, dict) and isinstance(layer.get("document"), str):
        value = layer["document"]
        layer["document"] = str(Path(value).expanduser() if value.startswith("~") else (base_dir / value).resolve())
    for host in document.get("hosts") or ():
        ssh = host.get("ssh") if isinstance(host, dict) else None
        if not isinstance(ssh, dict):
            continue
        for key in ("known_hosts", "identity_file"):
            value = ssh.get(key)
            if isinstance(value, str) and value and not value.startswith(("/", "~")):
                ssh[key] = str((base_dir / value).resolve())
            elif isinstance(value, str) and value.startswith("~"):
                ssh[key] = str(Path(value).expanduser())


def _pydantic_issues(error: ValidationError, document: Any) -> list[InventoryIssue]:
    issues = []
    for entry in error.errors(include_url=False):
        path = [step for step in entry["loc"] if isinstance(step, str | int)]
        message = entry["msg"]
        if entry["type"] == "extra_forbidden":
            message = _unknown_key_message(path)
        elif entry["type"] == "missing":
            message = "required field is missing"
        elif "input" in entry and entry["type"] not in {"model_type"}:
            message = f"{message} (got {_bounded_repr(entry['input'])})"
        issues.append(InventoryIssue(mark_for_path(document, path), _field_text(path), message))
    return issues


def _model_at(path: list[str | int]) -> type[BaseModel] | None:
    model: Any = Inventory
    for step in path:
        if isinstance(step, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(step)
        if field is None:
            return model
        model = _innermost_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _innermost_model(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _innermost_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _unknown_key_message(path: list[str | int]) -> str:
    key = str(path[-1]) if path else "?"
    owner = _model_at(path[:-1])
    allowed = sorted(owner.model_fields) if owner else []
    allowed = [name for name in allowed if name != "source_path"]
    suggestion = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {suggestion[0]!r}?" if suggestion else ""
    return f"unknown key {key!r}{hint} (expected one of: {', '.join(allowed)})"


def _cross_reference_issues(inventory: Inventory, document: Any) -> list[InventoryIssue]:
    issues: list[InventoryIssue] = []

    def report(path: list[str | int], message: str) -> None:
        issues.append(InventoryIssue(mark_for_path(document, path), _field_text(path), message))

    def duplicates(table: str, keys: list[Any]) -> None:
        for key, count in Counter(keys).items():
            if count > 1:
                position = [i for i, k in enumerate(keys) if k == key][-1]
                report([table, position], f"duplicate record {key!r} in {table}")

    hosts = {host.name for host in inventory.hosts}
    services = {service.name for service in inventory.services}
    owners = {owner.id for owner in inventory.owners}
    duplicates("hosts", [host.name for host in inventory.hosts])
    duplicates("services", [service.name for service in inventory.services])
    duplicates("owners", [owner.id for owner in inventory.owners])
    duplicates("health_checks", [check.id for check in inventory.health_checks])
    duplicates("contracts", [contract.id for contract in inventory.contracts])
    duplicates("secrets", [secret.name for secret in inventory.secrets])

    def known(value: str | None, names: set[str], path: list[str | int], what: str) -> None:
        if value is not None and value not in names:
            hint = difflib.get_close_matches(value, sorted(names), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            report(path, f"no {what} named {value!r}{extra} (known: {', '.join(sorted(names))})")

    known(inventory.layer.owner, owners, ["layer", "owner"], "owner")
    for i, waiver in enumerate(inventory.waivers):
        known(waiver.owner, owners, ["waivers", i, "owner"], "owner")
    duplicates("waivers", [(waiver.contract, waiver.subject) for waiver in inventory.waivers])
    for i, service in enumerate(inventory.services):
        known(service.host, hosts, ["services", i, "host"], "host")
        known(service.owner, owners, ["services", i, "owner"], "owner")
        known(service.upstream_service, services, ["services", i, "upstream_service"], "service")
        if service.unit is not None:
            host = next((h for h in inventory.hosts if h.name == service.host), None)
            if host is not None and host.service_manager != service.unit.manager:
                report(
                    ["services", i, "unit", "manager"],
                    f"host {host.name!r} uses {host.service_manager}, not {service.unit.manager}",
                )
    bound: dict[tuple[str, int], int] = {}
    for i, port in enumerate(inventory.ports):
        known(port.host, hosts, ["ports", i, "host"], "host")
        known(port.service, services, ["ports", i, "service"], "service")
        if port.service in services and port.host in hosts:
            owner_host = inventory.service(port.service).host
            if owner_host != port.host:
                report(["ports", i, "host"], f"service {port.service!r} runs on {owner_host!r}, not {port.host!r}")
        if (port.host, port.port) in bound:
            report(
                ["ports", i, "port"],
                f"port {port.port} on {port.host!r} is already declared (ports[{bound[(port.host, port.port)]}])",
            )
        bound.setdefault((port.host, port.port), i)
        address = ipaddress.ip_address(port.bind)
        if port.exposure == "local" and not address.is_loopback:
            report(["ports", i, "bind"], f"exposure 'local' needs a loopback bind (127.0.0.1 or ::1), not {port.bind}")
        if port.exposure == "lan" and address.is_loopback:
            report(["ports", i, "bind"], f"exposure 'lan' cannot bind loopback {port.bind}")
    for i, check in enumerate(inventory.health_checks):
        known(check.service, services, ["health_checks", i, "service"], "service")
        if check.service in services:
            declared = {p.port for p in inventory.ports_of(check.service)}
            if check.port not in declared:
                report(
                    ["health_checks", i, "port"],
                    f"service {check.service!r} declares no port {check.port} (declared: {sorted(declared)})",
                )
    for i, contract in enumerate(inventory.contracts):
        known(contract.owner, owners, ["contracts", i, "owner"], "owner")
        for j, name in enumerate(contract.services):
            known(name, services, ["contracts", i, "services", j], "service")
    for i, dependency in enumerate(inventory.dependencies):
        known(dependency.source, services, ["dependencies", i, "source"], "service")
        known(dependency.target, services, ["dependencies", i, "target"], "service")
        if dependency.source == dependency.target:
            report(["dependencies", i, "target"], "a service cannot depend on itself")
    for i, host in enumerate(inventory.hosts):
        if host.connection == "ssh" and host.ssh.known_hosts and host.ssh.host_key:
            report(["hosts", i, "ssh", "host_key"], "give either known_hosts or a pinned host_key, not both")
    return issues


def load_inventory(
    path: str | os.PathLike[str],
    site: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Inventory:
    """Load, overlay and validate an inventory; raise InventoryError listing every problem."""
    return load_located_inventory(path, site, environ)[0]


def load_located_inventory(
    path: str | os.PathLike[str],
    site: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Inventory, Any]:
    """``load_inventory`` plus the merged source document, for naming a record's file and line."""
    environ = os.environ if environ is None else environ
    inventory_path = Path(path)
    try:
        document = _read_with_extends(inventory_path)
        site_path = site or environ.get(SITE_ENV)
        if site_path:
            overlay = load_located_yaml(Path(site_path), _display(Path(site_path)))
            if not isinstance(overlay, LocatedDict):
                raise InventoryError([InventoryIssue(None, "", f"{site_path}: a site override must be a mapping")])
            _resolve_relative_paths(overlay, Path(site_path).resolve().parent)
            document = merge(document, overlay)
        env_overlay = _host_env_overrides(environ)
        if env_overlay is not None:
            document = merge(document, env_overlay)
    except YamlSourceError as exc:
        raise InventoryError([InventoryIssue(exc.mark, "", exc.message)]) from None
    try:
        inventory = Inventory.model_validate(document)
    except ValidationError as exc:
        raise InventoryError(_pydantic_issues(exc, document)) from None
    issues = _cross_reference_issues(inventory, document)
    if issues:
        raise InventoryError(issues)
    return inventory.model_copy(update={"source_path": str(inventory_path)}), document
