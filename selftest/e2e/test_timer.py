"""The scheduled monitor (deploy/) installed in the lab Mini: a drift reaches the bulletin
through the timer's own service, run as the unprivileged monitor account."""

from __future__ import annotations

import json

import pytest

from conformance.bulletin.events import BOOKKEEPING

pytestmark = pytest.mark.lab

UNIT = "gateway-conformance"
BULLETIN = "/var/lib/gateway-conformance/reports/bulletin.jsonl"


def _inside(argv: list[str], timeout: float = 300) -> str:
    from lab import lab_exec

    completed = lab_exec("mini", argv, timeout=timeout)
    assert completed.returncode == 0, f"{argv}: {completed.stdout}{completed.stderr}"
    return completed.stdout


def _entries() -> list[dict]:
    from lab import lab_exec

    completed = lab_exec("mini", ["cat", BULLETIN], timeout=30)
    lines = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    return [entry for entry in lines if entry.get("event") not in BOOKKEEPING]


def _trigger() -> None:
    # What the timer does when it elapses: start the service (oneshot; waits for the run).
    _inside(["systemctl", "start", f"{UNIT}.service"])
    result = _inside(["systemctl", "show", "-p", "Result", "-p", "ExecMainStatus", f"{UNIT}.service"])
    assert "Result=success" in result, result


def test_timer_is_installed_enabled_and_runs_as_monitor(lab_env):
    assert _inside(["systemctl", "is-enabled", f"{UNIT}.timer"]).strip() == "enabled"
    assert _inside(["systemctl", "is-active", f"{UNIT}.timer"]).strip() == "active"
    assert "User=monitor" in _inside(["systemctl", "cat", f"{UNIT}.service"])


def _timer_runs(entries: list[dict]) -> list[dict]:
    # The System monitor beside the timer writes the same database and bulletin from its health
    # polls (run ids "monitor-..."): what the timer's own runs did is judged here.
    return [entry for entry in entries if not str(entry.get("run", "")).startswith("monitor-")]


def test_drift_reaches_the_bulletin_through_the_timer(lab_env):
    from lab import drift_apply, drift_reset

    _trigger()  # a conformant baseline first: whatever was open gets resolved
    before = len(_entries())
    drift_apply("optillm-exposed")
    try:
        _trigger()
    finally:
        drift_reset()
    new = _entries()[before:]
    opened = [entry for entry in _timer_runs(new) if entry["event"] == "opened"]
    assert any(
        entry["contract"] == "optillm-never-exposed" and entry["owner"] == "optillm-proxy" for entry in opened
    ), new
    _trigger()
    after = _timer_runs(_entries()[before + len(new) :])
    resolved = {entry["fingerprint"] for entry in after if entry["event"] == "resolved"}
    # Every entry the drift's run opened is resolved by the next run (it may also resolve an
    # entry the monitor opened: one outage, one entry, whoever sees it first).
    assert {entry["fingerprint"] for entry in opened} <= resolved, after
    # The monitor's reports never hold the lab's secrets either.
    dump = _inside(["cat", BULLETIN, "/var/lib/gateway-conformance/reports/audit.jsonl"])
    for name in ("LITELLM_MASTER_KEY", "OPTILLM_LOCAL_API_KEY"):
        assert lab_env[name] not in dump
