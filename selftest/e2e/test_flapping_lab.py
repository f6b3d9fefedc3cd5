"""A real drift toggled across consecutive runs sharing one bulletin: one flapping entry,
not an opened/resolved pair per run, then one resolved entry once the check settles.

The fold itself is proven on canned records in selftest/unit/test_flapping.py; this runs it
on the lab. The window and thresholds are made small through a site file (the inventory's
``bulletin`` keys) so that a few runs cross them; each run is only the one check's cases.
"""

from __future__ import annotations

import pytest

from selftest.e2e.conftest import SuiteRun

pytestmark = pytest.mark.lab

DRIFT = "requirements-unpinned"  # a one-line file edit on the Studio, reverted by restoring the file
CHECK = ("--conformance-host=studio", "-k", "transformers_pin")
FINGERPRINT_PART = "transformers-pin"
# failing? run by run: three changes bring the check to flapping, two more changes while it
# flaps add nothing, then passing runs until the changes leave the window.
SEQUENCE = (True, False, True, False, True, False, False, False, False)
SITE = "bulletin:\n  flap_window: 5\n  flap_low_percent: 20\n  flap_high_percent: 50\n"


def test_a_flapping_drift_gets_one_entry_then_one_resolved(run_suites, tmp_path):
    from lab import drift_apply, drift_reset

    site = tmp_path / "flap-site.yaml"
    site.write_text(SITE, encoding="utf-8")
    bulletin = tmp_path / "bulletin.jsonl"
    per_run: list[list[str]] = []
    runs: list[SuiteRun] = []
    seen = 0
    try:
        for failing in SEQUENCE:
            if failing:
                drift_apply(DRIFT)
            else:
                drift_reset()
            run = run_suites(f"--site={site}", *CHECK, bulletin=bulletin)
            runs.append(run)
            entries = [entry for entry in run.entries() if FINGERPRINT_PART in entry["fingerprint"]]
            per_run.append([entry["event"] for entry in entries[seen:]])
            seen = len(entries)
    finally:
        drift_reset()
    # The drift really toggled: each run's verdict follows it.
    assert [run.exit_code for run in runs] == [1 if failing else 0 for failing in SEQUENCE], [
        run.output for run in runs
    ]
    assert [line for line in runs[0].failed() if "test_transformers_pin[studio/optillm-local]" in line], runs[0].output
    events = [event for run_events in per_run for event in run_events]
    assert events.count("flapping") == 1, per_run
    start = next(index for index, run_events in enumerate(per_run) if "flapping" in run_events)
    # Before it: at most the first opened/resolved pair it took to recognise the flapping.
    assert events[: events.index("flapping")] == ["opened", "resolved"], per_run
    # While it flaps the check still changes state run after run, yet nothing is written ...
    assert SEQUENCE[start + 1] != SEQUENCE[start + 2]
    settled = next(index for index in range(start + 1, len(per_run)) if per_run[index])
    assert all(per_run[index] == [] for index in range(start + 1, settled)), per_run
    assert settled - start >= 3, per_run
    # ... until it settles: one resolved entry, and nothing after it.
    assert per_run[settled] == ["resolved"], per_run
    assert all(run_events == [] for run_events in per_run[settled + 1 :]), per_run
    last = [entry for entry in runs[settled].entries() if FINGERPRINT_PART in entry["fingerprint"]][-1]
    assert "settled" in last["summary"] and "flapping" in last["summary"], last
