"""Shared helpers of the harness's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# Imported before any in-process pytester run: pytester restores sys.modules after each run,
# and SQLAlchemy re-imported half-way (its classes cached by the first import) breaks.
import conformance.store.session  # noqa: F401
from conformance.results import Subject

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INVENTORY_DIR = PROJECT_ROOT / "inventory"


@pytest.fixture
def gateway_yaml_text() -> str:
    return (INVENTORY_DIR / "gateway.yaml").read_text(encoding="utf-8")


pytest_plugins = ["pytester"]


@pytest.fixture
def harness_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A copy of the project's suites and inventories in a pytester directory."""
    import shutil

    for folder in ("inventory", "tests_hosts", "tests_contracts", "tests_health"):
        shutil.copytree(PROJECT_ROOT / folder, pytester.path / folder)
    shutil.copy(PROJECT_ROOT / "conftest.py", pytester.path / "conftest.py")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", pytester.path / "pyproject.toml")
    return pytester


def unreachable_site(tmp_path: Path) -> Path:
    """A site with both hosts on loopback port 1: refused at once, so every run finds the same
    two problems (and an empty known_hosts, so nothing could be trusted anyway)."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    site = tmp_path / "site.yaml"
    site.write_text(
        "hosts:\n"
        f"  - name: mini\n    address: 127.0.0.1\n    ssh: {{user: nobody, port: 1, known_hosts: {known_hosts}}}\n"
        f"  - name: studio\n    address: 127.0.0.1\n    ssh: {{user: nobody, port: 1, known_hosts: {known_hosts}}}\n"
    )
    return site


# The subject the bulletin tests share: the proxy's port, under its most severe contract.
EXPOSED = Subject(
    check="optillm-never-exposed",
    contract="optillm-never-exposed",
    host="mini",
    service="optillm-proxy",
    port=4020,
    owner="optillm-proxy",
    layer="gateway",
    severity="critical",
)
