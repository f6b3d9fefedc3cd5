"""End-to-end: the real suites, run as users run them, against the running lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.bulletin.events import BOOKKEEPING
from selftest.conftest import PROJECT_ROOT
from selftest.lab.conftest import lab_skip_reason

LAB_INVENTORY = PROJECT_ROOT / "inventory" / "lab.yaml"


@dataclass
class SuiteRun:
    exit_code: int
    output: str
    seconds: float
    reports: Path
    bulletin: Path

    def entries(self) -> list[dict]:
        """The escalations (the bookkeeping that thresholds and flapping fold left out)."""
        if not self.bulletin.exists():
            return []
        lines = [json.loads(line) for line in self.bulletin.read_text().splitlines() if line.strip()]
        return [entry for entry in lines if entry.get("event") not in BOOKKEEPING]

    def outcome_lines(self, word: str) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith(word + " ")]

    def failed(self) -> list[str]:
        return self.outcome_lines("FAILED")

    def errors(self) -> list[str]:
        return self.outcome_lines("ERROR")


@pytest.fixture(scope="session")
def lab_env() -> dict[str, str]:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from lab import drift_reset, lab_up, secrets_env

    lab_up()
    drift_reset()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CONFORMANCE_", "PYTEST_"))}
    env.update(secrets_env())
    return env


@pytest.fixture
def run_suites(lab_env, tmp_path) -> Iterator:
    """Run the conformance suites against the lab in a subprocess, with its own reports."""
    reports = tmp_path / "reports"

    def run(*args: str, bulletin: Path | None = None, env: dict[str, str] | None = None) -> SuiteRun:
        target = bulletin or reports / "bulletin.jsonl"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "auto",
            "-rfE",
            "--inventory",
            str(LAB_INVENTORY),
            "--reports-dir",
            str(reports),
            "--bulletin",
            str(target),
            "-p",
            "no:randomly",
            *args,
        ]
        started = time.monotonic()
        completed = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env or lab_env, capture_output=True, text=True, timeout=300, check=False
        )
        return SuiteRun(
            completed.returncode, completed.stdout + completed.stderr, time.monotonic() - started, reports, target
        )

    yield run


def generate_report(results: Path, output: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``conformance report`` on a run's Allure results, as an owner types it."""
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", "report", "--results", str(results), "--output", str(output)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
