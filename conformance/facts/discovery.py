"""What the host itself says about a service's account, repo root and venv (no I/O).

A site file may give ``user``, ``repo_root`` and ``venv`` per service; when it does, it wins.
When it does not, the unit that runs the service already names them, and this module reads
them off the facts gathered in round one (and the venv markers of round two):

- user: systemd ``User=`` (systemd.exec(5): without ``User=`` a system service runs as root);
  launchd ``UserName`` from the plist (launchd.plist(5): only meaningful in the system
  domain; a job in ``gui/<uid>`` or ``user/<uid>`` runs as that uid, one in ``system``
  without ``UserName`` as root).
- repo_root: an absolute path in the unit's argv (``ExecStart=`` / ``ProgramArguments``),
  environment values, ``EnvironmentFile=`` paths or the venv its program runs from, that
  ends with one of the service's declared repo-relative paths at a path-component boundary:
  what precedes it is the repo root. ``WorkingDirectory`` counts only when it is the
  directory part of a declared path (a working directory alone proves nothing about where a
  repository starts). Candidates that disagree leave the root unknown, naming each.
- venv: argv[0] as ``<dir>/bin/<program>`` (an interpreter or a console script), confirmed as
  a virtual environment by ``<dir>/pyvenv.cfg`` (PEP 405: "a pyvenv.cfg file ... in the
  directory one level above the executable" marks a venv).

systemd prints ``WorkingDirectory`` as ``!<path>`` when a missing directory is tolerated
(``-<path>`` in the unit file) and as ``~`` for the user's home (src/core/dbus-execute.c,
``property_get_working_directory``); both forms are read here. ``parse_exec_start`` already
drops ExecStart's ``@ - : + ! !!`` prefixes, so argv here is what the program receives (for
``@``, argv[0] is the custom name and the executable is the path systemd shows; both are
looked at).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from conformance.facts.model import HostFacts, UnitFact
from conformance.inventory.model import Inventory, Service
from conformance.paths import unit_of

__all__ = [
    "SITE",
    "Discovered",
    "Discovery",
    "discover",
    "discovered_settings",
    "located_by",
    "pyvenv_key",
    "settled_service",
    "venv_candidates",
]

Field = Literal["user", "repo_root", "venv"]
SITE = "the site file"


@dataclass(frozen=True)
class Discovered:
    service: str  # inventory service name
    field: str  # "user" | "repo_root" | "venv"
    value: str
    source: str  # where it came from, human readable


@dataclass(frozen=True)
class Discovery:
    """Every value known for the services of one host, and why each unknown one is unknown."""

    found: tuple[Discovered, ...] = ()
    unknown: dict[tuple[str, str], str] = field(default_factory=dict)

    def get(self, service: str, name: str) -> Discovered | None:
        return next((item for item in self.found if item.service == service and item.field == name), None)

    def why_unknown(self, service: str, name: str) -> str | None:
        return self.unknown.get((service, name))


def pyvenv_key(venv: str) -> str:
    """Where gathering files a candidate venv's ``pyvenv.cfg`` in ``HostFacts.files``."""
    return f"pyvenv:{venv}"


def discovered_settings(inventory: Inventory, host: str, facts: HostFacts) -> list[Discovered]:
    """Each service's user, repo_root and venv on ``host`` that is known, with its source."""
    return list(discover(inventory, host, facts).found)


def discover(inventory: Inventory, host: str, facts: HostFacts) -> Discovery:
    found: list[Discovered] = []
    unknown: dict[tuple[str, str], str] = {}
    for service in inventory.services_on(host):
        if not service.is_live:
            continue
        units = _units(inventory, service, facts)
        for name, rule in (("user", _user), ("repo_root", _repo_root)):
            value, why = rule(service, units, facts)
            if value is not None:
                found.append(value)
            elif why is not None:
                unknown[(service.name, name)] = why
        root = next((item for item in found if item.service == service.name and item.field == "repo_root"), None)
        venv, why = _venv(service, units, facts, root)
        if venv is not None:
            found.append(venv)
        elif why is not None:
            unknown[(service.name, "venv")] = why
    return Discovery(tuple(found), unknown)


def settled_service(inventory: Inventory, service: Service, facts: HostFacts) -> Service:
    """The service record with what the host says filled in where the site says nothing.

    ``venv`` comes back absolute when known; a value that stays unknown stays None, so the
    checks keep reporting "cannot check" (with ``why_unknown`` saying what was looked at).
    """
    discovery = discover(inventory, service.host, facts)
    update: dict[str, str] = {}
    for name in ("user", "repo_root", "venv"):
        item = discovery.get(service.name, name)
        if item is not None and item.value != getattr(service, name):
            update[name] = item.value
    return service.model_copy(update=update) if update else service


