"""Allure labels and attachments for one result, so owners can navigate the report:
epic = layer, feature = service, story = contract, owner, severity, host as a tag, the
contract's statement as the description, and the evidence attached (redacted).

Called from inside the running test; handed to the run's Allure recorder at once
(``conformance.sinks.allure_writer``); a no-op when the run writes no Allure results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from allure_commons.types import AttachmentType

from conformance.contracts.base import Case
from conformance.redact import redact
from conformance.results import Result
from conformance.sinks import BaseSink, allure_writer
from conformance.sinks.categories import write_run_files

_SEVERITY = {"critical": "critical", "major": "normal", "minor": "minor"}


def allure_labels(case: Case, result: Result) -> list[tuple[str, str]]:
    """The labels owners navigate by, in the order the report lists them."""
    subject = result.subject or case.subject(case.inventory)
    feature = case.service.name if case.service else (f"host {case.host}" if case.host else "inventory")
    return [
        ("epic", case.inventory.layer.title),
        ("feature", feature),
        ("story", subject.check),
        ("owner", subject.owner),
        ("severity", _SEVERITY.get(subject.severity, "normal")),
        ("tag", f"host:{case.host}"),
        ("fingerprint", subject.fingerprint),
    ]


def allure_description(case: Case) -> str | None:
    if case.contract:
        return f"**Contract**: {case.contract.statement}\n\nSource: {case.inventory.layer.source}"
    if case.service and case.service.notes:
        return "\n".join(case.service.notes)
    return None


def annotate(case: Case, result: Result) -> None:
    """Labels, description and evidence of one check, on the running test's Allure result."""
    recorder = allure_writer.active_recorder()
    if recorder is None:
        return  # no Allure results in this run
    attachments: list[tuple[str, str, Any]] = [
        (redact(value)[:20000], name, AttachmentType.TEXT) for name, value in result.evidence.items()
    ]
    attachments.append((result.to_json(), "result.json", AttachmentType.JSON))
    recorder.annotate(allure_labels(case, result), allure_description(case), attachments)


def environment_properties(inventory_path: str, run_id: str, version: str, layer: str) -> str:
    """Allure's environment.properties: what this run checked, and with what."""
    values = {
        "inventory": inventory_path,
        "run_id": run_id,
        "harness": f"gateway-conformance {version}",
        "layer": layer,
    }
    return "".join(f"{key}={value}\n" for key, value in values.items())


class AllureSink(BaseSink):
    """Labels and attachments per test; environment.properties, categories.json (the owners'
    kinds of problem) and executor.json (the runner) at the end of the run."""

    def __init__(self, results_dir: str | None, inventory_path: str, run_id: str, version: str, layer: str) -> None:
        self.results_dir = results_dir
        self.environment = environment_properties(inventory_path, run_id, version, layer)

    def on_test(self, case: Case, result: Result) -> None:
        annotate(case, result)

    def on_finish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            allure_writer.write_results(session.config)  # every test's files on disk
        except OSError as exc:
            self.error = f"Allure results NOT all written: {exc}"
        if self.results_dir and Path(self.results_dir).is_dir():
            try:
                (Path(self.results_dir) / "environment.properties").write_text(self.environment, encoding="utf-8")
                write_run_files(Path(self.results_dir))
            except OSError as exc:
                self.error = f"Allure environment not written: {exc}"
