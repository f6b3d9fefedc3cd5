"""Gathering a host's facts in two round trips, whatever the number of checks.

Round one asks everything that the inventory alone determines: identity, listening
sockets, processes, units, accounts, declared files at paths the site fixes, package metadata
of venvs the site names, the declared HF caches, in-host probes. Round two asks what depends
on round one: files under the service user's home (``~`` is that user's home, not the
monitor's), repo-relative
files and venvs when the site gives no repo root or venv and the host's units name them
(``conformance.facts.discovery``), the ``pyvenv.cfg`` of the venv a unit's program runs
from, environment files a unit names, and the HF caches the instances' environments point
at instead of the declared one (a host that needs none of these has no round two), and, by
name, the accounts the units name that round one's account listing lacks (a directory
service need not enumerate); what lies under such an account's home is read in a third round,
which a host whose accounts round one resolved never has. Each
round is one set of allow-listed commands over the host's one SSH connection; its slow
scripts run in parallel channels of it (``_run_in_lanes``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from conformance.errors import CommandRefused
from conformance.facts import macos_listeners
from conformance.facts.discovery import discover, pyvenv_key, settled_service, venv_candidates
from conformance.facts.environment import hf_cache_of, instance_environment
from conformance.facts.model import FactUnavailable, FileFact, HostFacts, ProbeFact, Process, UnitFact
from conformance.facts.parsers import (
    KernelTables,
    LaunchdServiceNotFound,
    ParseError,
    listeners_from_kernel,
    parse_environment_files_property,
    parse_environment_property,
    parse_exec_start,
    parse_launchctl_print,
    parse_plist,
    parse_ss,
    parse_systemctl_show_many,
)
from conformance.inventory.model import Host, Inventory, Service
from conformance.paths import file_key, resolve_path, unit_of, venv_path
from conformance.transport import scripts
from conformance.transport.allowlist import check_command

if TYPE_CHECKING:  # the connection is handed in: a process reading a snapshot never loads paramiko
    from conformance.transport.connection import CommandResult, HostConnection

SYSTEMD_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "FragmentPath",
    "MainPID",
    "User",
    "ExecStart",
    "Environment",
    "EnvironmentFiles",
    "WorkingDirectory",
    "DynamicUser",
)
PROBE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class FileRequest:
    key: str  # stable key checks use: "<service>:<declared path>"
    service: Service
    declared: str
    secret: bool


@dataclass
class HostPlan:
    """Everything to ask one host, derived from the inventory only (no I/O)."""

    host: Host
    units: list[tuple[str, str | None]] = field(default_factory=list)  # (name, launchd domain)
    unit_files: list[str] = field(default_factory=list)
    files: list[FileRequest] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    venvs: list[str] = field(default_factory=list)
    caches: list[str] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)


def build_plan(inventory: Inventory, host: Host) -> HostPlan:
    plan = HostPlan(host)
    for service in inventory.services_on(host.name):
        if not service.is_live:
            continue
        ports = inventory.ports_of(service.name)
        for port in [None, *ports]:
            unit = unit_of(service, port)
            if unit and (unit[1], unit[3]) not in plan.units:
                plan.units.append((unit[1], unit[3]))
                plan.unit_files.append(unit[2])
        for file in service.files:
            plan.files.append(FileRequest(file_key(service.name, file.path), service, file.path, file.secret))
        for port in ports:
            if port.env_file:
                plan.files.append(FileRequest(file_key(service.name, port.env_file), service, port.env_file, True))
        if service.user and service.user not in plan.users:
            plan.users.append(service.user)
        venv = venv_path(service)
        # Package metadata only where a pin is declared: scanning a large venv costs time.
        if venv and service.package_pins and venv not in plan.venvs:
            plan.venvs.append(venv)
        if service.hf_cache and service.hf_cache not in plan.caches:
            plan.caches.append(service.hf_cache)
    # In-host probes: every loopback health endpoint, and each dependency edge whose
    # source lives here (probed from inside the source host, as the edge is used).
    for check in inventory.health_checks:
        service = inventory.service(check.service)
        if service.host == host.name and service.is_live and check.vantage == "loopback":
            plan.probes.append(f"http://127.0.0.1:{check.port}{check.path}")
    for target in dependency_targets(inventory, host.name):
        if target not in plan.probes:
            plan.probes.append(target)
    return plan


def dependency_targets(inventory: Inventory, host: str) -> list[str]:
    """host:port targets this host must reach for its dependency edges."""
    targets: list[str] = []
    for dependency in inventory.dependencies:
        source = inventory.service(dependency.source)
        target = inventory.service(dependency.target)
        if source.host != host or not (source.is_live and target.is_live):
            continue
        for port in inventory.ports_of(target.name):
            if port.state != "active":
                continue
            address = "127.0.0.1" if target.host == host else inventory.host(target.host).address
            if address:
                target_text = f"{address}:{port.port}" if ":" not in address else f"[{address}]:{port.port}"
                if target_text not in targets:
                    targets.append(target_text)
    return targets


def _sudo(host: Host, argv: list[str]) -> list[str]:
    return ["sudo", "-n", *argv] if host.ssh.sudo else argv


def _listener_commands(host: Host) -> list[list[str]]:
    if host.os == "linux":
        # The kernel's own tables, read in the same round: ss's '*' is the IPv4 wildcard on old
        # iproute2 and the dual-stack IPv6 one on newer; the file a socket is in is its family.
        # World-readable, so no sudo (and nothing more for the monitor's sudoers).
        return [_sudo(host, ["ss", "-Htlnp"]), ["cat", "/proc/net/tcp"], ["cat", "/proc/net/tcp6"]]
    return [_sudo(host, ["lsof", "-nP", "-iTCP", "-sTCP:LISTEN"]), ["netstat", "-anv", "-p", "tcp"]]


def _unit_commands(host: Host, plan: HostPlan) -> list[list[str]]:
    if not plan.units:
        return []
    if host.service_manager == "systemd":
        argv = ["systemctl", "show"]
        for prop in SYSTEMD_PROPERTIES:
            argv += ["-p", prop]
        # "--": a unit name is never read as an option, whatever the inventory says.
        return [[*argv, "--", *(name for name, _ in plan.units)]]
    return [["launchctl", "print", f"{domain or 'system'}/{name}"] for name, domain in plan.units]


def gather(connection: HostConnection, inventory: Inventory) -> HostFacts:
    """Gather all of one host's facts (two rounds, each one set of concurrent executions)."""
    host = connection.record
    plan = build_plan(inventory, host)
    facts = HostFacts(host.name)

    round_one: list[list[str]] = [["hostname"], ["uname", "-s"], ["ps", "-axo", "pid=,ppid=,uid=,comm="]]
    listener_cmds = _listener_commands(host)
    unit_cmds = _unit_commands(host, plan)
    round_one += listener_cmds + unit_cmds
    # A plist may be binary; plutil prints it as XML without touching the file.
    round_one += [
        ["cat", path] if host.service_manager == "systemd" else ["plutil", "-convert", "xml1", "-o", "-", path]
        for path in plan.unit_files
    ]
    users = sorted(set(plan.users) | {"root"})
    round_one.append(["python3", "-c", scripts.USER_HOMES.text, *users])
    if plan.venvs:
        round_one.append(["python3", "-c", scripts.PACKAGE_VERSIONS.text, *plan.venvs])
    if plan.probes:
        round_one.append(["python3", "-c", scripts.IN_HOST_PROBE.text, str(PROBE_TIMEOUT_SECONDS), *plan.probes])
    # The declared HF caches are listed at once: round two then lists only a cache the
    # instances' environments point at instead (most hosts then need no round two at all).
    declared_caches = [cache for cache in plan.caches if cache.startswith("/")]
    if declared_caches:
        round_one.append(["python3", "-c", scripts.HF_CACHE_LISTING.text, *declared_caches])
    # Paths the inventory fixes; a repo-relative one without a site repo root waits for
    # round two, where the units gathered here may name the root.
    static_files = [
        (request, path)
        for request in plan.files
        if not request.declared.startswith("~/")
        for path in [resolve_path(request.service, request.declared, {}, None)[0]]
        if path is not None
    ]
    for request, path in static_files:
        round_one.append(_sudo(host, ["cat", path]) if request.secret else ["cat", path])
    results = iter(_run_in_lanes(connection, round_one))

    facts.hostname = _text(next(results))
    facts.os_name = _text(next(results))
    _read_processes(facts, next(results))
    listener_results = [next(results) for _ in listener_cmds]
    _read_listeners(facts, host, listener_results)
    unit_results = [next(results) for _ in unit_cmds]
    _read_units(facts, host, plan, unit_results)
    unit_file_results = [next(results) for _ in plan.unit_files]
    for path, result in zip(plan.unit_files, unit_file_results, strict=True):
        facts.files[f"unit:{path}"] = _file_fact(host.name, path, path, result, secret=False)
    if host.service_manager == "launchd":
        _read_plists(facts, plan)
    accounts = _json(next(results), facts, "accounts") or {}
    facts.account_names = {int(uid): name for uid, name in (accounts.pop("", None) or {}).items()}
    listed = accounts.pop("~", None) or {}
    facts.user_homes = {user: entry.get("home") for user, entry in listed.items() if entry}
    facts.user_homes.update({user: (entry or {}).get("home") for user, entry in accounts.items()})
    facts.user_ids = {user: int(entry["uid"]) for user, entry in listed.items() if entry}
    facts.user_ids.update({user: int(entry["uid"]) for user, entry in accounts.items() if entry})
    for user in users:
        if user not in facts.user_ids:
            facts.account_errors[user] = (
                nss_unknown(user) if user in accounts else "the account database was not read (see the host's problems)"
            )
    if plan.venvs:
        facts.packages = _json(next(results), facts, "package metadata") or {}
    if plan.probes:
        for target, value in (_json(next(results), facts, "in-host probes") or {}).items():
            facts.probes[target] = ProbeFact(
                target,
                bool(value.get("ok")),
                value.get("status"),
                str(value.get("body", "")),
                value.get("error"),
                float(value.get("ms", 0)),
            )
    if declared_caches:
        facts.hf_caches = _json(next(results), facts, "HF cache listing") or {}
    for request, path in static_files:
        facts.files[request.key] = _file_fact(host.name, request.declared, path, next(results), request.secret)

    _round_two(connection, inventory, plan, facts)
    facts.commands = connection.commands_run
    return facts


