"""The naive baseline: what a typical testinfra suite does, one testinfra call per check.

Each check of the real suites is replaced by the testinfra calls a hand-written suite would
make for it (host.socket(...).is_listening, host.service(...).is_enabled, host.file(...),
host.run(...)), over testinfra's paramiko backend (one connection per host, reused, as
testinfra caches it), with no fact cache and no batching. Used by benchmarks/run.py only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import testinfra
from testinfra.backend.paramiko import ParamikoBackend

from conformance.inventory.model import Inventory
from conformance.transport.connection import _StrictParamikoBackend


class _NaiveBackend(_StrictParamikoBackend):  # type: ignore[misc]
    """The harness's verified, time-bounded paramiko backend with testinfra's own ``run``.

    The harness closes ``run`` (its commands go through the allow-list and the audit log);
    a hand-written testinfra suite calls it for every check, which is what is measured here.
    """

    run = ParamikoBackend.run


def _host(inventory: Inventory, name: str) -> Any:
    # The same verified, time-bounded paramiko backend as the harness: only the way checks
    # use it differs.
    record = inventory.host(name)
    known_hosts = Path(record.ssh.known_hosts) if record.ssh.known_hosts else None
    return testinfra.host.Host(_NaiveBackend(record, known_hosts, record.ssh.host_key, record.ssh.command_timeout))


def naive_checks(inventory: Inventory) -> list[tuple[str, str, Callable[[Any], Any]]]:
    """(id, host, call) for every check, written the way a hand-made testinfra suite would."""
    checks: list[tuple[str, str, Callable[[Any], Any]]] = []

    def add(check_id: str, host: str, fn: Callable[[Any], Any]) -> None:
        checks.append((check_id, host, fn))

    for record in inventory.hosts:
        add(f"{record.name}/hostname", record.name, lambda h: h.run("hostname").stdout)
        add(f"{record.name}/os", record.name, lambda h: h.system_info.type)
        add(f"{record.name}/listeners", record.name, lambda h: h.socket.get_listening_sockets())
    for service in inventory.services:
        if not service.is_live:
            continue
        units = [port.unit for port in inventory.ports_of(service.name) if port.unit]
        units += [service.unit] if service.unit else []
        for unit in units:
            name, path = unit.name, unit.path
            add(f"{service.name}/{name}/enabled", service.host, lambda h, n=name: h.service(n).is_enabled)
            add(f"{service.name}/{name}/running", service.host, lambda h, n=name: h.service(n).is_running)
            add(f"{service.name}/{name}/file", service.host, lambda h, p=path: h.file(p).exists)
            add(
                f"{service.name}/{name}/user",
                service.host,
                lambda h, n=name: h.run(f"systemctl show -p MainPID -p User {n}").stdout,
            )
        for file in service.files:
            path = file.path if file.path.startswith("/") else f"{service.repo_root}/{file.path}"
            path = "/var/lib/optillm" + path[1:] if path.startswith("~") else path
            add(f"{service.name}/file:{path}", service.host, lambda h, p=path: h.run(f"sudo -n cat {p}").stdout)
        for port in inventory.ports_of(service.name):
            if port.state != "active":
                continue
            spec = f"tcp://{port.bind}:{port.port}"
            add(f"{service.name}/{port.port}/bound", service.host, lambda h, s=spec: h.socket(s).is_listening)
            add(
                f"{service.name}/{port.port}/wildcard",
                service.host,
                lambda h, p=port.port: h.socket(f"tcp://0.0.0.0:{p}").is_listening,
            )
            add(f"{service.name}/{port.port}/owner", service.host, lambda h: h.run("sudo -n ss -Htlnp").stdout)
            if port.env_file:
                env_path = f"{service.repo_root}/{port.env_file}"
                add(
                    f"{service.name}/{port.port}/env",
                    service.host,
                    lambda h, p=env_path: h.run(f"sudo -n cat {p}").stdout,
                )
        if service.venv and service.package_pins:
            venv = service.venv if service.venv.startswith("/") else f"{service.repo_root}/{service.venv}"
            add(
                f"{service.name}/transformers",
                service.host,
                lambda h, v=venv: h.pip("transformers", pip_path=f"{v}/bin/pip").version,
            )
        if service.hf_cache:
            cache = service.hf_cache
            add(f"{service.name}/hf-cache", service.host, lambda h, c=cache: h.file(c).is_directory)
            add(f"{service.name}/hf-models", service.host, lambda h, c=cache: h.run(f"ls {c}").stdout)
    for port in inventory.ports:
        if port.state == "reserved":
            add(f"reserved/{port.port}", port.host, lambda h, p=port.port: h.socket(f"tcp://{p}").is_listening)
    for dependency in inventory.dependencies:
        source = inventory.service(dependency.source)
        add(f"dependency/{dependency.source}->{dependency.target}", source.host, lambda h: h.run("ss -Htn").stdout)
    for check in inventory.health_checks:
        service = inventory.service(check.service)
        if not service.is_live or check.calls_models:
            continue
        if check.vantage == "loopback":
            url = f"http://127.0.0.1:{check.port}{check.path}"
            add(f"health/{check.id}", service.host, lambda h, u=url: h.run(f"curl -s {u}").stdout)
        else:
            url = f"http://{inventory.host(service.host).address}:{check.port}{check.path}"
            add(f"health/{check.id}", service.host, lambda h, u=url: httpx.get(u, timeout=5).status_code)
    return checks


def naive_host(inventory: Inventory, name: str) -> Any:
    return _host(inventory, name)
