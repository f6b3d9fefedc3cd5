"""49 trivial tests, as many as the lab's suites: what pytest and its plugins cost on their own."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("number", range(49))
def test_trivial(number: int) -> None:
    assert number * number >= number