def venv_candidates(inventory: Inventory, host: str, facts: HostFacts) -> dict[str, list[str]]:
    """Per service without a venv in the site file: the ``<dir>`` its program runs from.

    Gathering asks each one's ``pyvenv.cfg`` (and, for a service with package pins, its
    package metadata) in round two; ``discover`` then accepts only the confirmed ones.
    """
    out: dict[str, list[str]] = {}
    for service in inventory.services_on(host):
        if not service.is_live or service.venv is not None:
            continue
        dirs: list[str] = []
        for unit in _units(inventory, service, facts):
            for _argv0, venv in _program_venvs(unit):
                if venv not in dirs:
                    dirs.append(venv)
        if dirs:
            out[service.name] = dirs
    return out


# -- the units of a service -------------------------------------------------------------


def _units(inventory: Inventory, service: Service, facts: HostFacts) -> list[UnitFact]:
    """The loaded units that run the service or its active instances, as gathered."""
    units: list[UnitFact] = []
    for port in [None, *inventory.ports_of(service.name)]:
        if port is not None and port.state != "active":
            continue
        ref = unit_of(service, port)
        unit = facts.units.get(ref[1]) if ref else None
        if unit is not None and unit.loaded and unit not in units:
            units.append(unit)
    return units


# -- user ----------------------------------------------------------------------------------


def _user(service: Service, units: list[UnitFact], facts: HostFacts) -> tuple[Discovered | None, str | None]:
    if service.user:
        return Discovered(service.name, "user", service.user, SITE), None
    if not units:
        return None, f"no user is given for {service.name} at this site and no loaded unit of it was gathered"
    answers: dict[str, list[str]] = {}
    for unit in units:
        user, source = _unit_account(unit, facts)
        if user is None:
            return None, f"no user is given for {service.name} at this site, and {source}"
        answers.setdefault(user, []).append(source)
    if len(answers) > 1:
        named = "; ".join(f"{user} ({', '.join(sources)})" for user, sources in answers.items())
        return None, f"no user is given for {service.name} at this site, and its units disagree: {named}"
    user, sources = next(iter(answers.items()))
    return Discovered(service.name, "user", user, "; ".join(sources)), None


def _unit_account(unit: UnitFact, facts: HostFacts) -> tuple[str | None, str]:
    if unit.manager == "systemd":
        if unit.user:
            return unit.user, f"the unit's User= ({unit.name})"
        return "root", f"no User= in {unit.name} (systemd runs a system service as root)"
    if unit.user:
        return unit.user, f"the plist's UserName ({unit.name})"
    domain = unit.raw_state.get("domain", "system")
    if domain == "system":
        return "root", f"no UserName in {unit.name} (launchd runs a system-domain job as root)"
    kind, _, uid_text = domain.partition("/")
    if kind in {"gui", "user"} and uid_text.isdigit():
        name = facts.account_names.get(int(uid_text))
        if name:
            return name, f"the launchd domain {domain} of {unit.name} (uid {uid_text})"
        return None, f"the launchd domain {domain} of {unit.name} names uid {uid_text}, which has no account"
    return None, f"the launchd domain {domain!r} of {unit.name} names no account"


# -- repo_root -----------------------------------------------------------------------------


def _relative_paths(service: Service) -> list[str]:
    return [path for path in _declared(service) if _is_repo_relative(path)]


def _declared(service: Service) -> list[str]:
    paths = [file.path for file in service.files]
    if service.venv:
        paths.append(service.venv)
    return paths


def _is_repo_relative(path: str) -> bool:
    return not path.startswith(("/", "~")) and ".." not in posixpath.normpath(path).split("/")


Kind = Literal["path", "venv", "workdir"]


def _evidence_paths(unit: UnitFact, home: str | None) -> Iterable[tuple[str, str, Kind]]:
    """(absolute path, where it was seen, what kind of evidence) for every path the unit names."""
    program = "ExecStart" if unit.manager == "systemd" else "ProgramArguments"
    where = f" ({unit.name})"
    for index, arg in enumerate(unit.argv):
        option, eq, value = arg.partition("=")
        if eq and option.startswith("-") and value.startswith("/"):
            yield value, f"{program} {arg}{where}", "path"
        elif arg.startswith("/"):
            previous = unit.argv[index - 1] if index > 0 else ""
            shown = f"{previous} {arg}" if previous.startswith("-") else arg
            yield arg, f"{program} {shown}{where}", "path"
    for argv0, venv in _program_venvs(unit):
        yield venv, f"the venv of {program}'s program {argv0}{where}", "venv"
    for name, value in unit.environment.items():
        if value.startswith("/"):
            yield value, f"Environment {name}={value}{where}", "path"
    for path, _optional in unit.environment_files:
        yield path, f"EnvironmentFile {path}{where}", "path"
    directory = _working_directory(unit.working_directory, home)
    if directory:
        yield directory, f"WorkingDirectory {unit.working_directory}{where}", "workdir"


def _working_directory(value: str | None, home: str | None) -> str | None:
    if not value:
        return None
    text = value[1:] if value[:1] in {"!", "-"} else value
    if text == "~":
        return home
    return text if text.startswith("/") else None


def _suffix_root(path: str, relative: str) -> str | None:
    """The directory that ``path`` is ``relative`` under, or None (component boundary)."""
    path = posixpath.normpath(path)
    relative = posixpath.normpath(relative)
    if path == "/" + relative:
        return "/"
    if path.endswith("/" + relative):
        return path[: -len(relative) - 1]
    return None