# Scripts that take the host a while (a metadata scan of a venv; probes that may wait for
# their timeout) run in batches of their own, concurrently with the rest of the round.
_OWN_LANE = frozenset({scripts.PACKAGE_VERSIONS.text, scripts.IN_HOST_PROBE.text})
# Remote executions per host per run, at most: two rounds, each of at most this many at once.
MAX_LANES_PER_ROUND = 1 + len(_OWN_LANE)


def _run_in_lanes(connection: HostConnection, commands: list[list[str]]) -> list[CommandResult]:
    """Run one round's commands over the one connection, the slow ones in parallel channels.

    The results come back in the order of ``commands``, whatever the lanes.
    """
    lanes: list[list[int]] = [[]]
    for index, argv in enumerate(commands):
        if len(argv) > 2 and argv[0] == "python3" and argv[2] in _OWN_LANE:
            lanes.append([index])
        else:
            lanes[0].append(index)
    lanes = [lane for lane in lanes if lane]
    answers = connection.run_batches([[commands[index] for index in lane] for lane in lanes])
    ordered: dict[int, CommandResult] = {}
    for lane, lane_results in zip(lanes, answers, strict=True):
        ordered.update(zip(lane, lane_results, strict=True))
    return [ordered[index] for index in range(len(commands))]


