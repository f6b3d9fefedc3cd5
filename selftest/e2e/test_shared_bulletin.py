"""One problem, one entry, across runners: the Mini's timer and the CI runner at the same
moment, against the lab with a drift applied, sharing one database."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from conformance.bulletin.store import read_entries
from conformance.store import schema
from conformance.store.db import make_engine
from conformance.store.records import bulletin_entries
from selftest.conftest import PROJECT_ROOT
from selftest.e2e.conftest import LAB_INVENTORY
from selftest.store.pgcluster import ThrowawayCluster, postgres_bin

pytestmark = pytest.mark.lab

# How each runner starts the suites: deploy/gateway-conformance.service and the workflow.
RUNNERS = {
    "mini-timer": ["-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider"],
    "ci": ["-m", "pytest", "-n", "auto"],
}
# One change (the proxy rebound to 0.0.0.0) breaks three contracts through one listener: one
# incident, led by the most severe contract, listing every contract it breaks.
EXPOSED = "gateway/optillm-never-exposed/mini/optillm-proxy/4020"
EXPOSED_CONTRACTS = {"optillm-never-exposed", "port-bound", "clients-call-litellm-only"}


@pytest.fixture(params=["postgresql", "sqlite"])
def shared_database(request, tmp_path):
    """(URL the runners get, extra environment, URL to read with)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        yield url, {}, url
        return
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup.sh installs it)")
    cluster = ThrowawayCluster(bindir).start()
    try:
        # The password reaches the runners the way the timer and CI pass it: as a secret.
        yield cluster.url(password=False), {"CONFORMANCE_DB_PASSWORD": cluster.password}, cluster.url()
    finally:
        cluster.stop()


def test_timer_and_ci_open_a_drift_once(lab_env, shared_database, tmp_path):
    from lab import drift_apply, drift_reset

    runner_url, extra, read_url = shared_database
    drift_apply("optillm-exposed")
    try:
        processes = {}
        for runner, args in RUNNERS.items():
            reports = tmp_path / runner
            env = {
                **lab_env,
                **extra,
                "CONFORMANCE_INVENTORY": str(LAB_INVENTORY),
                "CONFORMANCE_DB": runner_url,
                "CONFORMANCE_RUNNER": runner,
                "CONFORMANCE_REPORTS": str(reports),
                "CONFORMANCE_BULLETIN": str(reports / "bulletin.jsonl"),
            }
            processes[runner] = subprocess.Popen(
                [sys.executable, *args],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        outputs = {runner: process.communicate(timeout=600)[0] for runner, process in processes.items()}
    finally:
        drift_reset()
    codes = {runner: process.returncode for runner, process in processes.items()}
    assert set(codes.values()) == {1}, (codes, {runner: output[-3000:] for runner, output in outputs.items()})
    engine = make_engine(make_url(read_url))
    with engine.connect() as connection:
        entries = bulletin_entries(connection)
        runners = {row.id: row.runner for row in connection.execute(select(schema.runs))}
    engine.dispose()
    opened = [entry for entry in entries if entry["event"] == "opened"]
    assert [entry["fingerprint"] for entry in opened] == [EXPOSED], entries
    assert set(opened[0]["contracts"]) == EXPOSED_CONTRACTS, opened
    assert sorted(runners.values()) == ["ci", "mini-timer"]
    assert len({runners[entry["run"]] for entry in opened}) == 1, "whichever runner committed first opened them all"
    for runner in RUNNERS:
        assert read_entries(tmp_path / runner / "bulletin.jsonl") == entries
    password = make_url(read_url).password
    assert not password or not any(password in output for output in outputs.values())
