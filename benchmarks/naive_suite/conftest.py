"""The naive baseline as a real pytest suite: one test per check, testinfra calls inside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.naive_baseline import naive_checks, naive_host
from conformance.inventory.loader import load_inventory

INVENTORY = load_inventory(
    Path(os.environ.get("NAIVE_INVENTORY", Path(__file__).parents[2] / "inventory" / "lab.yaml"))
)
CHECKS = naive_checks(INVENTORY)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "naive_check" in metafunc.fixturenames:
        metafunc.parametrize("naive_check", CHECKS, ids=[check[0] for check in CHECKS])


@pytest.fixture(scope="session")
def naive_hosts():
    hosts = {record.name: naive_host(INVENTORY, record.name) for record in INVENTORY.hosts}
    yield hosts
    for host in hosts.values():
        host.backend.close()
