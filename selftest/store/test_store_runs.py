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
