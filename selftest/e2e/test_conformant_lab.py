"""The conformant lab passes; the harness reports nothing and changes nothing."""

from __future__ import annotations

import json

import pytest

from conformance.facts.gather import MAX_LANES_PER_ROUND

pytestmark = pytest.mark.lab


def test_conformant_lab_passes_with_no_errors_and_no_bulletin_entry(run_suites):
    run = run_suites("-W", "error")
    assert run.exit_code == 0, run.output
    assert not run.failed() and not run.errors(), run.output
    assert "warning" not in run.output.lower().split("conformance:")[-1], run.output
    assert "conformance:" in run.output and " 0 failed, 0 broken" in run.output
    assert run.entries() == []
    audit = (run.reports / "audit.jsonl").read_text().splitlines()
    connects = [line for line in audit if '"kind": "connect"' in line]
    execs = [line for line in audit if '"kind": "exec"' in line]
    # At most one SSH connection per host per worker, and two rounds of remote executions
    # for each (a round's slow scripts run in parallel channels of that one connection).
    per_worker_host = [(json.loads(line)["pid"], json.loads(line)["host"]) for line in connects]
    assert len(per_worker_host) == len(set(per_worker_host)), connects
    assert len(execs) <= 2 * MAX_LANES_PER_ROUND * len(connects), execs


def test_conformant_lab_passes_the_live_route_probe(run_suites):
    """--probe-routes: every handle really answers one token, from where the router config says."""
    run = run_suites("--probe-routes", "-rA")
    assert run.exit_code == 0, run.output
    assert "PASSED tests_contracts/test_contracts.py::test_live_route[mini/litellm-orch]" in run.output, run.output
    assert run.entries() == []
    without = run_suites("-rA", "-k", "live_route")
    assert "SKIPPED" in without.output and "run with --probe-routes" in without.output, without.output
