"""The seed's contracts, checked from the LAN and from inside the hosts.

One test per contract of the registry's "contracts" suite (conformance/contracts/), named
test_<contract id> and parametrized over the inventory's contract records; each contract's
statement and rule are in this folder's README.md and in the test's docstring.
"""

import pytest

from conformance.contracts import suite_tests

pytestmark = pytest.mark.contracts
globals().update(suite_tests("contracts"))
