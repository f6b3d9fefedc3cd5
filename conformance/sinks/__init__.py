"""Where results go: every output implements one protocol, as goss's outputers do.

    on_test    in the process that ran the test (a worker under xdist): the Allure labels
               and attachments, which allure's dynamic API needs the running test for
    on_result  on the controller, once per result: collect
    on_finish  on the controller, at the end of the session: write (bulletin, JUnit, Allure
               environment), and report a failure to write as an error of the run
    summary    a fragment of the one summary line, or None

The terminal summary, the bulletin, Allure and JUnit each implement it (``SINKS``); the
controller (``sinks.controller``) dispatches pytest's hooks to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pytest

    from conformance.contracts.base import Case
    from conformance.results import Result


class Sink(Protocol):
    def on_test(self, case: Case, result: Result) -> None: ...

    def on_result(self, result: Result, report: pytest.TestReport) -> None: ...

    def on_finish(self, session: pytest.Session, exitstatus: int) -> None: ...

    def summary(self) -> str | None: ...

    @property
    def error(self) -> str | None:
        """Why this sink could not write its output (the run then fails), or None."""
        ...


class BaseSink:
    """No-op defaults, so each sink implements only the phases it uses."""

    error: str | None = None

    def on_test(self, case: Case, result: Result) -> None:
        return None

    def on_result(self, result: Result, report: pytest.TestReport) -> None:
        return None

    def on_finish(self, session: pytest.Session, exitstatus: int) -> None:
        return None

    def summary(self) -> str | None:
        return None
