"""Outages: one cause, one bulletin entry; the rest of the layer is still checked."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab


def test_studio_down_is_one_cause_and_the_mini_is_unaffected(run_suites, tmp_path):
    from lab import drift_apply, drift_reset

    baseline = run_suites(bulletin=tmp_path / "baseline.jsonl")
    assert baseline.exit_code == 0, baseline.output
    drift_apply("studio-down")
    try:
        run = run_suites(bulletin=tmp_path / "bulletin.jsonl")
    finally:
        drift_reset()
    assert run.exit_code == 1
    errors = run.errors()
    assert errors and all("studio" in line or "optillm-local" in line or "showroom" in line for line in errors), errors
    assert not [line for line in run.failed()], run.output  # could not check is not a violation
    assert "studio could not be checked" in run.output
    mini_passed = (
        "test_port_bound[mini/litellm-orch:4000] PASSED" in run.output
        or "mini/litellm-orch:4000" not in "\n".join(errors)
    )
    assert mini_passed
    opened = [entry for entry in run.entries() if entry["event"] == "opened"]
    assert [entry["fingerprint"] for entry in opened] == ["gateway/host-identity/studio/-"], opened
    assert len(opened[0]["blocked"]) >= 5
    # One connect timeout at most on top of the normal run (5 s in the inventory).
    assert run.seconds <= baseline.seconds + 5 + 2, (run.seconds, baseline.seconds)


def test_litellm_stopped_is_one_entry_for_its_unit(run_suites, tmp_path):
    from lab import drift_apply, drift_reset

    drift_apply("litellm-stopped")
    try:
        run = run_suites(bulletin=tmp_path / "bulletin.jsonl")
    finally:
        drift_reset()
    opened = [entry for entry in run.entries() if entry["event"] == "opened"]
    assert [entry["fingerprint"] for entry in opened] == [
        "gateway/unit-active/mini/litellm-orch/litellm-orch.service"
    ], [e["summary"] for e in opened]
    assert opened[0]["owner"] == "litellm-orch"
    assert len(opened[0]["blocked"]) >= 3
