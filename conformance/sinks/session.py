"""Controller-side sinks of a run: result collection, the bulletin and the summary line.

Under xdist, reports travel from the workers to the controller and the logreport hook runs
there again; only the controller (the process without ``workerinput``) registers this
sink, so every bulletin entry is written exactly once. The state lives on the sink object,
one per pytest config, never in module globals (nested runs must not share it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conformance.bulletin.store import BulletinUpdate
from conformance.inventory.model import Inventory
from conformance.report.allure_labels import environment_properties
from conformance.report.junit import mark_broken_as_errors
from conformance.results import Outcome, Result
from conformance.store.records import RunInfo
from conformance.store.session import record_session, runner_name

RUN_ID_KEY = pytest.StashKey[str]()
RESULT_PROPERTY = "conformance_result"
BULLETIN_ENV = "CONFORMANCE_BULLETIN"
# The run could not write the system database: not a finding about the hosts, a failure of
# the monitor itself (pytest's "internal error" code; the timer treats it as a failed run).
STORE_FAILED_EXIT = pytest.ExitCode.INTERNAL_ERROR


def harness_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gateway-conformance")
    except PackageNotFoundError:
        return "unknown"


def result_of(report: pytest.TestReport) -> Result | None:
    for name, value in report.user_properties:
        if name == RESULT_PROPERTY and isinstance(value, str):
            return Result.from_json(value)
    return None


def outcome_of(report: pytest.TestReport) -> str | None:
    result = result_of(report)
    return result.outcome.value if result else None


def bulletin_path(config: pytest.Config, reports: Path) -> Path:
    value = config.getoption("--bulletin") or os.environ.get(BULLETIN_ENV)
    return Path(value) if value else reports / "bulletin.jsonl"


class ControllerSink:
    """Collects every Result on the controller and writes the run's outputs at the end."""

    def __init__(self, config: pytest.Config, inventory: Inventory, reports: Path) -> None:
        self.config = config
        self.inventory = inventory
        self.reports = reports
        self.bulletin = bulletin_path(config, reports)
        self.results: list[Result] = []
        self.broken_nodeids: list[str] = []
        self.update: BulletinUpdate | None = None
        self.bulletin_error: str | None = None
        self.store_error: str | None = None
        self.database: str | None = None

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        result = result_of(report)
        if result is not None:
            self.results.append(result)
            if result.outcome is Outcome.BROKEN:
                self.broken_nodeids.append(report.nodeid)

    @pytest.hookimpl(trylast=True)  # after junitxml has written its file
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        xmlpath = getattr(self.config.option, "xmlpath", None)
        if xmlpath and Path(xmlpath).is_file():
            mark_broken_as_errors(Path(xmlpath), self.broken_nodeids)
        allure_dir = getattr(self.config.option, "allure_report_dir", None)
        if allure_dir and Path(allure_dir).is_dir():
            (Path(allure_dir) / "environment.properties").write_text(
                environment_properties(
                    self.inventory.source_path,
                    self.config.stash[RUN_ID_KEY],
                    harness_version(),
                    self.inventory.layer.name,
                )
            )
        if not self.results:
            return
        try:
            complete = exitstatus in (0, 1) and not session.shouldstop and self._whole_inventory()
            # The system database (conformance.store) records the run and holds the bulletin's
            # state; the file is written from it (or alone, when the database fails).
            run = RunInfo(self.config.stash[RUN_ID_KEY], runner_name(), harness_version(), complete)
            stored = record_session(self.config.getoption("--db"), self.bulletin, self.inventory, self.results, run)
            self.update, self.database = stored.update, stored.database
            if stored.error:
                self.store_error = stored.error
                session.exitstatus = STORE_FAILED_EXIT
        except (OSError, ValueError, TimeoutError) as exc:
            self.bulletin_error = str(exc)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results:
            terminalreporter.write_line(self.summary_line())

    def _whole_inventory(self) -> bool:
        """Whether this run checked everything (no -k/-m, host or service selection, paths)."""
        option = self.config.option
        if (
            option.keyword
            or option.markexpr
            or getattr(option, "conformance_host", None)
            or getattr(option, "conformance_service", None)
            or getattr(option, "maxfail", 0)
        ):
            return False
        testpaths = self.config.getini("testpaths")
        args = [arg for arg in self.config.args if not arg.startswith("-")]
        return not args or sorted(args) == sorted(testpaths)

    def counts(self) -> dict[Outcome, int]:
        counts = dict.fromkeys(Outcome, 0)
        for result in self.results:
            counts[result.outcome] += 1
        return counts

    def summary_line(self) -> str:
        """One line a person or a pager can read."""
        counts = self.counts()
        text = (
            f"conformance: {counts[Outcome.PASSED]} passed, {counts[Outcome.VIOLATED]} failed, "
            f"{counts[Outcome.BROKEN]} broken, {counts[Outcome.SKIPPED]} skipped"
        )
        if self.bulletin_error:
            return f"{text}; bulletin NOT written: {self.bulletin_error}"
        if self.update is None:
            return text
        update = self.update
        text = (
            f"{text}; bulletin: {update.still_open} open ({len(update.opened)} opened, "
            f"{len(update.resolved)} resolved) in {self.bulletin}"
        )
        if self.store_error:
            return f"{text}; system database NOT written ({self.store_error}); the bulletin file was written alone"
        return f"{text} and {self.database}"
