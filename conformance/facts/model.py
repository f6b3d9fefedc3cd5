"""What the harness knows about one host after gathering: plain, immutable-ish records.

Checks read only these records; they never run commands. A fact that could not be
gathered carries its error, so that a check depending on it reports "could not check"
with that cause instead of a false pass or a false failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
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
    refused_on: str | None = None  # the host whose sudo refused to read it (the monitor's privilege)

    def require(self) -> str:
        if self.content is None:
            raise FactUnavailable(f"cannot read {self.path or self.declared}: {self.error}", refused_on=self.refused_on)
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
    # What could not be read around the fields above (launchctl print blocks that could not be
    # placed); shown in the evidence of every check that uses the unit.
    notes: tuple[str, ...] = ()
    # Why the definition (the launchd plist) could not be read, when it could not: then
    # ``enabled`` is unknown.
    definition_error: str | None = None
    # systemd DynamicUser=yes: the unit runs as a transient uid allocated at start (see
    # conformance.contracts.service_account); ``user`` is then that dynamic user's name.
    dynamic_user: bool = False


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
    listeners_refused: bool = False  # sudo refused the listener command (the monitor's privilege)
    listeners_notes: list[str] = field(default_factory=list)  # enrichment that could not be done
    # Set when the listeners were read without their owning processes, and why (see gather).
    listeners_without_processes: str | None = None
    processes: dict[int, Process] = field(default_factory=dict)
    units: dict[str, UnitFact] = field(default_factory=dict)
    unit_errors: dict[str, str] = field(default_factory=dict)
    files: dict[str, FileFact] = field(default_factory=dict)  # key: declared path (+ scope)
    user_homes: dict[str, str | None] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    account_names: dict[int, str] = field(default_factory=dict)
    # Accounts asked by name whose home and uid are not known, and why (no NSS source knows
    # the name; the lookup failed; the name was not asked): see ``account_unknown``.
    account_errors: dict[str, str] = field(default_factory=dict)
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)
    hf_caches: dict[str, dict[str, Any]] = field(default_factory=dict)
    probes: dict[str, ProbeFact] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    commands: int = 0

    def require_listeners(self) -> list[Listener]:
        if self.listeners is None:
            raise FactUnavailable(
                f"listening sockets unknown: {self.listeners_error}",
                refused_on=self.host if self.listeners_refused else None,
            )
        return self.listeners

    def account_unknown(self, user: str) -> str:
        """Why the home and uid of ``user`` are not known (for a check's could-not-check)."""
        return self.account_errors.get(user, f"the account {user!r} was not looked up")

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
        Field by field, so a field added later travels too (a type JSON cannot hold fails
        loudly here rather than arriving changed).
        """
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            record = _RECORD_FIELDS.get(item.name)
            if value is not None and record is not None:
                if isinstance(value, list):
                    value = [_record_data(entry) for entry in value]
                else:
                    value = {str(key): _record_data(entry) for key, entry in value.items()}
            elif isinstance(value, dict) and str(item.type).startswith("dict[int,"):
                value = {str(key): entry for key, entry in value.items()}
            data[item.name] = value
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HostFacts:
        data = json.loads(text)
        values: dict[str, Any] = {}
        for item in fields(cls):
            value = data[item.name]
            record = _RECORD_FIELDS.get(item.name)
            int_keys = str(item.type).startswith("dict[int,")
            if value is not None and record is not None:
                if isinstance(value, list):
                    value = [_record_of(record, entry) for entry in value]
                else:
                    value = {(int(key) if int_keys else key): _record_of(record, entry) for key, entry in value.items()}
            elif isinstance(value, dict) and int_keys:
                value = {int(key): entry for key, entry in value.items()}
            values[item.name] = value
        return cls(**values)

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


# -- the JSON shapes of the records: their init fields; tuples come back as tuples --------


def _record_data(record: Any) -> dict[str, Any]:
    return {item.name: getattr(record, item.name) for item in fields(record) if item.init}


def _tuples(value: Any) -> Any:
    return tuple(_tuples(entry) for entry in value) if isinstance(value, list) else value


def _record_of(record: type[Any], data: dict[str, Any]) -> Any:
    values = {
        item.name: _tuples(data[item.name]) if str(item.type).startswith("tuple") else data[item.name]
        for item in fields(record)
        if item.init
    }
    return record(**values)


# Fields of HostFacts that hold records (a list of them, or a dict of them by key).
_RECORD_FIELDS: dict[str, type[Any]] = {
    "listeners": Listener,
    "processes": Process,
    "units": UnitFact,
    "files": FileFact,
    "probes": ProbeFact,
}