def _round_two(connection: HostConnection, inventory: Inventory, plan: HostPlan, facts: HostFacts) -> None:
    lookup = _accounts_to_look_up(inventory, plan, facts)
    asked_caches = _read_round(connection, inventory, plan, facts, lookup)
    if lookup:
        # The files under a home that round two's lookup found (and the HF caches such a home
        # holds) take one more round; a host whose accounts round one resolved never comes here.
        _read_round(connection, inventory, plan, facts, [], asked_caches)


def _accounts_to_look_up(inventory: Inventory, plan: HostPlan, facts: HostFacts) -> list[str]:
    """The accounts the checks need that round one did not resolve, to ask NSS by name.

    Round one asked getpwnam for the site's users and root, and listed the accounts
    getpwent(3) enumerates; a unit's User= or a plist's UserName the listing lacks (a
    directory-service account: sssd.conf(5) ``enumerate`` defaults to false) is asked here.
    """
    host = plan.host
    wanted: list[str] = []
    for name, _ in plan.units:
        unit = facts.units.get(name)
        if unit is not None and unit.user:
            wanted.append(unit.user)
    for service in inventory.services_on(host.name):
        if service.is_live:
            user = settled_service(inventory, service, facts).user
            if user:
                wanted.append(user)
    lookup: list[str] = []
    for user in dict.fromkeys(wanted):
        if user in facts.user_ids or user in facts.account_errors:
            continue
        if _refused(["python3", "-c", scripts.ACCOUNTS_BY_NAME.text, user]):
            facts.account_errors[user] = (
                f"the account name {user!r} is outside the allow-list's account-name grammar, so it was not looked up"
            )
            continue
        lookup.append(user)
    return lookup


