"""Every contract proven twice on the real lab: green when conformant, red with a clear
message on a realistic drift, and green again after the drift is reset."""

from __future__ import annotations

import pytest

from lab.drifts import DRIFTS

pytestmark = pytest.mark.lab

# Each drift's expected outcome lives in the drift's own record (lab/drifts.py).
PROVED = sorted(name for name, drift in DRIFTS.items() if drift.expect is not None)


def test_every_drift_but_outages_states_its_expected_outcome():
    assert set(DRIFTS) - set(PROVED) == {"studio-down"}  # proved by test_outages.py


@pytest.mark.parametrize("drift", PROVED)
def test_drift_fails_the_right_contract_then_reset_restores_it(drift, run_suites, tmp_path):
    from lab import drift_apply, drift_reset

    expect = DRIFTS[drift].expect
    assert expect is not None
    test_id, phrases, owner = expect.test, expect.phrases, expect.owner
    bulletin = tmp_path / "bulletin.jsonl"
    drift_apply(drift)
    try:
        run = run_suites(*expect.pytest_args, bulletin=bulletin)
    finally:
        drift_reset()
    assert run.exit_code == 1, run.output
    failing = [line for line in (run.failed() if expect.outcome == "violated" else run.errors()) if test_id in line]
    assert failing, f"{test_id} did not fail:\n{run.output}"
    for phrase in phrases:
        assert phrase in run.output, f"{phrase!r} missing:\n{run.output}"
    first_entries = run.entries()
    opened = [entry for entry in first_entries if entry["event"] == "opened"]
    assert opened, run.output
    # One problem, one entry: each opened entry is a distinct root cause, no duplicates, and
    # the drift opens as many as its record says (one change, one entry).
    assert len({entry["fingerprint"] for entry in opened}) == len(opened)
    assert len(opened) == expect.entries, "\n".join(f"{e['fingerprint']}: {e['summary']}" for e in opened)
    assert any(entry["owner"] == owner for entry in opened), opened
    # After the reset, a second run resolves every entry and opens nothing.
    again = run_suites(*expect.pytest_args, bulletin=bulletin)
    assert again.exit_code == 0, again.output
    events = [entry["event"] for entry in again.entries()[len(first_entries) :]]
    assert events == ["resolved"] * len(opened), events
