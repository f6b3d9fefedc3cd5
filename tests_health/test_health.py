"""Read-only health endpoints (GET only, with timeouts), from the LAN or inside the host."""

import pytest

from conformance import evaluate
from conformance.assertions import expect

pytestmark = pytest.mark.health


def test_health_endpoint(health_case):
    expect(health_case, evaluate.health_endpoint)
