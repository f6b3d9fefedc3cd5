"""`conformance doctor`: can the harness reach and read every host, and what should the site say?

For each host, in order, one step at a time (a failed step skips the ones that need it):

1. address: the name resolves and the SSH port answers (both bounded by the connect timeout);
2. host key: the key the server offers (key exchange only, no login) is the one the site
   trusts; else its fingerprint and the known_hosts line to add after checking it out of band.
   Nothing is ever written to a known_hosts file;
3. login: the configured identity authenticates (never the agent, never default keys: the
   suites use exactly this identity);
4. sudo: each ``sudo -n`` command the gathering really runs on this host is granted, judged
   from ``sudo -n -l`` (conformance.facts.sudo_list) and from the gathering's own outcome;
   else the exact sudoers lines;
5. files: each declared file (and each environment file a unit names) is readable, as the
   gathering read it;

then, once, on this machine: 6. secrets: each secret the checks use has a value (presence only).

Every remote command goes through the same allow-listed, audited transport as the suites. The
step functions return records; ``render`` turns them into text; ``site_yaml`` prints the site
file the hosts told us, ready to review.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import paramiko

from conformance.contracts.health_endpoint import secret_of
from conformance.errors import CannotCheck, HostUnavailable, KeyMaterialError, SecretsFileRefused
from conformance.facts.gather import gather
from conformance.facts.model import HostFacts
from conformance.facts.sudo_list import (
    Decision,
    SudoListing,
    SudoListingError,
    Verdict,
    decide,
    parse_sudo_list,
    sudoers_line,
)
from conformance.inventory.model import Host, Inventory
from conformance.redact import redact, register_secret
from conformance.secrets import CREDENTIALS_ENV, SecretSources
from conformance.transport import hostkeys
from conformance.transport.allowlist import PROGRAM_PATHS, SUDO_LIST
from conformance.transport.audit import AuditLog
from conformance.transport.connection import CommandResult, HostConnection

EXIT_OK = 0
EXIT_WORK = 1
EXIT_BROKEN_INVENTORY = 4  # as the suites: pytest's usage error
# Where sudo looks for a command when no secure_path is set: the usual Linux PATH, named as an
# assumption in the output (the monitor's own PATH would need a shell).
DEFAULT_SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class Mark(Enum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Step:
    name: str
    mark: Mark
    summary: str
    details: tuple[str, ...] = ()
    fixes: tuple[str, ...] = ()


@dataclass
class HostReport:
    host: str
    steps: list[Step] = field(default_factory=list)
    facts: HostFacts | None = None

    @property
    def failed(self) -> bool:
        return any(step.mark is Mark.FAIL for step in self.steps)


@dataclass
class DoctorReport:
    hosts: list[HostReport]
    secrets: Step
    site: str

    @property
    def exit_code(self) -> int:
        failed = any(report.failed for report in self.hosts) or self.secrets.mark is Mark.FAIL
        return EXIT_WORK if failed else EXIT_OK


def _skip(name: str, reason: str) -> Step:
    return Step(name, Mark.SKIP, f"skipped: {reason}")


def _env_name(host: Host, field_name: str) -> str:
    return f"CONFORMANCE_HOST_{host.name.upper().replace('-', '_')}_{field_name}"


# --- 1. address ------------------------------------------------------------------------------


def _resolve(address: str, port: int, timeout: float) -> list[str]:
    """getaddrinfo has no timeout of its own: it runs in a daemon thread, abandoned after ``timeout``
    (a daemon, so that a resolver that never answers cannot hold the process at exit)."""
    outcome: list[list[str] | BaseException] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(address, port, 0, socket.SOCK_STREAM)
            outcome.append(sorted({str(info[4][0]) for info in infos}))
        except (OSError, UnicodeError) as exc:
            outcome.append(exc)

    worker = threading.Thread(target=lookup, name=f"resolve {address}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimeoutError(f"{address} did not resolve within {timeout:g} s")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def check_address(host: Host) -> Step:
    name = "address"
    if not host.address:
        return Step(
            name,
            Mark.FAIL,
            "no address is given for this host",
            fixes=(
                f"give it in the site file (hosts: - name: {host.name} / address: ...) "
                f"or export {_env_name(host, 'ADDRESS')}=...",
            ),
        )
    port, timeout = host.ssh.port, host.ssh.connect_timeout
    try:
        addresses = _resolve(host.address, port, timeout)
    except TimeoutError:
        return Step(
            name,
            Mark.FAIL,
            f"{host.address} did not resolve within {timeout:g} s",
            fixes=("check the resolver (/etc/resolv.conf) or give the host's IP address as its address",),
        )
    except (OSError, UnicodeError) as exc:
        return Step(
            name,
            Mark.FAIL,
            f"{host.address} does not resolve: {getattr(exc, 'strerror', None) or exc}",
            fixes=(f"check the spelling of {host.address}, or give the host's IP address as its address",),
        )
    resolved = ", ".join(addresses)
    try:
        with socket.create_connection((host.address, port), timeout=timeout):
            pass
    except TimeoutError:
        return Step(
            name,
            Mark.FAIL,
            f"{host.address} ({resolved}) port {port}: no answer within {timeout:g} s",
            fixes=(f"is the host up, and does a firewall let this machine reach port {port}?",),
        )
    except OSError as exc:
        return Step(
            name,
            Mark.FAIL,
            f"{host.address} ({resolved}) port {port}: {exc.strerror or exc}",
            fixes=(f"start sshd on {host.name} (systemctl enable --now ssh) or set ssh.port in the site",),
        )
    shown = host.address if resolved == host.address else f"{host.address} ({resolved})"
    return Step(name, Mark.OK, f"{shown} port {port} answers")


# --- 2. host key -----------------------------------------------------------------------------


def check_host_key(host: Host, scan: Callable[..., paramiko.PKey] = hostkeys.scan_host_key) -> Step:
    name = "host key"
    assert host.address is not None
    key_name = hostkeys.host_key_name(host.address, host.ssh.port)
    known_hosts = Path(host.ssh.known_hosts) if host.ssh.known_hosts else None
    # A known_hosts file not created yet trusts nothing: show the key and the line to start it with.
    missing_file = known_hosts is not None and not known_hosts.exists()
    try:
        trusted = hostkeys.trusted_keys(key_name, None if missing_file else known_hosts, host.ssh.host_key)
    except KeyMaterialError as exc:
        return Step(name, Mark.FAIL, str(exc), fixes=("fix ssh.known_hosts / ssh.host_key in the site file",))
    try:
        key = scan(host.address, host.ssh.port, host.ssh.connect_timeout, list(trusted))
    except (paramiko.SSHException, OSError, EOFError) as exc:
        return Step(
            name,
            Mark.FAIL,
            f"no SSH key exchange with {key_name} within {host.ssh.connect_timeout:g} s: {exc or type(exc).__name__}",
            fixes=("is it an SSH server on that port?",),
        )
    judged = hostkeys.judge(key, trusted)
    where = (
        (f"{known_hosts} (no such file yet)" if missing_file else str(known_hosts))
        if known_hosts
        else "the pinned host_key"
    )
    shown = hostkeys.keygen_line(key, key_name)
    if judged.status is hostkeys.KeyStatus.KNOWN:
        return Step(name, Mark.OK, f"{key.get_name()} {hostkeys.fingerprint(key)} matches {where}")
    line = hostkeys.known_hosts_line(key_name, key)
    check = (
        f"check it out of band, on {host.name}'s console: "
        f"ssh-keygen -lf /etc/ssh/ssh_host_{_key_file_type(key)}_key.pub (it must print {hostkeys.fingerprint(key)})"
    )
    target = (
        f"then add this line to {known_hosts}:"
        if known_hosts
        else "then name a known_hosts file holding this line in the site (ssh.known_hosts):"
    )
    if known_hosts is None and not host.ssh.host_key:
        summary = f"no known_hosts or host_key is set: the server offers {shown}"
    elif judged.status is hostkeys.KeyStatus.CHANGED:
        summary = (
            f"host key CHANGED: {where} trusts {judged.expected_fingerprint}, the server offers {shown}; "
            "if the change is not expected, this may be another machine"
        )
    else:
        summary = f"host key UNKNOWN: not in {where}; the server offers {shown}"
    return Step(
        name,
        Mark.FAIL,
        summary,
        details=("nothing was trusted or written: the key is only shown",),
        fixes=(check, target, f"    {line}"),
    )


def _key_file_type(key: paramiko.PKey) -> str:
    return {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa", "ssh-dss": "dsa"}.get(key.get_name(), "ecdsa")


# --- 3. login --------------------------------------------------------------------------------


def _identity_text(host: Host) -> str:
    if host.ssh.identity_file:
        return f"identity file {host.ssh.identity_file} (no agent, no default keys)"
    return "no identity file (the agent and default keys are never used)"


def check_login(host: Host, connection: HostConnection) -> tuple[Step, list[CommandResult]]:
    """Log in with the configured identity and run the first, cheap commands (``id -u``, the sudo listing)."""
    name = "login"
    user = host.ssh.user or "(no user)"
    identity = host.ssh.identity_file
    if not host.ssh.user:
        return Step(
            name,
            Mark.FAIL,
            "no SSH user is given for this host",
            fixes=(f"set ssh.user in the site file or export {_env_name(host, 'USER')}=monitor",),
        ), []
    if not identity:
        return Step(
            name,
            Mark.FAIL,
            f"as {user}: {_identity_text(host)}",
            fixes=(f"set ssh.identity_file in the site file or export {_env_name(host, 'IDENTITY_FILE')}=PATH",),
        ), []
    if not os.access(identity, os.R_OK):
        return Step(
            name,
            Mark.FAIL,
            f"as {user}: identity file {identity} is missing or unreadable",
            fixes=(f"create it: ssh-keygen -t ed25519 -N '' -f {identity}",),
        ), []
    commands: list[list[str]] = [["id", "-u"]]
    if host.ssh.sudo:
        commands.append(list(SUDO_LIST))
    try:
        results = connection.run_batch(commands)
    except HostUnavailable as exc:
        fixes: tuple[str, ...] = ()
        if exc.kind == "auth":
            fixes = (
                f"authorise the key for {user} on {host.name}: "
                f"ssh-copy-id -i {identity}.pub {user}@{host.address}"
                + (f" -p {host.ssh.port}" if host.ssh.port != 22 else ""),
                f"(or append {identity}.pub to ~{user}/.ssh/authorized_keys there)",
            )
        return Step(name, Mark.FAIL, f"as {user} with {_identity_text(host)}: {exc.cause}", fixes=fixes), []
    uid = results[0].stdout.strip() if results[0].ok else "?"
    return Step(name, Mark.OK, f"logged in as {user} (uid {uid}) with {_identity_text(host)}"), results


# --- 4. sudo ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SudoNeed:
    argv: tuple[str, ...]  # without "sudo -n"
    path: str  # the command as sudo would resolve it on the host
    decision: Decision
    ran: bool | None  # True: it ran under sudo in the gathering; False: sudo refused it

    @property
    def granted(self) -> bool:
        if self.ran is False:
            return False
        return self.decision.verdict is Verdict.GRANTED or self.ran is True


def sudo_commands(history: Iterable[Sequence[str]]) -> list[tuple[str, ...]]:
    """The commands a gathering ran under ``sudo -n`` (its own plan, as it ran), in order, once each."""
    found: list[tuple[str, ...]] = []
    for argv in history:
        if list(argv) == SUDO_LIST:
            continue  # the listing itself, asked by the doctor
        if len(argv) > 2 and tuple(argv[:2]) == ("sudo", "-n") and tuple(argv[2:]) not in found:
            found.append(tuple(argv[2:]))
    return found


def _ran_under_sudo(facts: HostFacts, argv: tuple[str, ...]) -> bool | None:
    """What the gathering saw when it ran ``sudo -n argv``: True ran, False refused, None unknown."""
    program = PROGRAM_PATHS.get(argv[0], argv[0])
    if program in {"ss", "lsof"}:
        if facts.listeners_error is None:
            return True
        return False if _sudo_refusal(facts.listeners_error) else None
    if program == "cat" and len(argv) == 2:
        for fact in facts.files.values():
            if fact.path == argv[1]:
                if fact.content is not None:
                    return True
                return False if fact.error and _sudo_refusal(fact.error) else None
    return None


def _sudo_refusal(text: str) -> bool:
    return any(
        phrase in text
        for phrase in ("sudo refused", "a password is required", "is not allowed to", "may not run sudo", "sudo:")
    )


def resolution_candidates(argv0: str, search: Sequence[str]) -> list[str]:
    if argv0.startswith("/"):
        return [argv0]
    return [f"{folder.rstrip('/')}/{argv0}" for folder in search]


def parse_identities(result: CommandResult) -> dict[str, str]:
    """``stat -L -c %d:%i:%n`` lines: path -> "device:inode" (missing paths are simply absent)."""
    identities: dict[str, str] = {}
    for line in result.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            identities[parts[2]] = f"{parts[0]}:{parts[1]}"
    return identities


def judge_sudo(
    listing: SudoListing | None,
    needed: Sequence[tuple[str, ...]],
    identities: dict[str, str],
    search: Sequence[str],
    facts: HostFacts,
) -> list[SudoNeed]:
    judged: list[SudoNeed] = []
    for argv in needed:
        candidates = resolution_candidates(argv[0], search)
        path = next((candidate for candidate in candidates if candidate in identities), candidates[0])
        if listing is None:
            decision = Decision(Verdict.CANNOT_TELL, "the sudo listing could not be read")
        else:
            decision = decide(listing, path, argv[1:], identities)
        judged.append(SudoNeed(argv, path, decision, _ran_under_sudo(facts, argv)))
    return judged


def sudo_step(host: Host, needs: list[SudoNeed], listing_problem: str) -> Step:
    name = "sudo"
    # A local host runs the commands as the user running the doctor.
    user = host.ssh.user or (getpass.getuser() if host.connection == "local" else "monitor")
    details: list[str] = []
    if listing_problem:
        details.append(f"sudo -n -l: {listing_problem}")
    missing: list[SudoNeed] = []
    for need in needs:
        shown = " ".join(("sudo", "-n", *need.argv))
        if need.granted:
            how = need.decision.reason if need.decision.verdict is Verdict.GRANTED else "it ran in the gathering"
            details.append(f"ok    {shown}: {how}")
            continue
        missing.append(need)
        if need.ran is False and need.decision.verdict is Verdict.GRANTED:
            details.append(f"FAIL  {shown}: listed ({need.decision.reason}) but sudo refused it when it ran")
        elif need.ran is False:
            details.append(f"FAIL  {shown}: sudo refused it when the gathering ran it")
        elif need.decision.verdict is Verdict.CANNOT_TELL:
            details.append(f"FAIL  {shown}: cannot tell ({need.decision.reason}) and it did not run")
        else:
            details.append(f"FAIL  {shown}: {need.decision.reason}")
    if not missing:
        return Step(name, Mark.OK, f"{len(needs)} sudo -n command(s) granted", tuple(details))
    install = (
        (f"install sudo on {host.name} (e.g. apt-get install sudo), then:",) if "exit 127" in listing_problem else ()
    )
    fixes = (
        *install,
        f"on {host.name}, as root, add to /etc/sudoers.d/{user} (visudo -f /etc/sudoers.d/{user}):",
        *(f"    {sudoers_line(user, need.path, need.argv[1:])}" for need in missing),
    )
    return Step(
        name, Mark.FAIL, f"{len(missing)} of {len(needs)} sudo -n command(s) not granted", tuple(details), fixes
    )


# --- 5. files --------------------------------------------------------------------------------


def files_step(facts: HostFacts, sudo_missing: bool) -> Step:
    name = "files"
    details: list[str] = []
    failed = 0
    fixes: list[str] = []
    for key, fact in sorted(facts.files.items()):
        label = fact.path or fact.declared
        if fact.content is not None:
            details.append(f"ok    {label} ({key}){' [secret]' if fact.secret else ''}")
            continue
        failed += 1
        error = redact(fact.error or "unreadable")
        details.append(f"FAIL  {label} ({key}): {error}")
        if fact.path is None:
            fixes.append(f"{fact.declared}: give the missing value in the site file (see the discovered site below)")
        elif not fact.exists:
            fixes.append(f"{fact.path}: no such file on the host; correct the path in the inventory or site")
        elif sudo_missing and "sudo" in error:
            fixes.append(f"{fact.path}: grant the sudo rule shown in the sudo step")
        else:
            fixes.append(f"{fact.path}: let the monitor read it (group or mode), or set ssh.sudo and grant a rule")
    if facts.listeners_error:
        details.append(f"note  the listening sockets could not be read: {redact(facts.listeners_error)}")
    if not failed:
        return Step(name, Mark.OK, f"{len(facts.files)} file(s) readable (contents never shown)", tuple(details))
    return Step(name, Mark.FAIL, f"{failed} of {len(facts.files)} file(s) not readable", tuple(details), tuple(fixes))


# --- 6. secrets (local) ----------------------------------------------------------------------


def needed_secrets(inventory: Inventory) -> set[str]:
    """Secrets a check of this inventory uses: required ones, and those of live health checks."""
    needed = {secret.name for secret in inventory.secrets if secret.required}
    for check in inventory.health_checks:
        if inventory.service(check.service).is_live and (name := secret_of(check)):
            needed.add(name)
    return needed


def secrets_step(inventory: Inventory, environ: dict[str, str] | None = None) -> Step:
    name = "secrets"
    sources = SecretSources.of(inventory, environ)
    needed = needed_secrets(inventory)
    details: list[str] = []
    fixes: list[str] = []
    missing = 0
    file_problem = ""
    try:
        file_values = sources.file_values()
    except SecretsFileRefused as exc:
        file_values, file_problem = {}, str(exc)
        fixes.append(str(exc))
    for record in inventory.secrets:
        found = sources.found(record, file_values)
        if found is not None:
            register_secret(found[0])
            details.append(f"ok    {record.env} ({record.name}): from {found[1]}")
            continue
        use = "needed by the checks" if record.name in needed else "optional"
        if record.name in needed:
            missing += 1
            details.append(f"FAIL  {record.env} ({record.name}): not found; {use}")
            fixes.append(f"{record.env}: {sources.where(record)}")
        else:
            details.append(f"skip  {record.env} ({record.name}): not found; {use} ({record.used_for})")
    if file_problem:
        details.append(f"note  {file_problem}")
    looked = f"looked in: exported variables, files named by a secret, ${CREDENTIALS_ENV}, " + (
        f"secrets file {sources.secrets_file}" if sources.secrets_file else "no secrets_file (none named)"
    )
    details.append(looked)
    if missing or file_problem:
        return Step(
            name, Mark.FAIL, f"{missing} needed secret(s) missing on this machine", tuple(details), tuple(fixes)
        )
    return Step(name, Mark.OK, "every needed secret is present (values never shown)", tuple(details))


# --- the site file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteValue:
    service: str
    field: str  # "user" | "repo_root" | "venv"
    value: str
    source: str


def _scalar(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower()


def site_yaml(
    inventory: Inventory,
    values: Sequence[SiteValue],
    unknown: dict[tuple[str, str], str] | None = None,
    hosts: Sequence[str] | None = None,
) -> str:
    """The site file as used and discovered: hosts' connection settings, services' user,
    repo_root and venv, each with where it came from. JSON strings are YAML scalars."""
    lines = [
        "# Site file discovered by `conformance doctor`: review every value, then save it and",
        "# pass it with --site FILE (or CONFORMANCE_SITE).",
    ]
    if inventory.secrets_file:
        lines.append(f"secrets_file: {_scalar(inventory.secrets_file)}")
    lines.append("hosts:")
    for host in inventory.hosts:
        if hosts and host.name not in hosts:
            continue
        lines.append(f"  - name: {host.name}")
        if host.address:
            lines.append(f"    address: {_scalar(host.address)}")
        if host.hostname:
            lines.append(f"    hostname: {_scalar(host.hostname)}")
        if host.connection != "ssh":
            continue
        ssh = host.ssh
        lines.append("    ssh:")
        setting: str | int | None
        for key, setting in (
            ("user", ssh.user),
            ("port", ssh.port if ssh.port != 22 else None),
            ("identity_file", ssh.identity_file),
            ("known_hosts", ssh.known_hosts),
            ("host_key", ssh.host_key),
        ):
            if setting is not None:
                lines.append(f"      {key}: {_scalar(setting)}")
        lines.append(f"      sudo: {_scalar(ssh.sudo)}")
    by_service: dict[str, list[SiteValue]] = {}
    for value in values:
        by_service.setdefault(value.service, []).append(value)
    missing: dict[str, list[str]] = {}
    for (service_name, field_name), why in (unknown or {}).items():
        missing.setdefault(service_name, []).append(f"    # {field_name}: not found: {why}")
    if by_service or missing:
        lines.append("services:")
        for service in inventory.services:
            if hosts and service.host not in hosts:
                continue
            found = by_service.get(service.name, [])
            if not found and service.name not in missing:
                continue
            lines.append(f"  - name: {service.name}")
            for value in found:
                lines.append(f"    {value.field}: {_scalar(value.value)}  # from {value.source}")
            lines += missing.get(service.name, [])
    return "\n".join(lines) + "\n"


def inventory_values(inventory: Inventory) -> list[SiteValue]:
    """user, repo_root and venv as the inventory (with the site) already gives them."""
    values = []
    where = inventory.source_path or "the inventory"
    for service in inventory.services:
        if not service.is_live:
            continue
        for field_name in ("user", "repo_root", "venv"):
            value = getattr(service, field_name)
            if value:
                values.append(SiteValue(service.name, field_name, value, f"the inventory ({where})"))
    return values


# --- one host, all steps ---------------------------------------------------------------------


def examine_host(
    inventory: Inventory,
    host: Host,
    audit: AuditLog,
    scan: Callable[..., paramiko.PKey] = hostkeys.scan_host_key,
) -> HostReport:
    report = HostReport(host.name)
    steps = report.steps
    if host.connection == "local":
        steps.append(Step("address", Mark.SKIP, "skipped: a local host (no SSH)"))
        steps.append(Step("host key", Mark.SKIP, "skipped: a local host (no SSH)"))
        steps.append(Step("login", Mark.SKIP, "skipped: a local host (no SSH)"))
    else:
        address = check_address(host)
        steps.append(address)
        if address.mark is not Mark.OK:
            for name in ("host key", "login", "sudo", "files"):
                steps.append(_skip(name, "the host does not answer"))
            return report
        key = check_host_key(host, scan)
        steps.append(key)
        if key.mark is not Mark.OK:
            for name in ("login", "sudo", "files"):
                steps.append(_skip(name, "the host key is not verified"))
            return report
    connection = HostConnection(host, audit)
    try:
        listing: CommandResult | None = None
        if host.connection == "local":
            if host.ssh.sudo:
                try:
                    listing = connection.run(SUDO_LIST)
                except CannotCheck:
                    listing = None
        else:
            login, login_results = check_login(host, connection)
            listing = login_results[1] if len(login_results) > 1 else None
            steps.append(login)
            if login.mark is not Mark.OK:
                steps.append(_skip("sudo", "not authenticated"))
                steps.append(_skip("files", "not authenticated"))
                return report
        try:
            facts = gather(connection, inventory)
        except CannotCheck as exc:
            steps.append(_skip("sudo", f"the gathering failed: {exc}"))
            steps.append(Step("files", Mark.FAIL, f"the gathering failed: {redact(str(exc))}"))
            return report
        report.facts = facts
        steps.append(_sudo_of(host, connection, listing, facts))
        sudo_missing = steps[-1].mark is Mark.FAIL
        steps.append(files_step(facts, sudo_missing))
    finally:
        connection.close()
    return report


def _sudo_of(host: Host, connection: HostConnection, listing_result: CommandResult | None, facts: HostFacts) -> Step:
    if not host.ssh.sudo:
        return _skip("sudo", "ssh.sudo is false for this host: every command runs without sudo")
    needed = sudo_commands(connection.history)
    listing: SudoListing | None = None
    problem = ""
    if listing_result is None:
        problem = "not run"
    elif not listing_result.ok:
        problem = f"exit {listing_result.exit_code}: {redact(listing_result.stderr.strip()[:300])}"
        if "a password is required" in listing_result.stderr:
            # sudoers(5) listpw (default "any"): sudo -l asks for a password unless at least
            # one of the user's rules for this host is NOPASSWD.
            problem += f" (no NOPASSWD rule of {host.ssh.user} for this host lets sudo list its rules)"
    else:
        try:
            listing = parse_sudo_list(listing_result.stdout)
        except SudoListingError as exc:
            problem = f"cannot read the listing: {exc}"
    if listing is None and listing_result is not None and "not allowed to run sudo" in listing_result.stdout:
        problem = listing_result.stdout.strip()
    search = (listing.secure_path if listing else None) or DEFAULT_SEARCH_PATH
    paths: list[str] = []
    for argv in needed:
        paths += [path for path in resolution_candidates(argv[0], search) if path not in paths]
    if listing is not None:
        for rule in listing.commands:
            base = rule.command.rsplit("/", 1)[-1]
            same_name = any(base == argv[0].rsplit("/", 1)[-1] for argv in needed)
            if rule.command.startswith("/") and same_name and rule.command not in paths:
                paths.append(rule.command)
    identities: dict[str, str] = {}
    if paths:
        try:
            identities = parse_identities(connection.run(["stat", "-L", "-c", "%d:%i:%n", *paths]))
        except CannotCheck as exc:
            problem = (problem + "; " if problem else "") + f"commands could not be located: {exc}"
    needs = judge_sudo(listing, needed, identities, search, facts)
    step = sudo_step(host, needs, problem)
    if listing is not None and listing.secure_path is None:
        step = Step(
            step.name,
            step.mark,
            step.summary,
            (*step.details, f"note  no secure_path in sudo's defaults: commands looked up in {':'.join(search)}"),
            step.fixes,
        )
    return step


Discoverer = Callable[[Inventory, str, HostFacts], tuple[list[SiteValue], dict[tuple[str, str], str]]]


def discovered_values(
    inventory: Inventory, host: str, facts: HostFacts
) -> tuple[list[SiteValue], dict[tuple[str, str], str]]:
    """What the host told about its services (conformance.facts.discovery), and why the rest is unknown."""
    from conformance.facts.discovery import discover

    found = discover(inventory, host, facts)
    values = [SiteValue(item.service, item.field, item.value, item.source) for item in found.found]
    return values, dict(found.unknown)


def run_doctor(
    inventory: Inventory,
    hosts: Sequence[str] | None = None,
    audit: AuditLog | None = None,
    environ: dict[str, str] | None = None,
    discover: Discoverer | None = discovered_values,
) -> DoctorReport:
    from conformance.transport.audit import NullAuditLog

    audit = audit or NullAuditLog()
    secrets = secrets_step(inventory, environ)
    reports = []
    # What the inventory and site already say comes first; the hosts fill in the rest.
    values = inventory_values(inventory)
    unknown: dict[tuple[str, str], str] = {}
    for host in inventory.hosts:
        if hosts and host.name not in hosts:
            continue
        report = examine_host(inventory, host, audit)
        reports.append(report)
        if discover is not None and report.facts is not None:
            given = {(value.service, value.field) for value in values}
            found, why = discover(inventory, host.name, report.facts)
            values += [value for value in found if (value.service, value.field) not in given]
            unknown.update(why)
    return DoctorReport(reports, secrets, site_yaml(inventory, values, unknown, hosts))


# --- rendering -------------------------------------------------------------------------------


def _step_lines(step: Step) -> list[str]:
    lines = [f"  {step.mark.value:<4}  {step.name}: {step.summary}"]
    lines += [f"          {detail}" for detail in step.details]
    if step.fixes:
        lines.append("        fix:")
        lines += [f"          {fix}" for fix in step.fixes]
    return lines


def render(report: DoctorReport) -> str:
    lines: list[str] = []
    for host in report.hosts:
        lines.append(f"host {host.host}")
        for step in host.steps:
            lines += _step_lines(step)
        lines.append("")
    lines.append("this machine")
    lines += _step_lines(report.secrets)
    lines.append("")
    failed = [host.host for host in report.hosts if host.failed]
    if report.secrets.mark is Mark.FAIL:
        failed.append("this machine")
    lines.append(
        f"doctor: {'work to do on ' + ', '.join(failed) if failed else 'every step ok'} (exit {report.exit_code})"
    )
    lines.append("")
    # The steps are redacted (they quote hosts' error text); the site file holds only paths,
    # names and public keys, and a key-shaped mask would corrupt a pinned host_key.
    site = ["--- discovered site file (review, then save and pass with --site) ---", report.site.rstrip("\n")]
    return redact("\n".join(lines)) + "\n" + "\n".join(site) + "\n"
