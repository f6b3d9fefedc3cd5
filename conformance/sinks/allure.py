"""Allure labels and attachments for one result, so owners can navigate the report:
epic = layer, feature = service, story = contract, owner, severity, host as a tag, the
contract's statement as the description, and the evidence attached (redacted).

Called from inside the running test (allure's dynamic API needs the test context); a no-op
when allure-pytest is not active.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.contracts.base import Case
from conformance.redact import redact
from conformance.results import Result
from conformance.sinks import BaseSink
from conformance.sinks.categories import write_run_files

_SEVERITY = {"critical": "critical", "major": "normal", "minor": "minor"}


def annotate(case: Case, result: Result) -> None:
    try:
        import allure
        from allure_commons import plugin_manager
    except ImportError:
        return
    if not plugin_manager.list_name_plugin():
        return  # allure-pytest is not collecting results in this run
    inventory = case.inventory
    subject = result.subject or case.subject(inventory)
    allure.dynamic.epic(inventory.layer.title)
    allure.dynamic.feature(case.service.name if case.service else (f"host {case.host}" if case.host else "inventory"))
    allure.dynamic.story(subject.check)
    allure.dynamic.label("owner", subject.owner)
    allure.dynamic.severity(allure.severity_level(_SEVERITY.get(subject.severity, "normal")))
    allure.dynamic.tag(f"host:{case.host}")
    allure.dynamic.label("fingerprint", subject.fingerprint)
    if case.contract:
        allure.dynamic.description(f"**Contract**: {case.contract.statement}\n\nSource: {inventory.layer.source}")
    elif case.service and case.service.notes:
        allure.dynamic.description("\n".join(case.service.notes))
    for name, value in result.evidence.items():
        allure.attach(redact(value)[:20000], name=name, attachment_type=allure.attachment_type.TEXT)
    allure.attach(result.to_json(), name="result.json", attachment_type=allure.attachment_type.JSON)


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
        if self.results_dir and Path(self.results_dir).is_dir():
            try:
                (Path(self.results_dir) / "environment.properties").write_text(self.environment, encoding="utf-8")
                write_run_files(Path(self.results_dir))
            except OSError as exc:
                self.error = f"Allure environment not written: {exc}"
