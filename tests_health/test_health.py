"""Read-only health endpoints (GET only, with timeouts), from the LAN or from inside the host.

One test per contract of the registry's "health" suite (conformance/contracts/); its
statement and rule are in this folder's README.md and in the test's docstring.
"""

import pytest

from conformance.contracts import suite_tests

pytestmark = pytest.mark.health
globals().update(suite_tests("health"))
