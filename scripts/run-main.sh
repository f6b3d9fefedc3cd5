#!/usr/bin/env bash
# The main job: set up, then run the three conformance suites with `pytest -n auto`.
# With a site given (CONFORMANCE_SITE, CONFORMANCE_INVENTORY or CONFORMANCE_HOST_* variables)
# it checks those hosts; otherwise it brings up the lab and checks the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/conformance run "$@"