def _read_accounts_by_name(
    facts: HostFacts, asked: list[str], answers: dict[str, object], result: CommandResult
) -> None:
    for user in asked:
        entry = answers.get(user)
        if isinstance(entry, dict):
            facts.user_homes[user] = entry.get("home")
            facts.user_ids[user] = int(entry["uid"])
        elif user in answers:
            facts.account_errors[user] = nss_unknown(user)
        else:
            facts.account_errors[user] = (
                f"the lookup of {user!r} gave no answer ({result.command}: exit {result.exit_code}: "
                f"{result.stderr.strip()[:200]})"
            )


def nss_unknown(user: str) -> str:
    """Why an account getpwnam(3) did not find is unknown: no account database knows it."""
    return (
        f"no account database (NSS) knows the account {user!r}: getpwnam asked every passwd source "
        "nsswitch.conf lists (files, LDAP, SSSD, ...) and none answered for it"
    )


def _read_round(
    connection: HostConnection,
    inventory: Inventory,
    plan: HostPlan,
    facts: HostFacts,
    lookup: list[str],
    follow_up: set[str] | None = None,
) -> set[str]:
    """Round two (``follow_up`` None), or the round after it for what waited on ``lookup``.

    ``follow_up`` holds the HF caches round two asked; returns the caches this round asked.
    """
    host = connection.record
    commands: list[list[str]] = []
    pending: list[tuple[str, str, FileRequest | None, str]] = []
    # What the site leaves open, as the units gathered in round one answer it.
    discovery = discover(inventory, host.name, facts)
    settled = {
        service.name: settled_service(inventory, service, facts)
        for service in inventory.services_on(host.name)
        if service.is_live
    }
    for request in plan.files:
        if request.key in facts.files:
            continue  # read in round one
        service = settled[request.service.name]
        home_of = (service.user or _unit_user(facts, service) or "root") if request.declared.startswith("~/") else None
        if home_of in lookup:
            continue  # its home is asked in this round: the file is read in the next
        path, why = resolve_path(service, request.declared, facts.user_homes, _unit_user(facts, service))
        if path is None:
            field = "user" if request.declared.startswith("~/") and service.user is None else "repo_root"
            why = discovery.why_unknown(service.name, field) or why
            if home_of is not None and not facts.user_homes.get(home_of):
                why = f"{why}: {facts.account_unknown(home_of)}"
            facts.files[request.key] = FileFact(request.declared, None, False, None, why, request.secret)
            continue
        # As in round one: a secret file through sudo; a file under another user's home too,
        # since that home may be closed to the monitor.
        private = request.secret or request.declared.startswith("~/")
        command = _sudo(host, ["cat", path]) if private else ["cat", path]
        refused = _refused(command)
        if refused:
            facts.files[request.key] = FileFact(request.declared, path, False, None, refused, request.secret)
            continue
        commands.append(command)
        pending.append((request.key, path, request, request.declared))
    known_paths = {fact.path for fact in facts.files.values()} | {path for _, path, _, _ in pending}
    for unit in facts.units.values():
        for env_path, _optional in unit.environment_files:
            if env_path in known_paths:
                continue
            known_paths.add(env_path)
            command = _sudo(host, ["cat", env_path])
            refused = _refused(command)  # the path is the host's word: checked like any other
            if refused:
                facts.files[f"envfile:{env_path}"] = FileFact(env_path, env_path, False, None, refused, True)
                continue
            commands.append(command)
            pending.append((f"envfile:{env_path}", env_path, None, env_path))
    # A venv a unit's program runs from counts only with its pyvenv.cfg (PEP 405); the
    # package metadata of a pinned service's venv is asked in the same batch.
    venvs: list[str] = []
    for name, candidates in venv_candidates(inventory, host.name, facts).items() if follow_up is None else ():
        for venv in candidates:
            marker = f"{venv}/pyvenv.cfg"
            refused = _refused(["cat", marker])
            if refused:
                facts.files[pyvenv_key(venv)] = FileFact(marker, marker, False, None, refused)
                continue
            commands.append(["cat", marker])
            pending.append((pyvenv_key(venv), marker, None, marker))
            if settled[name].package_pins and venv not in facts.packages and venv not in venvs:
                venvs.append(venv)
    for service in settled.values() if follow_up is None else ():
        known = venv_path(service)
        if known and service.package_pins and known not in facts.packages and known not in venvs:
            venvs.append(known)
    for venv in list(venvs):
        refused = _refused(["python3", "-c", scripts.PACKAGE_VERSIONS.text, venv])
        if refused:
            venvs.remove(venv)
            facts.packages[venv] = {"site_packages": [], "packages": {}, "error": refused}
    if venvs:
        commands.append(["python3", "-c", scripts.PACKAGE_VERSIONS.text, *venvs])
    # Caches not listed in round one: a declared one that is not absolute, and those the
    # instances' environments point at instead of the declared one.
    asked = set(follow_up or ())
    caches = [cache for cache in plan.caches if cache not in facts.hf_caches] if follow_up is None else []
    for cache in effective_hf_caches(inventory, host.name, facts):
        if cache not in caches and cache not in facts.hf_caches and cache not in asked:
            caches.append(cache)
    if caches:
        commands.append(["python3", "-c", scripts.HF_CACHE_LISTING.text, *caches])
    if lookup:
        commands.append(["python3", "-c", scripts.ACCOUNTS_BY_NAME.text, *lookup])
    if not commands:
        return set(caches)
    results = _run_in_lanes(connection, commands)
    for (key, path, origin, declared), result in zip(pending, results, strict=False):
        secret = origin.secret if origin else not key.startswith("pyvenv:")
        facts.files[key] = _file_fact(host.name, declared, path, result, secret)
    tail = iter(results[len(pending) :])
    if venvs:
        facts.packages.update(_json(next(tail), facts, "package metadata") or {})
    if caches:
        facts.hf_caches.update(_json(next(tail), facts, "HF cache listing") or {})
    if lookup:
        result = next(tail)
        _read_accounts_by_name(facts, lookup, _json(result, facts, "accounts by name") or {}, result)
    return set(caches)


