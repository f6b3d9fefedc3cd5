"""Controller-side sinks of a run: result collection, the bulletin and the summary line.

Under xdist, reports travel from the workers to the controller and the logreport hook runs
there again; only the controller (the process without ``workerinput``) collects and
writes, so every bulletin entry is written exactly once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.bulletin.store import BulletinUpdate, open_problems, read_entries, update_bulletin
from conformance.inventory.model import Inventory
from conformance.results import Outcome, Result

RUN_ID_KEY = pytest.StashKey[str]()
RESULT_PROPERTY = "conformance_result"
BULLETIN_ENV = "CONFORMANCE_BULLETIN"


@dataclass
class ControllerState:
    config: pytest.Config
    inventory: Inventory
    reports: Path
    bulletin: Path
    results: list[Result] = field(default_factory=list)
    update: BulletinUpdate | None = None
    bulletin_error: str | None = None


_state: ControllerState | None = None


def configure_controller(config: pytest.Config, inventory: Inventory, reports: Path) -> None:
    global _state
    value = config.getoption("--bulletin") or os.environ.get(BULLETIN_ENV)
    bulletin = Path(value) if value else reports / "bulletin.jsonl"
    _state = ControllerState(config, inventory, reports, bulletin)


def result_of(report: pytest.TestReport) -> Result | None:
    for name, value in report.user_properties:
        if name == RESULT_PROPERTY:
            return Result.from_json(value)
    return None


def outcome_of(report: pytest.TestReport) -> str | None:
    result = result_of(report)
    return result.outcome.value if result else None


def on_report(report: pytest.TestReport) -> None:
    if _state is None or report.when != "call":
        return
    result = result_of(report)
    if result is not None:
        _state.results.append(result)


def finish(session: pytest.Session, exitstatus: int) -> None:
    if _state is None or getattr(session.config, "workerinput", None) is not None:
        return
    if not _state.results:
        return
    try:
        _state.update = update_bulletin(_state.bulletin, _state.results, session.config.stash[RUN_ID_KEY],
                                        _state.inventory.bulletin.reminder_after_hours)
    except (OSError, ValueError, TimeoutError) as exc:
        _state.bulletin_error = str(exc)


def summary_line() -> str:
    assert _state is not None
    counts = {outcome: 0 for outcome in Outcome}
    for result in _state.results:
        counts[result.outcome] += 1
    text = (f"conformance: {counts[Outcome.PASSED]} passed, {counts[Outcome.VIOLATED]} failed, "
            f"{counts[Outcome.BROKEN]} broken, {counts[Outcome.SKIPPED]} skipped")
    if _state.bulletin_error:
        return f"{text}; bulletin NOT written: {_state.bulletin_error}"
    if _state.update is not None:
        update = _state.update
        return (f"{text}; bulletin: {update.still_open} open ({len(update.opened)} opened, "
                f"{len(update.resolved)} resolved) in {_state.bulletin}")
    try:
        still_open = len(open_problems(read_entries(_state.bulletin)))
    except ValueError:
        still_open = -1
    return f"{text}; bulletin: {still_open} open"


def terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _state is None or getattr(config, "workerinput", None) is not None or not _state.results:
        return
    terminalreporter.write_line(summary_line())
