"""49 trivial tests, as many as the lab's suites: what pytest and its plugins cost on their own.

``TRIVIAL_TESTS=N`` makes N of them: benchmarks/run.py times two sizes for the cost of one
more test (the slope of the run time over the test count).
"""

from __future__ import annotations

import os

import pytest


@pytest.mark.parametrize("number", range(int(os.environ.get("TRIVIAL_TESTS", "49"))))
def test_trivial(number: int) -> None:
    assert number * number >= number
