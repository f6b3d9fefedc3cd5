"""Acknowledgements, thresholds and flapping through the system database: the same events,
decided by the same ``plan_update``, land in the database and in the file written from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conformance.bulletin import events
from conformance.bulletin.store import open_problems, read_entries
from conformance.results import Outcome
from conformance.store.records import bulletin_entries
from conformance.store.session import acknowledge_session, record_session
from selftest.store.test_store import engine_for, health_result, lab_inventory, run_info

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_an_acknowledgement_in_the_database_silences_reminders_until_it_expires(db_url, tmp_path):
    inventory = lab_inventory()
    bulletin = tmp_path / "bulletin.jsonl"
    failing = health_result(inventory, "litellm-health", Outcome.VIOLATED)
    fingerprint = failing.subject.fingerprint
    assert record_session(db_url, bulletin, inventory, [failing], run_info("r1"), now=START).update.opened
    entry, where = acknowledge_session(
        db_url, bulletin, fingerprint, "litellm-orch", "upstream fix on Monday", "2d", now=START + timedelta(hours=1)
    )
    assert entry[events.ACK_UNTIL] == "2026-03-04T09:00:00Z" and where != str(bulletin)
    # the file was rewritten from the database at once: `conformance bulletin` shows it
    (problem,) = open_problems(read_entries(bulletin)).values()
    assert problem.ack is not None and problem.ack[events.ACK_REASON] == "upstream fix on Monday"
    day = record_session(db_url, bulletin, inventory, [failing], run_info("r2"), now=START + timedelta(hours=30))
    assert day.update.reminded == [] and day.update.acknowledged == 1
    later = record_session(db_url, bulletin, inventory, [failing], run_info("r3"), now=START + timedelta(hours=50))
    assert later.update.reopened == [fingerprint] and later.update.acknowledged == 0
    engine = engine_for(db_url)
    with engine.connect() as connection:
        in_database = bulletin_entries(connection, inventory.layer.name, bookkeeping=True)
    engine.dispose()
    assert read_entries(bulletin, bookkeeping=True) == in_database
    assert [e["event"] for e in in_database if e["event"] not in events.BOOKKEEPING] == [
        events.OPENED,
        events.ACKNOWLEDGED,
        events.OPENED,
    ]


def test_without_a_database_the_acknowledgement_goes_to_the_file(tmp_path, monkeypatch):
    from conformance.bulletin.store import update_bulletin

    monkeypatch.delenv("CONFORMANCE_DB", raising=False)
    inventory = lab_inventory()
    bulletin = tmp_path / "bulletin.jsonl"
    failing = health_result(inventory, "litellm-health", Outcome.VIOLATED)
    update_bulletin(bulletin, [failing], "r1", 24)
    _, where = acknowledge_session(None, bulletin, failing.subject.fingerprint, "me", "known", None)
    assert where == str(bulletin) and not (tmp_path / "conformance.db").exists()
    assert read_entries(bulletin)[-1]["event"] == events.ACKNOWLEDGED


def test_thresholds_fold_from_the_database_across_runs(db_url, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("health_checks:\n  - id: litellm-health\n    open_after_failures: 3\n", encoding="utf-8")
    from conformance.inventory.loader import load_inventory
    from selftest.conftest import INVENTORY_DIR

    inventory = load_inventory(INVENTORY_DIR / "lab.yaml", site, environ={})
    bulletin = tmp_path / "bulletin.jsonl"
    failing = health_result(inventory, "litellm-health", Outcome.VIOLATED)
    opened = []
    for number in range(1, 4):
        # each run a fresh process would make: nothing kept in memory, only the database
        update = record_session(db_url, bulletin, inventory, [failing], run_info(f"r{number}")).update
        opened.append(list(update.opened))
    assert opened == [[], [], [failing.subject.fingerprint]]
