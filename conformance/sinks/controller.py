"""Controller side of a run: collect every Result once and hand it to each sink.

Under xdist, reports travel from the workers to the controller and the logreport hook runs
there again; only the controller (the process without ``workerinput``) registers this
plugin, so every bulletin entry is written exactly once. The state lives on the sink
objects, one per pytest config, never in module globals (nested runs must not share it).
"""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from conformance.bulletin.store import BulletinUpdate
from conformance.inventory.model import Inventory
from conformance.results import Outcome, Result
from conformance.sinks import BaseSink, Sink, allure_writer
from conformance.sinks.allure import AllureSink
from conformance.sinks.junit import JUnitSink

RUN_ID_KEY = pytest.StashKey[str]()
RESULT_PROPERTY = "conformance_result"
BULLETIN_ENV = "CONFORMANCE_BULLETIN"


def harness_version() -> str:
    try:
        return version("gateway-conformance")
    except PackageNotFoundError:
        return "unknown"


def result_of(report: pytest.TestReport) -> Result | None:
    """The Result a test report carries (set by the plugin in the process that ran the test)."""
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


def whole_inventory(config: pytest.Config) -> bool:
    """Whether this run checked everything (no -k/-m, host or service selection, paths)."""
    option = config.option
    if (
        option.keyword
        or option.markexpr
        or getattr(option, "conformance_host", None)
        or getattr(option, "conformance_service", None)
        or getattr(option, "maxfail", 0)
    ):
        return False
    testpaths = config.getini("testpaths")
    args = [arg for arg in config.args if not arg.startswith("-")]
    return not args or sorted(args) == sorted(testpaths)


class BulletinSink(BaseSink):
    """Opens, reminds, resolves and retires bulletin entries from the run's results.

    The system database (``conformance.store``) records the run and holds the bulletin's
    state; the bulletin file is written from it, or alone when the database fails (the run
    then fails too, and the entries are carried into the database by the next run).
    """

    def __init__(self, path: Path, run_id: str, inventory: Inventory, config: pytest.Config) -> None:
        self.path = path
        self.run_id = run_id
        self.inventory = inventory
        self.config = config
        self.started_at = datetime.now(UTC)
        self.results: list[Result] = []
        self.update: BulletinUpdate | None = None
        self.database: str | None = None
        self.store_error: str | None = None
        # Tests that ended without a judgement (a worker killed mid-test, an error outside
        # the check): their subjects are unknown this run, so nothing may be retired.
        self.unjudged: list[str] = []

    def on_result(self, result: Result, report: pytest.TestReport) -> None:
        self.results.append(result)

    def on_finish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.results:
            return
        complete = (
            exitstatus in (0, 1) and not session.shouldstop and not self.unjudged and whole_inventory(self.config)
        )
        # Imported here: SQLAlchemy and Alembic cost half a second, and only the controller
        # needs them, once, at the end (``preload_store`` warms them up meanwhile).
        from conformance.store.records import RunInfo
        from conformance.store.session import record_session, runner_name

        run = RunInfo(self.run_id, runner_name(), harness_version(), complete, self.started_at)
        try:
            stored = record_session(self.config.getoption("--db"), self.path, self.inventory, self.results, run)
        except (OSError, ValueError, TimeoutError) as exc:
            self.error = f"bulletin NOT written: {exc}"
            return
        self.update, self.database = stored.update, stored.database
        if stored.error:
            self.store_error = stored.error
            self.error = f"system database NOT written ({stored.error}); the bulletin file was written alone"

    def summary(self) -> str | None:
        if self.update is None:
            return self.error
        update = self.update
        acknowledged = f", {update.acknowledged} acknowledged" if update.acknowledged else ""
        changes = [f"{len(update.opened)} opened"]
        changes += [f"{len(update.reopened)} re-opened"] if update.reopened else []
        changes += [f"{len(update.flapping)} flapping"] if update.flapping else []
        changes += [f"{len(update.pending)} below threshold"] if update.pending else []
        changes += [f"{len(update.resolved)} resolved"]
        changes += [f"{len(update.waived)} waived"] if update.waived else []
        text = f"bulletin: {update.still_open} open{acknowledged} ({', '.join(changes)}) in {self.path}"
        if self.store_error:
            return f"{text}; {self.error}"
        return f"{text} and {self.database}" if self.database else text


class TerminalSink(BaseSink):
    """Counts the outcomes for the one summary line a person or a pager reads."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(Outcome, 0)

    def on_result(self, result: Result, report: pytest.TestReport) -> None:
        self.counts[result.outcome] += 1

    def summary(self) -> str | None:
        counts = self.counts
        if not any(counts.values()):
            return None
        text = (
            f"conformance: {counts[Outcome.PASSED]} passed, {counts[Outcome.VIOLATED]} failed, "
            f"{counts[Outcome.BROKEN]} broken, {counts[Outcome.SKIPPED]} skipped"
        )
        return f"{text}, {counts[Outcome.WAIVED]} waived" if counts[Outcome.WAIVED] else text


def preload_store() -> None:
    """Import the system database's modules in a background thread.

    Started by a run that checks hosts: the import then overlaps with waiting for the
    hosts' facts instead of delaying pytest's start (or a worker's, which never writes).
    """

    def load() -> None:
        with contextlib.suppress(ImportError):
            import conformance.store.session  # noqa: F401

    threading.Thread(target=load, name="preload-store", daemon=True).start()


def run_sinks(config: pytest.Config, inventory: Inventory, reports: Path, run_id: str) -> list[Sink]:
    """Every sink of a run, in the order their summaries are printed."""
    return [
        TerminalSink(),
        BulletinSink(bulletin_path(config, reports), run_id, inventory, config),
        AllureSink(
            allure_writer.results_folder(config),
            inventory.source_path,
            run_id,
            harness_version(),
            inventory.layer.name,
        ),
        JUnitSink(getattr(config.option, "xmlpath", None)),
    ]


class Controller:
    """Dispatches pytest's controller-side hooks to the sinks (registered on the controller only)."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def sink(self, kind: type[Any]) -> Any:
        return next(sink for sink in self.sinks if isinstance(sink, kind))

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = result_of(report)
        if report.failed and result is None:
            # xdist reports a crashed worker's test as failed, phase "???", with no Result.
            self.sink(BulletinSink).unjudged.append(report.nodeid)
        if report.when != "call":
            return
        if result is not None:
            for sink in self.sinks:
                sink.on_result(result, report)

    @pytest.hookimpl(trylast=True)  # after junitxml has written its file
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        for sink in self.sinks:
            sink.on_finish(session, exitstatus)
        if any(sink.error for sink in self.sinks):
            # An output that could not be written is a failure of the monitor itself, whatever
            # the hosts' results: pytest's "internal error" code, which the timer and CI see.
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        line = self.summary_line()
        if line:
            terminalreporter.write_line(line)

    def summary_line(self) -> str | None:
        parts = [part for sink in self.sinks if (part := sink.summary())]
        errors = [sink.error for sink in self.sinks if sink.error and not any(sink.error in part for part in parts)]
        return "; ".join(parts + errors) or None
