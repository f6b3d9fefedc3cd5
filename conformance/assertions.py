"""Turning a Result into the pytest outcome it stands for.

violated -> a failed test (an AssertionError, so Allure calls it "failed");
broken   -> an error (CheckBroken; the plugin reports it as ERROR, Allure as "broken");
skipped  -> a skipped test with the reason; passed -> nothing.
The Result is kept on the case so the plugin can hand it to the report sinks.
"""

from __future__ import annotations

import pytest

from conformance.cases import Case
from conformance.evaluate import Evaluator, run
from conformance.report.allure_labels import annotate
from conformance.results import Outcome, Result


class ContractViolation(AssertionError):
    """The contract is violated; the message is the owner-readable rendering."""


class CheckBroken(Exception):
    """The contract could not be checked; the message names the cause."""


RESULT_ATTRIBUTE = "_conformance_result"


def expect(case: Case, evaluator: Evaluator, *, needs_running: bool = False) -> Result:
    """Evaluate ``case`` with ``evaluator`` and raise the matching pytest outcome."""
    __tracebackhide__ = True
    result = run(case, evaluator, needs_running=needs_running)
    setattr(case, RESULT_ATTRIBUTE, result)
    annotate(case, result)
    if result.outcome is Outcome.SKIPPED:
        pytest.skip(result.summary)
    if result.outcome is Outcome.VIOLATED:
        raise ContractViolation(result.render())
    if result.outcome is Outcome.BROKEN:
        raise CheckBroken(result.render())
    return result