def _refused(command: list[str]) -> str | None:
    """Why a command built from what a host said would be refused (one refusal fails a batch)."""
    try:
        check_command(command)
    except CommandRefused as exc:
        return f"not read: the path is outside the read-only allow-list's path grammar ({exc})"
    return None


def _unit_user(facts: HostFacts, service: Service) -> str | None:
    """The unit's own User= (only consulted when neither the site nor discovery names one)."""
    if service.unit and service.unit.name in facts.units:
        return facts.units[service.unit.name].user
    return None


def effective_hf_caches(inventory: Inventory, host: str, facts: HostFacts) -> list[str]:
    """The HF hub caches the live instances on this host will really use."""
    caches = []
    for declared in inventory.services_on(host):
        if declared.kind != "optillm-local" or not declared.is_live:
            continue
        # The instances' user as the host says it when the site does not (~ is that user's home).
        service = settled_service(inventory, declared, facts)
        for port in inventory.ports_of(service.name):
            if port.state != "active":
                continue
            try:
                env = instance_environment(facts, service, port)
            except (FactUnavailable, ParseError):
                continue  # a missing or broken env is reported by the checks themselves
            cache = hf_cache_of(env, facts, service)
            if cache and cache not in caches:
                caches.append(cache)
    return caches


def _text(result: CommandResult) -> str | None:
    return result.stdout.strip() if result.ok else None


