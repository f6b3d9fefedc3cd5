"""Whole runs (pytest with the harness's plugin) writing the system database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import select
from sqlalchemy.engine import make_url

from conformance.bulletin.store import read_entries
from conformance.store import schema
from conformance.store.db import make_engine
from conformance.store.records import bulletin_entries
from selftest.conftest import unreachable_site

UNREACHABLE_HOSTS = ["gateway/host-identity/mini/-", "gateway/host-identity/studio/-"]


def test_a_database_that_is_down_fails_the_run_and_the_bulletin_is_still_written(harness_project, tmp_path):
    site = unreachable_site(tmp_path)
    bulletin = tmp_path / "bulletin.jsonl"
    result = harness_project.runpytest_subprocess(
        "-q",
        f"--site={site}",
        "--conformance-host=mini",
        "-m",
        "hosts",
        f"--bulletin={bulletin}",
        "--db=postgresql://monitor:hunter2-secret@127.0.0.1:1/conformance",
    )
    output = result.stdout.str()
    assert result.ret == 3, output
    assert "system database NOT written" in output and "127.0.0.1:1" in output
    assert "hunter2-secret" not in output
    assert [entry["fingerprint"] for entry in read_entries(bulletin)] == ["gateway/host-identity/mini/-"]


def test_the_default_sqlite_database_lives_beside_the_bulletin(harness_project, tmp_path, monkeypatch):
    monkeypatch.delenv("CONFORMANCE_DB", raising=False)
    site = unreachable_site(tmp_path)
    bulletin = tmp_path / "bulletin.jsonl"
    result = harness_project.runpytest_subprocess(
        "-q", f"--site={site}", "--conformance-host=mini", "-m", "hosts", f"--bulletin={bulletin}"
    )
    assert result.ret == 1, result.stdout.str()  # broken checks: errors, so pytest exits 1
    assert "and sqlite+pysqlite:///" in result.stdout.str()
    engine = make_engine(make_url(f"sqlite+pysqlite:///{tmp_path / 'conformance.db'}"))
    with engine.connect() as connection:
        assert bulletin_entries(connection) == read_entries(bulletin)
        assert len(connection.execute(select(schema.runs)).all()) == 1
    engine.dispose()


def test_the_timer_and_ci_share_one_postgresql_bulletin(harness_project, tmp_path, postgres_url):
    """Two runners (own machines: own reports and bulletin files) at the same moment, one database."""
    site = unreachable_site(tmp_path)
    runs = []
    for runner in ("mini-timer", "ci"):
        reports = tmp_path / runner
        command = [
            sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:randomly",
            f"--site={site}", f"--reports-dir={reports}", f"--bulletin={reports / 'bulletin.jsonl'}",
            f"--db={postgres_url}", "-m", "hosts or contracts",
        ]  # fmt: skip
        env = {**os.environ, "CONFORMANCE_RUNNER": runner}
        runs.append(
            subprocess.Popen(
                command, cwd=harness_project.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert all(run.returncode in (0, 1) for run in runs), outputs
    engine = make_engine(make_url(postgres_url))
    with engine.connect() as connection:
        entries = bulletin_entries(connection)
        runners = sorted(row.runner for row in connection.execute(select(schema.runs)))
    engine.dispose()
    assert sorted(entry["fingerprint"] for entry in entries if entry["event"] == "opened") == UNREACHABLE_HOSTS
    assert runners == ["ci", "mini-timer"]
    for runner in ("mini-timer", "ci"):
        assert read_entries(tmp_path / runner / "bulletin.jsonl") == entries, json.dumps(entries)


def test_runs_older_than_the_retention_go_with_their_results_and_run_events(db_url, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select

    from conformance.bulletin import events
    from conformance.results import Outcome
    from conformance.store import schema
    from conformance.store.records import RunInfo, bulletin_entries, record_run
    from selftest.store.test_store import engine_for, health_result, lab_inventory

    monkeypatch.setenv("CONFORMANCE_RETENTION_DAYS", "2")
    inventory = lab_inventory()
    engine = engine_for(db_url)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    failing = health_result(inventory, "litellm-readiness", Outcome.VIOLATED)
    for day in range(5):
        with monkeypatch.context() as patch:
            patch.setattr("conformance.store.records._now", lambda day=day: start + timedelta(days=day))
            record_run(
                engine, inventory, [failing], RunInfo(f"r{day}", "t", "0", False), now=start + timedelta(days=day)
            )
    with engine.connect() as connection:
        runs = sorted(row.id for row in connection.execute(select(schema.runs.c.id)))
        results = connection.execute(select(func.count()).select_from(schema.results)).scalar_one()
        history = bulletin_entries(connection, inventory.layer.name, bookkeeping=True)
    assert runs == ["r2", "r3", "r4"] and results == 3
    assert sorted(e["run"] for e in history if e["event"] == events.RUN) == ["r2", "r3", "r4"]
    assert [e["event"] for e in history if e["event"] == events.OPENED] == [events.OPENED], "escalations stay"
    engine.dispose()
