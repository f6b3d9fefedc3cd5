"""JUnit keeps "could not check" apart from "contract violated".

pytest's junitxml writes every failure in a test's call phase as <failure>; a broken check
(host unreachable, permission, timeout) is an <error> for anyone reading the JUnit file.
After junitxml has written the file, the broken test cases are rewritten as errors.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import pytest

from conformance.results import Outcome, Result
from conformance.sinks import BaseSink


def junit_name(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's junitxml derives them from a node id."""
    path, _, rest = nodeid.partition("::")
    parts = [path.replace("/", ".").removesuffix(".py"), *rest.split("::")]
    return ".".join(parts[:-1]), parts[-1]


def mark_broken_as_errors(path: Path, broken_nodeids: Iterable[str]) -> int:
    """Rewrite <failure> as <error> for the broken test cases; return how many."""
    wanted = {junit_name(nodeid) for nodeid in broken_nodeids}
    if not wanted:
        return 0
    tree = ET.parse(path)  # noqa: S314 - our own output, not untrusted input
    changed = 0
    for suite in tree.getroot().iter("testsuite"):
        moved = 0
        for case in suite.iter("testcase"):
            failure = case.find("failure")
            if failure is not None and (case.get("classname", ""), case.get("name", "")) in wanted:
                failure.tag = "error"
                moved += 1
        if moved:
            suite.set("failures", str(max(0, int(suite.get("failures", "0")) - moved)))
            suite.set("errors", str(int(suite.get("errors", "0")) + moved))
            changed += moved
    if changed:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return changed


class JUnitSink(BaseSink):
    """After junitxml has written its file: broken checks become <error>, violations stay <failure>."""

    def __init__(self, xmlpath: str | None) -> None:
        self.xmlpath = xmlpath
        self.broken_nodeids: list[str] = []

    def on_result(self, result: Result, report: pytest.TestReport) -> None:
        if result.outcome is Outcome.BROKEN:
            self.broken_nodeids.append(report.nodeid)

    def on_finish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.xmlpath and Path(self.xmlpath).is_file():
            try:
                mark_broken_as_errors(Path(self.xmlpath), self.broken_nodeids)
            except (OSError, ET.ParseError) as exc:
                self.error = f"JUnit file not rewritten: {exc}"