def _json(result: CommandResult, facts: HostFacts, what: str) -> dict:  # type: ignore[type-arg]
    if not result.ok:
        facts.problems.append(f"{what}: exit {result.exit_code}: {result.stderr.strip()[:200]}")
        return {}
    try:
        value = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        facts.problems.append(f"{what}: unreadable output: {exc}")
        return {}
    return value if isinstance(value, dict) else {}


# What sudo 1.9 prints when it, not the command, refuses (sudo -n): no rule left for the user
# or a rule that wants a password ("a password is required", src/sudo.c and the sudoers
# plugin's auth), no matching command ("Sorry, user %s is not allowed to execute '%s' as %s
# on %s.", plugins/sudoers/logging.c), "%s is not in the sudoers file", and requiretty
# ("sorry, you must have a tty to run sudo"). Recordings: selftest/recorded/sudo-l/*.err.
_SUDO_REFUSALS = (
    "a password is required",
    "is not allowed to execute",
    "is not allowed to run sudo",
    "is not in the sudoers file",
    "you must have a tty to run sudo",
    "a terminal is required",
)


def sudo_refused(result: CommandResult) -> bool:
    """Whether sudo itself refused ``result``'s command (the monitor lacks the privilege)."""
    if result.ok or not result.argv or result.argv[0] != "sudo":
        return False
    text = result.stderr.lower()
    return any(phrase.lower() in text for phrase in _SUDO_REFUSALS)


def _file_fact(host: str, declared: str, path: str, result: CommandResult, secret: bool) -> FileFact:
    if result.ok:
        return FileFact(declared, path, True, result.stdout + ("\n" if result.stdout else ""), None, secret)
    stderr = result.stderr.strip()
    missing = "No such file" in stderr
    refused = sudo_refused(result)
    if refused:
        stderr = f"sudo refused to read it ({stderr.splitlines()[-1] if stderr else 'no detail'})"
    return FileFact(
        declared, path, not missing, None, stderr or f"exit {result.exit_code}", secret, host if refused else None
    )


def _read_processes(facts: HostFacts, result: CommandResult) -> None:
    if not result.ok:
        facts.problems.append(f"process list: {result.stderr.strip()[:200]}")
        return
    for line in result.stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[0].isdigit() and parts[1].isdigit():
            pid, ppid = int(parts[0]), int(parts[1])
            # uid, not the user name: ps cuts names longer than 8 characters ("thestud+").
            facts.processes[pid] = Process(pid, ppid, int(parts[2]) if parts[2].isdigit() else -1, parts[3])


# ss before iproute2 4.7 has no -H (--no-header, iproute2 commit 7a4559f67c8c): its getopt
# loop meets an unknown option, glibc's getopt prints "ss: invalid option -- 'H'" and ss
# prints its usage and exits 255 (recorded on RHEL 6: selftest/recorded/README.md).
_SS_WITHOUT_H = re.compile(r"invalid option -- '?H'?")
SS_WITHOUT_H = (
    "ss on this host does not support -H (iproute2 older than 4.7); the listening sockets were read from "
    "/proc/net/tcp*, their processes are not known"
)


