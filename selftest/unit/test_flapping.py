"""Thresholds and flap detection, with the history folded from the bulletin itself: an entry
opens only after N failing runs in a row, and a check that keeps changing state gets one
flapping entry, then one resolved entry when it settles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conformance.bulletin import events
from conformance.bulletin.flapping import FlapPolicy, percent_state_change, policy_from_inventory
from conformance.bulletin.store import BulletinUpdate, open_problems, read_entries, update_bulletin
from conformance.errors import InventoryError
from conformance.inventory.loader import load_inventory
from conformance.results import Outcome, Result, Subject
from selftest.conftest import INVENTORY_DIR

HEALTH = Subject(
    check="health", host="mini", service="litellm-orch", port=4000, item="litellm-readiness", layer="gateway"
)
FP = HEALTH.fingerprint


class Runs:
    """Consecutive runs against one bulletin file, ten minutes apart on a fake clock."""

    def __init__(self, path: Path, policy: FlapPolicy) -> None:
        self.path = path
        self.policy = policy
        self.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
        self.count = 0

    def run(self, failing: bool) -> BulletinUpdate:
        self.count += 1
        self.now += timedelta(minutes=10)
        outcome = Outcome.VIOLATED if failing else Outcome.PASSED
        result = Result(outcome, "/health/readiness on port 4000 is unhealthy" if failing else "ok", subject=HEALTH)
        return update_bulletin(self.path, [result], f"r{self.count}", 24, clock=lambda: self.now, policy=self.policy)

    def events(self) -> list[str]:
        return [entry["event"] for entry in read_entries(self.path)]


def test_nagios_weighting_counts_recent_changes_more() -> None:
    # base/flapping.c: the change into state x (1..20) weighs (x-1)*(1.25-0.75)/19 + 0.75,
    # the sum times 100 over 20
    assert percent_state_change([False] * 21) == 0.0
    assert percent_state_change([True] + [False] * 20) == pytest.approx(0.75 * 100 / 20)
    assert percent_state_change([False] * 20 + [True]) == pytest.approx(1.25 * 100 / 20)
    alternating = [i % 2 == 0 for i in range(21)]
    assert percent_state_change(alternating) == pytest.approx(100.0)
    # a short history reads as if its first state had held before it (Nagios fills the
    # history with the state it starts from)
    assert percent_state_change([False, True]) == percent_state_change([False] * 20 + [True])


def test_an_entry_opens_only_after_n_failing_runs_in_a_row(tmp_path: Path) -> None:
    runs = Runs(tmp_path / "bulletin.jsonl", FlapPolicy(per_check={"litellm-readiness": 3}, high_percent=90))
    assert runs.run(True).pending == [FP]
    assert runs.run(False).opened == []  # one timeout was noise
    assert runs.run(True).pending == [FP]
    assert runs.run(True).pending == [FP]
    assert runs.run(True).opened == [FP]  # the third failing run in a row
    assert runs.events() == [events.OPENED]
    # the history is kept in the same file, as bookkeeping the escalation readers skip
    kinds = {entry["event"] for entry in read_entries(runs.path, bookkeeping=True)}
    assert kinds == {events.OPENED, events.STATE, events.RUN}


def test_a_flapping_check_gets_one_entry_then_resolves_when_it_settles(tmp_path: Path) -> None:
    runs = Runs(tmp_path / "bulletin.jsonl", FlapPolicy())
    updates = [runs.run(failing=number % 2 == 0) for number in range(12)]
    flapped = [index for index, update in enumerate(updates) if update.flapping]
    assert len(flapped) == 1
    start = flapped[0]
    # from the flapping entry on: no opened/resolved pairs, although it kept changing
    assert all(not u.opened and not u.resolved for u in updates[start + 1 :])
    (problem,) = open_problems(read_entries(runs.path)).values()
    assert problem.flapping and "flapping (" in problem.opened["summary"]
    before = runs.events()[: runs.events().index(events.FLAPPING)]
    assert before.count(events.OPENED) <= 3  # it took a few changes to be recognised
    # it settles: passing run after run until the changes leave the window
    settled = [runs.run(False) for _ in range(25)]
    resolved = [index for index, update in enumerate(settled) if update.resolved]
    assert len(resolved) == 1
    last = read_entries(runs.path)[-1]
    assert last["event"] == events.RESOLVED and "settled" in last["summary"]
    assert last[events.PERCENT_STATE_CHANGE] <= FlapPolicy().low_percent
    assert open_problems(read_entries(runs.path)) == {}


def test_a_steady_failure_is_not_flapping(tmp_path: Path) -> None:
    runs = Runs(tmp_path / "bulletin.jsonl", FlapPolicy())
    updates = [runs.run(True) for _ in range(30)]
    assert not any(update.flapping for update in updates)
    assert runs.events() == [events.OPENED]


def test_thresholds_come_from_the_inventory_with_per_check_overrides(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "bulletin:\n  open_after_failures: 2\n  flap_window: 11\n"
        "health_checks:\n  - id: litellm-readiness\n    open_after_failures: 4\n",
        encoding="utf-8",
    )
    policy = policy_from_inventory(load_inventory(INVENTORY_DIR / "gateway.yaml", site, environ={}))
    assert policy.open_after(HEALTH) == 4 and policy.window == 11
    assert (policy.low_percent, policy.high_percent) == (20.0, 30.0)  # Nagios's compiled defaults
    other = Subject(check="port-bound", host="mini", service="litellm-orch", port=4000, layer="gateway")
    assert policy.open_after(other) == 2
    site.write_text("bulletin:\n  flap_low_percent: 30\n  flap_high_percent: 20\n", encoding="utf-8")
    with pytest.raises(InventoryError, match="flap_low_percent must be below"):
        load_inventory(INVENTORY_DIR / "gateway.yaml", site, environ={})
