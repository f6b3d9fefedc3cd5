"""Host-level checks: identity, units, listeners, reserved ports, declared files.

Pure functions: inventory records and gathered facts in, a Result out.
"""

from __future__ import annotations

import ipaddress
import posixpath

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from conformance.facts.model import FactUnavailable, HostFacts
from conformance.facts.parsers import Listener, ParseError, parse_env_file
from conformance.facts.parsers.errors import describe_yaml_error
from conformance.inventory.model import Host, Inventory, Port, Service, Unit
from conformance.results import Result, broken, passed, skipped, violated

_OS_NAMES = {"linux": "Linux", "macos": "Darwin"}


def endpoints(listener: Listener) -> set[tuple[str, str]]:
    """The (family, address) pairs a listening socket really accepts connections on."""
    address = ipaddress.ip_address(listener.address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return {("ipv4", str(address.ipv4_mapped))}
    if listener.family == "ipv4":
        return {("ipv4", str(address))}
    found = {("ipv6", str(address))}
    if listener.dual_stack and address.is_unspecified:
        found.add(("ipv4", "0.0.0.0"))
    return found


def declared_endpoints(bind: str) -> set[tuple[str, str]]:
    address = ipaddress.ip_address(bind)
    return {("ipv4" if address.version == 4 else "ipv6", str(address))}


def _describe(listeners: list[Listener]) -> str:
    return "\n".join(listener.raw for listener in listeners) or "(none)"


def host_identity(host: Host, facts: HostFacts) -> Result:
    problems = []
    expected_os = _OS_NAMES[host.os]
    if facts.os_name != expected_os:
        problems.append(f"OS is {facts.os_name!r}, inventory says {host.os} ({expected_os})")
    if host.hostname and (facts.hostname or "").split(".")[0] != host.hostname.split(".")[0]:
        problems.append(f"hostname is {facts.hostname!r}, inventory says {host.hostname!r}")
    evidence = {"hostname": facts.hostname or "?", "uname -s": facts.os_name or "?"}
    if problems:
        return violated(f"{host.name} is not the host the inventory describes", *problems, **evidence)
    return passed(f"{host.name} answers over SSH as {facts.hostname} ({facts.os_name})", **evidence)


def unit_installed_enabled_active(unit: Unit, facts: HostFacts) -> Result:
    try:
        fact = facts.unit(unit.name)
    except FactUnavailable as exc:
        return broken(f"cannot read the state of {unit.name}", str(exc))
    unit_file = facts.files.get(f"unit:{unit.path}")
    evidence = {
        "state": fact.state_text,
        "enabled": fact.unit_file_state or "n/a",
        "definition": fact.definition_path or "(none)",
    }
    problems = []
    if not fact.loaded:
        problems.append(f"{unit.name} is not loaded ({fact.raw_state.get('LoadState') or fact.state_text})")
    if unit_file is not None and not unit_file.exists:
        problems.append(f"unit file {unit.path} does not exist")
    if (
        fact.loaded
        and fact.definition_path
        and posixpath.normpath(fact.definition_path) != posixpath.normpath(unit.path)
    ):
        problems.append(f"{unit.name} is loaded from {fact.definition_path}, not from the declared {unit.path}")
    if fact.loaded and fact.enabled is False:
        problems.append(f"{unit.name} is not enabled ({fact.unit_file_state}): it will not start at boot")
    if fact.loaded and not fact.active:
        problems.append(f"{unit.name} is not running ({fact.state_text})")
    if problems:
        return violated(f"{unit.name} is not installed, enabled and running as declared", *problems, **evidence)
    return passed(f"{unit.name} is installed at {unit.path}, enabled and {fact.state_text}", **evidence)


def listener_belongs_to_unit(port: Port, unit: Unit, facts: HostFacts) -> Result:
    try:
        fact = facts.unit(unit.name)
        listeners = [item for item in facts.require_listeners() if item.port == port.port]
    except FactUnavailable as exc:
        return broken(f"cannot tell which process serves port {port.port}", str(exc))
    if not listeners:
        return violated(
            f"nothing listens on port {port.port}, so {unit.name} does not serve it", **{"unit state": fact.state_text}
        )
    if fact.main_pid is None:
        return violated(
            f"{unit.name} has no running process, yet port {port.port} is served by someone else",
            **{"listeners": _describe(listeners)},
        )
    unknown = [item for item in listeners if item.pid is None]
    if unknown:
        return broken(
            f"the owner of port {port.port} is not visible (process info needs root for ss -p)",
            **{"listeners": _describe(unknown)},
        )
    strangers = [
        item for item in listeners if item.pid is not None and not facts.descends_from(item.pid, fact.main_pid)
    ]
    evidence = {"listeners": _describe(listeners), "unit main pid": str(fact.main_pid)}
    if strangers:
        names = ", ".join(f"{item.process}[{item.pid}]" for item in strangers)
        return violated(
            f"port {port.port} is served by {names}, not by {unit.name} (main pid {fact.main_pid})", **evidence
        )
    return passed(f"port {port.port} is served by {unit.name} (pid {fact.main_pid})", **evidence)


def port_bound_as_declared(port: Port, facts: HostFacts) -> Result:
    try:
        listeners = [item for item in facts.require_listeners() if item.port == port.port]
    except FactUnavailable as exc:
        return broken(f"cannot read the listening sockets of {port.host}", str(exc))
    want = declared_endpoints(port.bind)
    have: set[tuple[str, str]] = set()
    for listener in listeners:
        have |= endpoints(listener)
    evidence = {"declared": f"{port.bind}:{port.port}", "listening": _describe(listeners)}
    if not listeners:
        return violated(f"nothing listens on port {port.port} (declared {port.bind}:{port.port})", **evidence)
    extra = sorted(have - want)
    missing = sorted(want - have)
    if extra or missing:
        details = []
        if missing:
            details.append("not listening on " + ", ".join(f"{address} ({family})" for family, address in missing))
        if extra:
            details.append(
                "also/instead listening on " + ", ".join(f"{address} ({family})" for family, address in extra)
            )
        return violated(
            f"port {port.port} is bound to {', '.join(item.bind_text() for item in listeners)}, "
            f"declared {port.bind} only",
            *details,
            **evidence,
        )
    return passed(f"port {port.port} listens on exactly {port.bind}", **evidence)


def reserved_port_free(port: Port, facts: HostFacts) -> Result:
    try:
        listeners = [item for item in facts.require_listeners() if item.port == port.port]
    except FactUnavailable as exc:
        return broken(f"cannot read the listening sockets of {port.host}", str(exc))
    if listeners:
        takers = ", ".join(f"{item.process or '?'}[{item.pid or '?'}] on {item.bind_text()}" for item in listeners)
        return violated(
            f"reserved port {port.port} ({port.instance or port.service}) is taken by {takers}",
            **{"listening": _describe(listeners)},
        )
    return passed(f"reserved port {port.port} is free")


def _is_loopback(listener: Listener) -> bool:
    return all(ipaddress.ip_address(address).is_loopback for _, address in endpoints(listener))


def unexpected_listeners(host: Host, inventory: Inventory, facts: HostFacts) -> Result:
    try:
        listeners = facts.require_listeners()
    except FactUnavailable as exc:
        return broken(f"cannot read the listening sockets of {host.name}", str(exc))
    declared = {port.port for port in inventory.ports if port.host == host.name}
    strays = []
    for listener in listeners:
        if _is_loopback(listener) or listener.port in declared:
            continue
        allowed = any(
            rule.port == listener.port
            and (rule.bind is None or declared_endpoints(rule.bind) >= endpoints(listener))
            and (rule.process is None or rule.process == listener.process)
            for rule in host.allowed_listeners
        )
        if not allowed:
            strays.append(listener)
    if strays:
        names = ", ".join(f"{item.bind_text()}:{item.port} ({item.process or 'unknown process'})" for item in strays)
        return violated(
            f"{host.name} has listeners the inventory does not declare: {names}", **{"undeclared": _describe(strays)}
        )
    return passed(
        f"every non-loopback listener on {host.name} is declared or allowed",
        **{"listening": _describe([item for item in listeners if not _is_loopback(item)])},
    )


def declared_file_parses(service: Service, declared: str, file_format: str, facts: HostFacts, key: str) -> Result:
    fact = facts.files.get(key)
    if fact is None:
        return broken(f"{declared} was not gathered")
    if fact.path is None:
        return broken(f"cannot locate {declared}", fact.error or "")
    if not fact.exists:
        return violated(f"{fact.path} does not exist", **{"error": fact.error or ""})
    if fact.content is None:
        return broken(f"cannot read {fact.path}", fact.error or "")
    try:
        if file_format == "yaml":
            yaml.safe_load(fact.content)
        elif file_format == "env":
            parse_env_file(fact.content, fact.path)
        elif file_format == "requirements":
            for number, line in enumerate(fact.content.splitlines(), 1):
                text = line.split("#", 1)[0].strip()
                if text and not text.startswith("-"):
                    try:
                        Requirement(text)
                    except InvalidRequirement as exc:
                        raise ParseError(fact.path, str(exc), line_no=number, line=line) from None
    except ParseError as exc:
        # A secret file's offending line may hold a key: name the line, never show it.
        detail = f"line {exc.line_no}: {exc.reason}" if fact.secret else str(exc)
        return violated(f"{fact.path} does not parse as {file_format}", detail)
    except yaml.YAMLError as exc:
        return violated(f"{fact.path} does not parse as {file_format}", describe_yaml_error(fact.path or "", exc))
    shown = "(secret: content not shown)" if service and fact.secret else f"{len(fact.content.splitlines())} lines"
    return passed(f"{fact.path} exists and parses as {file_format}", **{"file": shown})


def service_not_live(service: Service) -> Result | None:
    if service.is_live:
        return None
    return skipped(f"{service.name} is {service.state}: {service.state_reason or 'not live'}")


def service_runs_as_declared_user(
    service: Service, main_pids: list[tuple[str, int | None]], facts: HostFacts
) -> Result:
    """The service's processes run as its declared account (whose home ``~`` means)."""
    if service.user is None:
        return skipped(f"no service account is declared for {service.name} at this site")
    evidence = {}
    problems = []
    expected_uid = facts.user_ids.get(service.user)
    if expected_uid is None:
        return violated(f"the account {service.user!r} of {service.name} does not exist on {service.host}")
    names = {**facts.account_names, **{uid: name for name, uid in facts.user_ids.items()}}
    for unit_name, pid in main_pids:
        process = facts.processes.get(pid) if pid else None
        if process is None:
            problems.append(f"{unit_name} has no running process")
            continue
        user = names.get(process.uid, f"uid {process.uid}")
        evidence[unit_name] = f"pid {pid} {user} (uid {process.uid}, {process.command})"
        if process.uid != expected_uid:
            problems.append(f"{unit_name} runs as {user!r}, not as {service.user!r}")
    if problems:
        return violated(f"{service.name} does not run as {service.user}", *problems, **evidence)
    return passed(f"{service.name} runs as {service.user}", **evidence)
