"""The naive baseline: what a typical testinfra suite does, one testinfra call per check.

Each check of the real suites is replaced by the testinfra calls a hand-written suite would
make for it (host.socket(...).is_listening, host.service(...).is_enabled, host.file(...),
host.run(...)), over testinfra's paramiko backend (one connection per host, reused, as
testinfra caches it), with no fact cache and no batching. Used by benchmarks/run.py only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import testinfra

from conformance.inventory.model import Inventory
from conformance.transport.connection import _StrictParamikoBackend


def _host(inventory: Inventory, name: str) -> Any:
    # The same verified, time-bounded paramiko backend as the harness: only the way checks
    # use it differs.
    record = inventory.host(name)
    known_hosts = Path(record.ssh.known_hosts) if record.ssh.known_hosts else None
    return testinfra.host.Host(
        _StrictParamikoBackend(record, known_hosts, record.ssh.host_key, record.ssh.command_timeout)
    )


def run_naive(inventory: Inventory) -> dict[str, Any]:
    started = time.monotonic()
    calls = 0
    hosts = {host.name: _host(inventory, host.name) for host in inventory.hosts}

    def call(fn: Any) -> Any:
        nonlocal calls
        calls += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a baseline only counts and times calls
            return exc

    for host in hosts.values():
        call(lambda host=host: host.run("hostname").stdout)
        call(lambda host=host: host.system_info.type)
        call(lambda host=host: host.socket.get_listening_sockets())
    for service in inventory.services:
        if not service.is_live:
            continue
        host = hosts[service.host]
        units = [port.unit for port in inventory.ports_of(service.name) if port.unit] + (
            [service.unit] if service.unit else []
        )
        for unit in units:
            call(lambda host=host, unit=unit: host.service(unit.name).is_enabled)
            call(lambda host=host, unit=unit: host.service(unit.name).is_running)
            call(lambda host=host, unit=unit: host.file(unit.path).exists)
            call(lambda host=host, unit=unit: host.run(f"systemctl show -p MainPID -p User {unit.name}").stdout)
        for file in service.files:
            path = file.path if file.path.startswith("/") else f"{service.repo_root}/{file.path}"
            path = path.replace("~", "/var/lib/optillm") if path.startswith("~") else path
            call(lambda host=host, path=path: host.run(f"sudo -n cat {path}").stdout)
        for port in inventory.ports_of(service.name):
            if port.state != "active":
                continue
            call(lambda host=host, port=port: host.socket(f"tcp://{port.bind}:{port.port}").is_listening)
            call(lambda host=host, port=port: host.socket(f"tcp://0.0.0.0:{port.port}").is_listening)
            call(lambda host=host, port=port: host.run("sudo -n ss -Htlnp").stdout)
            if port.env_file:
                call(
                    lambda host=host, port=port, service=service: (
                        host.run(f"sudo -n cat {service.repo_root}/{port.env_file}").stdout
                    )
                )
        if service.venv:
            venv = service.venv if service.venv.startswith("/") else f"{service.repo_root}/{service.venv}"
            call(lambda host=host, venv=venv: host.pip("transformers", pip_path=f"{venv}/bin/pip").version)
        if service.hf_cache:
            call(lambda host=host, cache=service.hf_cache: host.file(cache).is_directory)
            call(lambda host=host, cache=service.hf_cache: host.run(f"ls {cache}").stdout)
    for port in inventory.ports:
        if port.state == "reserved":
            call(lambda port=port: hosts[port.host].socket(f"tcp://{port.port}").is_listening)
    for dependency in inventory.dependencies:
        source = inventory.service(dependency.source)
        host = hosts[source.host]
        call(lambda host=host: host.run("ss -Htn").stdout)
    with httpx.Client(timeout=5) as client:
        for check in inventory.health_checks:
            service = inventory.service(check.service)
            if not service.is_live or check.calls_models:
                continue
            address = inventory.host(service.host).address
            if check.vantage == "loopback":
                call(
                    lambda host=hosts[service.host], check=check: (
                        host.run(f"curl -s http://127.0.0.1:{check.port}{check.path}").stdout
                    )
                )
            else:
                call(
                    lambda address=address, check=check: (
                        client.get(f"http://{address}:{check.port}{check.path}").status_code
                    )
                )
    for host in hosts.values():
        host.backend.close()
    return {"seconds": time.monotonic() - started, "calls": calls}