def _repo_root(service: Service, units: list[UnitFact], facts: HostFacts) -> tuple[Discovered | None, str | None]:
    if service.repo_root:
        return Discovered(service.name, "repo_root", service.repo_root, SITE), None
    relative = _relative_paths(service)
    if not relative:
        return None, None  # nothing of this service needs a repo root
    directories = {
        posixpath.normpath(posixpath.dirname(path)) if path != service.venv else posixpath.normpath(path)
        for path in relative
    }
    directories.discard(".")
    venvs = [path for path in relative if path == service.venv]
    home = _home(service, units, facts)
    candidates: dict[str, list[str]] = {}
    looked_at: list[str] = []
    for unit in units:
        for path, source, kind in _evidence_paths(unit, home):
            looked_at.append(source)
            # A path must end with a declared path; the program's venv with the declared venv;
            # a working directory proves a root only as the directory part of a declared path.
            targets = {"path": relative, "venv": venvs, "workdir": directories}[kind]
            for declared in targets:
                root = _suffix_root(path, declared)
                if root is not None:
                    sources = candidates.setdefault(root, [])
                    if source not in sources:
                        sources.append(source)
    declared_text = ", ".join(relative)
    if not candidates:
        seen = "; ".join(looked_at) if looked_at else "no loaded unit of it was gathered"
        return None, (
            f"no repo_root is given for this site, and nothing the host says ends with a declared "
            f"repo-relative path of {service.name} ({declared_text}); looked at: {seen}"
        )
    if len(candidates) > 1:
        named = "; ".join(f"{root} (from {', '.join(sources)})" for root, sources in candidates.items())
        return None, f"no repo_root is given for this site, and the host names several: {named}"
    root, sources = next(iter(candidates.items()))
    return Discovered(service.name, "repo_root", root, sources[0]), None


def _home(service: Service, units: list[UnitFact], facts: HostFacts) -> str | None:
    user, _why = _user(service, units, facts)
    return facts.user_homes.get(user.value) if user else None


# -- venv ----------------------------------------------------------------------------------


def _program_venvs(unit: UnitFact) -> list[tuple[str, str]]:
    """(argv[0], <dir>) when the program is ``<dir>/bin/<name>``: a venv candidate."""
    out: list[tuple[str, str]] = []
    for program in unit.argv[:1]:
        path = posixpath.normpath(program)
        if not path.startswith("/"):
            continue
        bin_dir = posixpath.dirname(path)
        if posixpath.basename(bin_dir) == "bin" and posixpath.dirname(bin_dir) != "/":
            out.append((program, posixpath.dirname(bin_dir)))
    return out


def _venv(
    service: Service, units: list[UnitFact], facts: HostFacts, root: Discovered | None
) -> tuple[Discovered | None, str | None]:
    if service.venv:
        if service.venv.startswith("/"):
            return Discovered(service.name, "venv", service.venv, SITE), None
        if root is None:
            return None, f"the venv {service.venv} is repo-relative, but the repo root is unknown"
        value = posixpath.join(root.value, service.venv)
        source = SITE if root.source == SITE else f"{SITE} ({service.venv}), under repo_root from {root.source}"
        return Discovered(service.name, "venv", value, source), None
    confirmed: dict[str, str] = {}
    refused: list[str] = []
    for unit in units:
        program = "ExecStart" if unit.manager == "systemd" else "ProgramArguments"
        for argv0, venv in _program_venvs(unit):
            marker = facts.files.get(pyvenv_key(venv))
            if marker is not None and marker.content is not None:
                confirmed.setdefault(venv, f"{program}'s program {argv0} ({unit.name}), with {venv}/pyvenv.cfg")
            elif marker is None:
                refused.append(f"{venv}/pyvenv.cfg was not asked")
            else:
                refused.append(f"{venv} is not a venv ({venv}/pyvenv.cfg: {marker.error or 'unreadable'})")
    if len(confirmed) == 1:
        venv, source = next(iter(confirmed.items()))
        return Discovered(service.name, "venv", venv, source), None
    if len(confirmed) > 1:
        named = "; ".join(f"{venv} (from {source})" for venv, source in confirmed.items())
        return None, f"no venv is given for {service.name} at this site, and its units run from several: {named}"
    if not units:
        return None, None
    seen = "; ".join(refused) if refused else "no unit's program is <venv>/bin/<name>"
    return None, f"no venv is given for {service.name} at this site, and the host names none: {seen}"


def located_by(inventory: Inventory, service: Service, facts: HostFacts, declared: str) -> str | None:
    """How a declared path was placed on the host, for a check's evidence (None: absolute)."""
    discovery = discover(inventory, service.host, facts)
    if declared.startswith("~/"):
        user = discovery.get(service.name, "user")
        if user is None:
            return None
        home = facts.user_homes.get(user.value)
        return f"~ = {home or '(unknown)'}, the home of {user.value} (user from {user.source})"
    if declared.startswith("/"):
        return None
    root = discovery.get(service.name, "repo_root")
    return f"repo_root {root.value} from {root.source}" if root else None
