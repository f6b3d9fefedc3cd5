"""Living with the lab as owners do: no exported secrets, `conformance run` on a drifted lab
without waiting for a health it will never reach, and a report whose history grows run by run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from selftest.conftest import PROJECT_ROOT
from selftest.e2e.conftest import generate_report

pytestmark = pytest.mark.lab

SECRET_VARIABLES = ("LITELLM_MASTER_KEY", "OPTILLM_LOCAL_API_KEY", "HF_TOKEN")


def _without_secrets(lab_env: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in lab_env.items() if key not in SECRET_VARIABLES}
    if os.environ.get("CONFORMANCE_LAB_STATE"):  # where the lab's state is, for the lab commands
        env["CONFORMANCE_LAB_STATE"] = os.environ["CONFORMANCE_LAB_STATE"]
    return env


def test_the_lab_needs_no_exported_secrets(run_suites, lab_env):
    run = run_suites("tests_health", env=_without_secrets(lab_env))
    assert run.exit_code == 0, run.output
    assert "needs the" not in run.output
    # Both local instances' /v1/models need OPTILLM_LOCAL_API_KEY; LiteLLM's need the master key.
    summary = re.search(r"conformance: (\d+) passed, (\d+) failed, (\d+) broken", run.output)
    assert summary is not None and summary.groups()[1:] == ("0", "0"), run.output
    assert int(summary.group(1)) >= 4, run.output


def test_run_against_a_drifted_lab_checks_at_once(lab_env, tmp_path):
    from lab import drift_apply, drift_reset

    reports = tmp_path / "reports"
    drift_apply("optillm-exposed")
    try:
        started = time.monotonic()
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "conformance.cli",
                "run",
                "--",
                "-q",
                "-p",
                "no:randomly",
                "-k",
                "test_port_bound",
                # name=value: before the plugin is loaded, a separate value would pass for a path
                f"--reports-dir={reports}",
                f"--bulletin={reports / 'bulletin.jsonl'}",
            ],
            cwd=PROJECT_ROOT,
            env=_without_secrets(lab_env),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        seconds = time.monotonic() - started
    finally:
        drift_reset()
    output = completed.stdout + completed.stderr
    assert "carries drifts (optillm-exposed)" in output, output
    assert completed.returncode == 1, output  # the drift's violation, found: the suites ran
    assert "0.0.0.0" in output and "4020" in output
    # Waiting for health would have cost the lab's 240 s health deadline before any check.
    assert seconds < 90, f"took {seconds:.0f} s"


def test_three_runs_make_a_report_with_a_three_run_history(run_suites, lab_env, tmp_path):
    output = tmp_path / "allure-report"
    env = {**lab_env, "CONFORMANCE_RUNNER": "lab-selftest"}
    for run_number in range(1, 4):
        run = run_suites("tests_health", env=env)
        assert run.exit_code == 0, run.output
        generated = generate_report(run.reports / "allure-results", output, env)
        assert generated.returncode == 0, generated.stdout + generated.stderr
        trend = json.loads((output / "history" / "history-trend.json").read_text())
        assert len(trend) == run_number
    assert [entry["buildOrder"] for entry in trend] == [3, 2, 1]
    assert all(entry["data"]["total"] > 0 for entry in trend)
    history = json.loads((output / "history" / "history.json").read_text())
    assert history and all(len(item["items"]) == 3 for item in history.values()), "each check's own trend: 3 runs"
    assert (output / "index.html").is_file()
