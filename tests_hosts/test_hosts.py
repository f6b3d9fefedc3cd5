"""Host contracts, run inside each host over one SSH connection (facts gathered once per host).

One test per contract of the registry's "hosts" suite (conformance/contracts/), named
test_<contract id>, parametrized over its scope; each contract's statement and rule are in
this folder's README.md and in the test's docstring.
"""

import pytest

from conformance.contracts import suite_tests

pytestmark = pytest.mark.hosts
globals().update(suite_tests("hosts"))
