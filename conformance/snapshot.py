"""A run's gathered facts and LAN probes, handed from the controller to xdist workers.

The controller gathers every host once (one SSH connection per host per run) and writes
each host's facts, then the LAN probes, here; workers read them instead of connecting.
Facts carry environment values, secrets among them, so the snapshot is treated like the
secrets: a private directory (0700, ``mkdtemp``) of private files (0600, created
exclusively), each written whole and then renamed into place, and removed at the end of
the run. A worker that does not find what it waits for within the bound gathers itself:
slower, never a different outcome.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from conformance.errors import HostUnavailable
from conformance.facts.model import HostFacts
from conformance.probes import ProbeResult

POLL_SECONDS = 0.01
PROBES_FILE = "lan-probes.json"
PLAN_FILE = "plan.json"


def probe_to_data(result: ProbeResult) -> dict[str, Any]:
    return asdict(result)


def probe_of(data: dict[str, Any]) -> ProbeResult:
    return ProbeResult(**data)


def facts_to_json(facts: HostFacts | HostUnavailable) -> str:
    if isinstance(facts, HostUnavailable):
        return json.dumps({"unavailable": {"host": facts.host, "kind": facts.kind, "cause": facts.cause}})
    return json.dumps({"facts": facts.to_json()})


def facts_of(text: str) -> HostFacts | HostUnavailable:
    data = json.loads(text)
    if "unavailable" in data:
        item = data["unavailable"]
        return HostUnavailable(item["host"], item["kind"], item["cause"])
    return HostFacts.from_json(data["facts"])


class Snapshot:
    """One run's snapshot directory: the controller writes, workers wait and read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls) -> Snapshot:
        return cls(Path(tempfile.mkdtemp(prefix="conformance-facts-")))  # mode 0700

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _host_file(self, host: str) -> Path:
        # Hashed: a host name never becomes a path, whatever the inventory says.
        return self.path / f"facts-{hashlib.sha256(host.encode()).hexdigest()[:24]}.json"

    def _write(self, target: Path, text: str) -> None:
        part = target.with_name(target.name + ".part")
        descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        part.replace(target)  # readers see the whole file or none

    def write_facts(self, host: str, facts: HostFacts | HostUnavailable) -> None:
        self._write(self._host_file(host), facts_to_json(facts))

    def write_plan(self, hosts: list[str], probes: bool) -> None:
        """What will be published: these hosts' facts, and the LAN probes if ``probes``."""
        self._write(self.path / PLAN_FILE, json.dumps({"hosts": hosts, "probes": probes}))

    def read_plan(self, seconds: float) -> tuple[list[str], bool] | None:
        text = self._wait_for(self.path / PLAN_FILE, seconds)
        if text is None:
            return None
        data = json.loads(text)
        return list(data["hosts"]), bool(data["probes"])

    def write_probes(self, probes: dict[str, ProbeResult], unreachable: dict[str, str]) -> None:
        data = {"probes": {key: probe_to_data(value) for key, value in probes.items()}, "unreachable": unreachable}
        self._write(self.path / PROBES_FILE, json.dumps(data))

    def _wait_for(self, target: Path, seconds: float) -> str | None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                return target.read_text(encoding="utf-8")
            except FileNotFoundError:
                if time.monotonic() >= deadline or not self.path.is_dir():
                    return None
                time.sleep(POLL_SECONDS)

    def read_facts(self, host: str, seconds: float) -> HostFacts | HostUnavailable | None:
        """The host's facts (or its one failure cause), waiting up to ``seconds``; None: not there."""
        text = self._wait_for(self._host_file(host), seconds)
        return None if text is None else facts_of(text)

    def read_probes(self, seconds: float) -> tuple[dict[str, ProbeResult], dict[str, str]] | None:
        text = self._wait_for(self.path / PROBES_FILE, seconds)
        if text is None:
            return None
        data = json.loads(text)
        return {key: probe_of(value) for key, value in data["probes"].items()}, dict(data["unreachable"])