def _read_listeners(facts: HostFacts, host: Host, results: list[CommandResult]) -> None:
    primary = results[0]
    if not primary.ok and host.os == "linux" and _SS_WITHOUT_H.search(primary.stderr):
        kernel, why = _kernel_tables(results[1:])
        if kernel is not None:
            # The kernel's tables alone: families, addresses and ports certain, owners unknown.
            facts.listeners = listeners_from_kernel(kernel)
            facts.listeners_without_processes = SS_WITHOUT_H
            facts.listeners_notes.append(SS_WITHOUT_H)
            return
        facts.listeners_error = (
            f"{primary.command} failed: ss on this host does not support -H (iproute2 older than 4.7), "
            f"and the kernel's socket tables were not read either ({why})"
        )
        return
    if not primary.ok:
        facts.listeners_error = f"{primary.command} failed (exit {primary.exit_code}): {primary.stderr.strip()[:300]}"
        facts.listeners_refused = sudo_refused(primary)
        return
    try:
        if host.os == "linux":
            kernel, why = _kernel_tables(results[1:])
            facts.listeners = parse_ss(primary.stdout, kernel)
            if why and any(item.dual_stack for item in facts.listeners):
                facts.listeners_notes.append(
                    f"the kernel's socket tables were not read ({why}): ss's '*' was taken as the dual-stack "
                    "IPv6 wildcard, as newer ss prints it (older ss prints '*' for the IPv4 wildcard)"
                )
            return
        # lsof is the primary source; netstat only enriches it (see macos_listeners).
        secondary = results[1] if len(results) > 1 else None
        netstat_text = secondary.stdout if secondary is not None and secondary.ok else None
        problem = (
            f"{secondary.command} failed (exit {secondary.exit_code})"
            if secondary is not None and not secondary.ok
            else None
        )
        combined = macos_listeners.combine(primary.stdout, netstat_text, problem)
        facts.listeners = combined.listeners
        facts.listeners_notes = combined.notes
    except ParseError as exc:
        facts.listeners_error = str(exc)


def _kernel_tables(results: list[CommandResult]) -> tuple[KernelTables | None, str | None]:
    """``/proc/net/tcp`` and ``/proc/net/tcp6`` as read, or None and why not.

    A missing ``/proc/net/tcp6`` is an answer (IPv6 is off: no IPv6 socket exists); any other
    failure leaves the family of a ``*`` row to ss's newer convention.
    """
    if len(results) < 2:
        return None, "not asked"
    tcp, tcp6 = results[0], results[1]
    if not tcp.ok:
        return None, f"{tcp.command}: exit {tcp.exit_code}: {tcp.stderr.strip()[:200]}"
    if not tcp6.ok and "No such file" not in tcp6.stderr:
        return None, f"{tcp6.command}: exit {tcp6.exit_code}: {tcp6.stderr.strip()[:200]}"
    try:
        return KernelTables.read(tcp.stdout, tcp6.stdout if tcp6.ok else None), None
    except ParseError as exc:
        return None, str(exc)


def _read_units(facts: HostFacts, host: Host, plan: HostPlan, results: list[CommandResult]) -> None:
    if not plan.units:
        return
    if host.service_manager == "systemd":
        result = results[0]
        if not result.ok and not result.stdout:
            for name, _ in plan.units:
                facts.unit_errors[name] = f"systemctl show failed: {result.stderr.strip()[:300]}"
            return
        try:
            blocks = parse_systemctl_show_many(result.stdout)
        except ParseError as exc:
            for name, _ in plan.units:
                facts.unit_errors[name] = str(exc)
            return
        for (name, _), block in zip(plan.units, blocks, strict=False):
            facts.units[name] = _systemd_unit(name, block)
        return
    for (name, domain), result in zip(plan.units, results, strict=True):
        if not result.ok:
            facts.units[name] = _launchd_not_loaded(name, result.stderr)
            continue
        try:
            job = parse_launchctl_print(result.stdout, name)
        except LaunchdServiceNotFound as exc:
            facts.units[name] = _launchd_not_loaded(name, exc.message)
            continue
        except ParseError as exc:
            facts.unit_errors[name] = str(exc)
            continue
        facts.units[name] = UnitFact(
            "launchd",
            name,
            True,
            job.state == "running",
            job.state,
            None,
            "",
            job.path,
            job.pid,
            None,
            job.arguments or ((job.program,) if job.program else ()),
            dict(job.environment),
            (),
            job.working_directory,
            {"domain": domain or "system"},
            notes=tuple(job.notes()),
        )


