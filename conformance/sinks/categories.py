"""What the owners' report sorts problems by, and who ran it.

Allure files every failed test under "Product defects" and every broken one under "Test
defects" unless the results folder holds a ``categories.json``. Allure 2 matches a category
by the test's status and a regular expression over its whole status message (allure2,
``CategoriesPlugin.matches``: ``Pattern.compile(regex, DOTALL).matcher(message).matches()``),
and puts a result in every category it matches. So each problem's message starts with one
stable marker for its kind, exactly one kind per result, and each category matches exactly
its marker:

    [acknowledged]            a violation or a broken check an owner acknowledged in the bulletin
    [waived]                  a violation under a current waiver (reported as skipped)
    [blocked by root cause]   could not be checked because of another problem (a host down ...)
    [could not check]         could not be checked, for a reason of its own
    [contract violated]       the hosts break the contract

``executor.json`` names the runner (the Mini's timer, the CI job with the run's link), which
Allure shows on the report's front page and in each history entry.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from conformance.bulletin import events
from conformance.bulletin.store import open_problems, read_entries, utc_now
from conformance.results import Outcome, Result

ACKNOWLEDGED = "[acknowledged]"
WAIVED = "[waived]"
BLOCKED = "[blocked by root cause]"
CANNOT_CHECK = "[could not check]"
VIOLATED = "[contract violated]"
MARKERS = (ACKNOWLEDGED, WAIVED, BLOCKED, CANNOT_CHECK, VIOLATED)
RUNNER_ENV = "CONFORMANCE_RUNNER"


def marker(result: Result, acknowledged: bool = False) -> str | None:
    """The one marker of a result's kind; None for a pass or a plain skip."""
    if result.outcome is Outcome.WAIVED:
        return WAIVED
    if result.outcome not in (Outcome.VIOLATED, Outcome.BROKEN):
        return None
    if acknowledged:
        return ACKNOWLEDGED
    if result.outcome is Outcome.VIOLATED:
        return VIOLATED
    return BLOCKED if result.blocked_by else CANNOT_CHECK


def marked(text: str, result: Result, acknowledged: bool = False) -> str:
    """The test's message: its marker first (Allure's categories match on it), then the text."""
    kind = marker(result, acknowledged)
    return f"{kind} {text}" if kind else text


def _only(mark: str) -> str:
    # The whole message (DOTALL) must contain the marker: the marker leads it, after any
    # exception class name allure-pytest puts first ("conformance.plugin.CheckBroken: ...",
    # "Skipped: ...").
    return rf".*{re.escape(mark)}.*"


def categories() -> list[dict[str, Any]]:
    """Allure's categories.json: first the kinds owners act on differently, then the rest."""
    return [
        {
            "name": "Contract violated",
            "description": "The hosts break a contract of the owners' document: fix the host or the document.",
            "matchedStatuses": ["failed"],
            "messageRegex": _only(VIOLATED),
        },
        {
            "name": "Could not check",
            "description": "The check could not be made (unreadable file, missing secret, refused command).",
            "matchedStatuses": ["broken"],
            "messageRegex": _only(CANNOT_CHECK),
        },
        {
            "name": "Blocked by a root cause",
            "description": "Not checked because of another problem, named in the message (e.g. a host down).",
            "matchedStatuses": ["broken"],
            "messageRegex": _only(BLOCKED),
        },
        {
            "name": "Waived",
            "description": "A violation under a current waiver of the site file (owner, justification, expiry).",
            "matchedStatuses": ["skipped"],
            "messageRegex": _only(WAIVED),
        },
        {
            "name": "Acknowledged",
            "description": "A known problem an owner acknowledged in the bulletin: not escalated while it lasts.",
            "matchedStatuses": ["failed", "broken"],
            "messageRegex": _only(ACKNOWLEDGED),
        },
        {
            "name": "Harness error",
            "description": "An error of the harness itself, outside any check (no marker): report it.",
            "matchedStatuses": ["broken", "failed"],
            "messageRegex": rf"(?!.*(?:{'|'.join(re.escape(mark) for mark in MARKERS)})).*",
        },
    ]


def executor(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Allure's executor.json: the runner (``CONFORMANCE_RUNNER``), with the GitHub Actions
    run's link when the GITHUB_* variables of a workflow run are set."""
    environ = os.environ if environ is None else environ
    name = environ.get(RUNNER_ENV) or "manual"
    info: dict[str, Any] = {"name": name, "type": "conformance"}
    server, repository, run_id = (
        environ.get("GITHUB_SERVER_URL"),
        environ.get("GITHUB_REPOSITORY"),
        environ.get("GITHUB_RUN_ID"),
    )
    if server and repository and run_id:
        run_url = f"{server}/{repository}/actions/runs/{run_id}"
        info.update(
            type="github",
            url=f"{server}/{repository}/actions",
            buildName=f"{environ.get('GITHUB_WORKFLOW') or name} #{environ.get('GITHUB_RUN_NUMBER') or run_id}",
            buildUrl=run_url,
        )
        number = environ.get("GITHUB_RUN_NUMBER", "")
        if number.isdigit():
            info["buildOrder"] = int(number)
    return info


@dataclass
class Acknowledgements:
    """The fingerprints an owner acknowledged (and not expired) in the bulletin file, read once.

    A correlated incident's acknowledgement covers every member it lists."""

    path: Path
    now: datetime = field(default_factory=utc_now)
    _covered: frozenset[str] | None = None

    def covered(self) -> frozenset[str]:
        if self._covered is None:
            try:
                problems = open_problems(read_entries(self.path)) if self.path.is_file() else {}
            except (OSError, ValueError):
                problems = {}  # the bulletin sink reports an unreadable bulletin
            covered: set[str] = set()
            for problem in problems.values():
                if problem.ack_active(self.now):
                    covered.add(problem.fingerprint)
                    covered.update(str(member) for member in problem.opened.get(events.CORRELATED) or ())
            self._covered = frozenset(covered)
        return self._covered

    def covers(self, result: Result) -> bool:
        return result.subject is not None and result.subject.fingerprint in self.covered()


def write_run_files(results_dir: Path, environ: Mapping[str, str] | None = None) -> None:
    """categories.json and executor.json into the Allure results folder."""
    (results_dir / "categories.json").write_text(json.dumps(categories(), indent=2), encoding="utf-8")
    (results_dir / "executor.json").write_text(json.dumps(executor(environ), indent=2), encoding="utf-8")
