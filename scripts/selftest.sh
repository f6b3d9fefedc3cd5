#!/usr/bin/env bash
# The harness's own tests: unit and plugin tests, then the end-to-end tests against the lab
# (brought up here when running as root on Linux), then lint and type checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" = 0 ] && [ "$(uname -s)" = Linux ]; then
    .venv/bin/conformance lab up
fi
status=0
.venv/bin/pytest selftest -p no:randomly "$@" || status=$?
if [ "$status" = 5 ]; then
    echo "selftest: pytest collected no tests: that is a failure" >&2
    exit 1
fi
.venv/bin/ruff check conformance lab selftest tests_hosts tests_contracts tests_health conftest.py benchmarks examples || status=1
.venv/bin/ruff format --check conformance lab selftest tests_hosts tests_contracts tests_health conftest.py benchmarks examples || status=1
.venv/bin/mypy || status=1
exit "$status"