def _launchd_not_loaded(name: str, stderr: str) -> UnitFact:
    return UnitFact(
        "launchd",
        name,
        False,
        False,
        "not loaded",
        None,
        "",
        None,
        None,
        None,
        (),
        {},
        (),
        None,
        {"error": stderr.strip()[:300]},
    )


def _read_plists(facts: HostFacts, plan: HostPlan) -> None:
    """launchd has no 'enabled' state of its own: a job starts at boot if RunAtLoad/KeepAlive.

    The plist arrives as ``plutil -convert xml1 -o -`` printed it: XML whatever the file's own
    format (binary plists are as common), since the transport carries text. A plist that could
    not be converted or parsed leaves ``enabled`` unknown and says why (naming the file).
    """
    for (name, _domain), path in zip(plan.units, plan.unit_files, strict=True):
        fact = facts.files.get(f"unit:{path}")
        unit = facts.units.get(name)
        if unit is None or fact is None:
            continue
        if fact.content is None:
            if fact.exists:
                facts.units[name] = replace(unit, definition_error=f"cannot read {path}: {fact.error}")
            continue
        try:
            plist = parse_plist(_plist_bytes(fact.content, path), path)
        except ParseError as exc:
            facts.problems.append(str(exc))
            facts.units[name] = replace(unit, definition_error=str(exc))
            continue
        starts = plist.run_at_load or bool(plist.keep_alive)
        facts.units[name] = replace(
            unit,
            enabled=starts,
            unit_file_state="RunAtLoad" if starts else "on demand only",
            user=plist.user_name or unit.user,  # launchd.plist(5) UserName
        )


def _plist_bytes(content: str, path: str) -> bytes:
    """plutil's XML as bytes; a plist that arrived unconverted (binary as text) is refused by name."""
    if content.startswith("bplist"):
        raise ParseError(path, "a binary plist arrived as text (not converted by plutil): its bytes are lost")
    return content.encode("utf-8", "replace")


def _systemd_unit(name: str, props: dict[str, str]) -> UnitFact:
    load = props.get("LoadState", "")
    active = props.get("ActiveState", "")
    sub = props.get("SubState", "")
    file_state = props.get("UnitFileState", "")
    main_pid = int(props["MainPID"]) if props.get("MainPID", "0").isdigit() and props.get("MainPID") != "0" else None
    exec_start = props.get("ExecStart", "")
    return UnitFact(
        manager="systemd",
        name=name,
        loaded=load == "loaded",
        active=active == "active",
        state_text=f"{active} ({sub})" if sub else active,
        enabled=file_state in {"enabled", "enabled-runtime", "static", "alias", "indirect"} if file_state else None,
        unit_file_state=file_state,
        definition_path=props.get("FragmentPath") or None,
        main_pid=main_pid,
        user=props.get("User") or (_unit_prefix(name) if props.get("DynamicUser") == "yes" else None),
        argv=parse_exec_start(exec_start) if exec_start else (),
        environment=parse_environment_property(props.get("Environment", "")),
        environment_files=tuple(parse_environment_files_property(props.get("EnvironmentFiles", ""))),
        working_directory=props.get("WorkingDirectory") or None,
        raw_state={key: props.get(key, "") for key in ("LoadState", "ActiveState", "SubState", "UnitFileState")},
        dynamic_user=props.get("DynamicUser") == "yes",
    )


def _unit_prefix(name: str) -> str:
    """The name systemd gives a dynamic user when User= is empty (unit_name_to_prefix)."""
    return name.split("@", 1)[0] if "@" in name else name.rsplit(".", 1)[0]
