"""What the harness knows about one host after gathering: plain, immutable-ish records.

Checks read only these records; they never run commands. A fact that could not be
gathered carries its error, so that a check depending on it reports "could not check"
with that cause instead of a false pass or a false failure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from conformance.errors import FactUnavailable
from conformance.facts.parsers import Listener
from conformance.probes import ProbeResult

__all__ = ["FactUnavailable", "FileFact", "HostFacts", "ProbeFact", "Process", "UnitFact"]


@dataclass(frozen=True)
class FileFact:
    declared: str  # as written in the inventory
    path: str | None  # resolved absolute path on the host (None: cannot resolve)
    exists: bool
    content: str | None  # None when unreadable or missing
    error: str | None  # why it is missing/unreadable/unresolvable
    secret: bool = False

    def require(self) -> str:
        if self.content is None:
            raise FactUnavailable(f"cannot read {self.path or self.declared}: {self.error}")
        return self.content


@dataclass(frozen=True)
class UnitFact:
    """A systemd unit or launchd job, in one shape."""

    manager: str
    name: str
    loaded: bool
    active: bool
    state_text: str  # "active (running)", "running", "inactive (dead)", "not loaded" ...
    enabled: bool | None  # None: unknown (launchd has no separate enabled state here)
    unit_file_state: str
    definition_path: str | None  # FragmentPath / plist path
    main_pid: int | None
    user: str | None
    argv: tuple[str, ...]
    environment: dict[str, str]  # Environment= / plist EnvironmentVariables
    environment_files: tuple[tuple[str, bool], ...]
    working_directory: str | None
    raw_state: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeFact:
    """One GET or TCP connect made from inside a host."""

    target: str
    ok: bool
    status: int | None
    body: str
    error: str | None
    milliseconds: float

    def to_probe_result(self) -> ProbeResult:
        """The same answer in the shape of a LAN probe, so checks judge both alike."""
        return ProbeResult(
            self.target,
            self.ok,
            self.status,
            self.body,
            _json_or_none(self.body),
            self.error,
            None if self.ok else "unreachable",
            self.milliseconds,
        )


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    uid: int
    command: str


@dataclass
class HostFacts:
    host: str
    hostname: str | None = None
    os_name: str | None = None
    listeners: list[Listener] | None = None
    listeners_error: str | None = None
    listeners_source: str = ""
    processes: dict[int, Process] = field(default_factory=dict)
    units: dict[str, UnitFact] = field(default_factory=dict)
    unit_errors: dict[str, str] = field(default_factory=dict)
    files: dict[str, FileFact] = field(default_factory=dict)  # key: declared path (+ scope)
    user_homes: dict[str, str | None] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    account_names: dict[int, str] = field(default_factory=dict)
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    hf_caches: dict[str, dict[str, Any]] = field(default_factory=dict)
    probes: dict[str, ProbeFact] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    commands: int = 0

    def require_listeners(self) -> list[Listener]:
        if self.listeners is None:
            raise FactUnavailable(f"listening sockets unknown: {self.listeners_error}")
        return self.listeners

    def unit(self, name: str) -> UnitFact:
        if name in self.units:
            return self.units[name]
        raise FactUnavailable(self.unit_errors.get(name, f"unit {name} was not gathered"))

    def file(self, key: str) -> FileFact:
        if key not in self.files:
            raise FactUnavailable(f"{key} was not gathered")
        return self.files[key]

    def probe(self, target: str) -> ProbeFact:
        if target not in self.probes:
            raise FactUnavailable(f"probe {target} was not run")
        return self.probes[target]

    def to_json(self) -> str:
        """Every fact, as JSON text, for handing a run's snapshot to other processes.

        Not redacted: facts hold environment values (secrets among them) that checks judge,
        so the text is treated like the secrets themselves (see ``conformance.snapshot``).
        """
        return json.dumps(
            {
                "host": self.host,
                "hostname": self.hostname,
                "os_name": self.os_name,
                "listeners": None if self.listeners is None else [_listener_data(item) for item in self.listeners],
                "listeners_error": self.listeners_error,
                "listeners_source": self.listeners_source,
                "processes": [[p.pid, p.ppid, p.uid, p.command] for p in self.processes.values()],
                "units": {name: _unit_data(unit) for name, unit in self.units.items()},
                "unit_errors": self.unit_errors,
                "files": {key: _file_data(fact) for key, fact in self.files.items()},
                "user_homes": self.user_homes,
                "user_ids": self.user_ids,
                "account_names": [[uid, name] for uid, name in self.account_names.items()],
                "packages": self.packages,
                "hf_caches": self.hf_caches,
                "probes": {target: _probe_data(probe) for target, probe in self.probes.items()},
                "problems": self.problems,
                "commands": self.commands,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> HostFacts:
        data = json.loads(text)
        listeners = data["listeners"]
        return cls(
            host=data["host"],
            hostname=data["hostname"],
            os_name=data["os_name"],
            listeners=None if listeners is None else [_listener_of(item) for item in listeners],
            listeners_error=data["listeners_error"],
            listeners_source=data["listeners_source"],
            processes={pid: Process(pid, ppid, uid, command) for pid, ppid, uid, command in data["processes"]},
            units={name: _unit_of(item) for name, item in data["units"].items()},
            unit_errors=dict(data["unit_errors"]),
            files={key: _file_of(item) for key, item in data["files"].items()},
            user_homes=dict(data["user_homes"]),
            user_ids=dict(data["user_ids"]),
            account_names={int(uid): name for uid, name in data["account_names"]},
            packages=dict(data["packages"]),
            hf_caches=dict(data["hf_caches"]),
            probes={target: ProbeFact(**item) for target, item in data["probes"].items()},
            problems=list(data["problems"]),
            commands=int(data["commands"]),
        )

    def descends_from(self, pid: int, ancestor: int) -> bool:
        """Whether ``pid`` is ``ancestor`` or one of its descendants (workers, reloaders)."""
        seen: set[int] = set()
        while pid and pid not in seen:
            if pid == ancestor:
                return True
            seen.add(pid)
            process = self.processes.get(pid)
            if process is None:
                return False
            pid = process.ppid
        return False


# -- the JSON shapes of the records (explicit: tuples, int keys and slots survive the trip) --


def _listener_data(item: Listener) -> dict[str, Any]:
    return {
        "address": item.address,
        "port": item.port,
        "family": item.family,
        "dual_stack": item.dual_stack,
        "process": item.process,
        "pid": item.pid,
        "raw": item.raw,
        "processes": [list(pair) for pair in item.processes],
        "interface": item.interface,
        "dual_stack_known": item.dual_stack_known,
    }


def _listener_of(data: dict[str, Any]) -> Listener:
    processes = tuple((str(name), int(pid)) for name, pid in data.pop("processes"))
    return Listener(processes=processes, **data)


def _unit_data(unit: UnitFact) -> dict[str, Any]:
    data = asdict(unit)
    data["argv"] = list(unit.argv)
    data["environment_files"] = [list(pair) for pair in unit.environment_files]
    return data


def _unit_of(data: dict[str, Any]) -> UnitFact:
    argv = tuple(data.pop("argv"))
    files = tuple((str(path), bool(optional)) for path, optional in data.pop("environment_files"))
    return UnitFact(argv=argv, environment_files=files, **data)


def _file_data(fact: FileFact) -> dict[str, Any]:
    return asdict(fact)


def _file_of(data: dict[str, Any]) -> FileFact:
    return FileFact(**data)


def _probe_data(probe: ProbeFact) -> dict[str, Any]:
    return asdict(probe)
