"""The system database against real SQLite and a real PostgreSQL server."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from conformance.bulletin.store import open_problems, read_entries, update_bulletin
from conformance.inventory.loader import load_inventory
from conformance.inventory.model import Inventory, Secret
from conformance.results import Outcome, Result, Subject
from conformance.store import schema
from conformance.store.db import (
    HEAD_REVISION,
    current_revision,
    database_url,
    describe,
    head_revision,
    make_engine,
    upgrade,
    with_password,
)
from conformance.store.records import RunInfo, bulletin_entries, record_run
from conformance.store.session import pending_path, record_session
from selftest.conftest import INVENTORY_DIR


def lab_inventory() -> Inventory:
    return load_inventory(INVENTORY_DIR / "lab.yaml")


def health_subject(inventory: Inventory, check_id: str) -> Subject:
    check = next(record for record in inventory.health_checks if record.id == check_id)
    service = inventory.service(check.service)
    return Subject(
        check="health-endpoint",  # the health contract's id, as the suites' results carry it
        host=service.host,
        service=service.name,
        port=check.port,
        item=check.id,
        owner=inventory.owner_of(service),
        layer=inventory.layer.name,
    )


def health_result(inventory: Inventory, check_id: str, outcome: Outcome, latency: float = 12.5) -> Result:
    return Result(
        outcome, f"{check_id} is {outcome.value}", subject=health_subject(inventory, check_id), latency_ms=latency
    )


def run_info(run_id: str, complete: bool = False) -> RunInfo:
    return RunInfo(run_id, "test-runner", "0.1.0", complete)


def engine_for(url: str, exclusive: bool = True):
    engine = make_engine(make_url(url), exclusive=exclusive)
    upgrade(engine)
    return engine


def test_migrations_create_exactly_the_declared_tables(db_url):
    engine = make_engine(make_url(db_url))
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision() == current_revision(engine)
    upgrade(engine)  # a second upgrade is a no-op
    # Runs compare the database with HEAD_REVISION before loading Alembic: it must be the head.
    assert head_revision() == HEAD_REVISION
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), schema.metadata)
    assert differences == []
    assert set(schema.metadata.tables) == {
        "services",
        "ports",
        "health_checks",
        "bulletin",
        "dependencies",
        "owners",
        "runs",
        "results",
    }
    engine.dispose()


def test_sqlite_default_is_a_wal_file_beside_the_bulletin(tmp_path, monkeypatch):
    monkeypatch.delenv("CONFORMANCE_DB", raising=False)
    url = database_url(None, tmp_path / "reports" / "bulletin.jsonl")
    assert url.database == str(tmp_path / "reports" / "conformance.db")
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_a_run_records_inventory_results_and_health_status(db_url, tmp_path):
    inventory = lab_inventory()
    engine = engine_for(db_url)
    failing = health_result(inventory, "litellm-health", Outcome.VIOLATED, latency=40.0)
    record_run(
        engine, inventory, [failing, health_result(inventory, "litellm-readiness", Outcome.PASSED)], run_info("r1")
    )
    with engine.connect() as connection:
        services = connection.execute(select(schema.services.c.name, schema.services.c.owner)).all()
        assert sorted(name for name, _ in services) == sorted(service.name for service in inventory.services)
        ports = {(row.host, row.port): row for row in connection.execute(select(schema.ports))}
        port_4020 = ports[("mini", 4020)]
        assert (port_4020.bind, port_4020.exposure) == ("127.0.0.1", "local")
        assert connection.execute(select(func.count()).select_from(schema.dependencies)).scalar_one() == len(
            inventory.dependencies
        )
        assert connection.execute(select(func.count()).select_from(schema.owners)).scalar_one() == len(inventory.owners)
        health = connection.execute(
            select(schema.health_checks).where(schema.health_checks.c.id == "litellm-health")
        ).one()
        assert health.url == "http://198.51.100.10:4000/health"
        assert (health.last_status, health.latency_ms, health.last_run) == ("violated", 40.0, "r1")
        first_change, first_check = health.last_changed, health.last_checked
        run = connection.execute(select(schema.runs)).one()
        assert (run.id, run.runner, run.violated, run.passed) == ("r1", "test-runner", 1, 1)
        assert connection.execute(select(func.count()).select_from(schema.results)).scalar_one() == 2
    time.sleep(0.05)
    record_run(engine, inventory, [health_result(inventory, "litellm-health", Outcome.VIOLATED)], run_info("r2"))
    time.sleep(0.05)
    with engine.connect() as connection:
        health = connection.execute(
            select(schema.health_checks).where(schema.health_checks.c.id == "litellm-health")
        ).one()
        assert health.last_changed == first_change, "the same status again does not move 'since when'"
        assert health.last_checked > first_check and health.last_run == "r2"
    record_run(engine, inventory, [health_result(inventory, "litellm-health", Outcome.PASSED)], run_info("r3"))
    with engine.connect() as connection:
        health = connection.execute(
            select(schema.health_checks).where(schema.health_checks.c.id == "litellm-health")
        ).one()
        assert health.last_status == "passed" and health.last_changed > first_change
    # An inventory that no longer lists a service: its row goes with it.
    smaller = inventory.model_copy(update={"dependencies": ()})
    record_run(engine, smaller, [], run_info("r4"))
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(schema.dependencies)).scalar_one() == 0
    engine.dispose()


def test_the_bulletin_file_is_written_from_the_database(db_url, tmp_path):
    inventory = lab_inventory()
    bulletin = tmp_path / "bulletin.jsonl"
    failing = health_result(inventory, "litellm-health", Outcome.VIOLATED)
    first = record_session(db_url, bulletin, inventory, [failing], run_info("r1"))
    assert first.error is None and first.update.opened == [failing.subject.fingerprint]
    again = record_session(db_url, bulletin, inventory, [failing], run_info("r2"))
    assert again.update.opened == [] and again.update.still_open == 1
    fixed = record_session(
        db_url, bulletin, inventory, [health_result(inventory, "litellm-health", Outcome.PASSED)], run_info("r3")
    )
    assert fixed.update.resolved == [failing.subject.fingerprint] and fixed.update.still_open == 0
    engine = engine_for(db_url)
    with engine.connect() as connection:
        in_database = bulletin_entries(connection, inventory.layer.name)
    engine.dispose()
    assert [entry["event"] for entry in in_database] == ["opened", "resolved"]
    assert read_entries(bulletin) == in_database
    assert password_free(db_url, first.database)


def password_free(url: str, shown: str) -> bool:
    password = make_url(url).password
    return not password or password not in shown


def test_importing_an_old_bulletin_keeps_open_entries_open_with_history(db_url, tmp_path):
    from conformance.cli import main as cli_main

    inventory = lab_inventory()
    old = tmp_path / "old.jsonl"
    health = health_result(inventory, "litellm-health", Outcome.VIOLATED)
    readiness = health_result(inventory, "litellm-readiness", Outcome.VIOLATED)
    update_bulletin(old, [health, readiness], "old-1", 24)
    update_bulletin(old, [health, health_result(inventory, "litellm-readiness", Outcome.PASSED)], "old-2", 24)
    history = read_entries(old)
    assert cli_main(["db", "import-bulletin", str(old), "--db", db_url]) == 0
    engine = engine_for(db_url)
    with engine.connect() as connection:
        imported = bulletin_entries(connection)
    assert imported == history
    assert set(open_problems(imported)) == {health.subject.fingerprint}
    # The next run finds the imported entry open: it is not opened a second time.
    update = record_run(engine, inventory, [health], run_info("new-1"))
    assert update.opened == [] and update.still_open == 1
    engine.dispose()
    assert cli_main(["db", "import-bulletin", str(old), "--db", db_url]) == 1, "only into an empty database"


def test_first_run_on_an_empty_database_carries_the_existing_file(db_url, tmp_path):
    inventory = lab_inventory()
    bulletin = tmp_path / "bulletin.jsonl"
    health = health_result(inventory, "litellm-health", Outcome.VIOLATED)
    update_bulletin(bulletin, [health], "file-only-1", 24)
    before = read_entries(bulletin)
    outcome = record_session(db_url, bulletin, inventory, [health], run_info("db-1"))
    assert outcome.error is None and outcome.update.opened == []
    assert read_entries(bulletin) == before, "the history is kept and nothing is opened twice"


# --- one problem, one entry, across runners ---------------------------------------------


def _fold_racer(url: str, exclusive: bool, barrier, results, index: int) -> None:
    """One runner's critical section: read the open problems, decide, append."""
    from conformance.store.db import lock_bulletin
    from conformance.store.records import fold_bulletin
    from conformance.store.session import failure_text

    inventory = lab_inventory()
    failure = health_result(inventory, "litellm-health", Outcome.VIOLATED)
    engine = make_engine(make_url(url), exclusive=exclusive)
    barrier.wait(timeout=60)
    try:
        with engine.begin() as connection:
            if exclusive:
                lock_bulletin(connection)
            # The window between deciding and appending, widened so both runners are in it.
            update = fold_bulletin(
                connection, "gateway", [failure], run_info(f"runner-{index}"), 24, lambda: time.sleep(1)
            )
        results[index] = json.dumps({"opened": update.opened})
    except SQLAlchemyError as exc:
        results[index] = json.dumps({"error": failure_text(exc)})
    finally:
        engine.dispose()


def race(url: str, exclusive: bool) -> tuple[list[dict], list[dict]]:
    engine_for(url).dispose()  # the schema exists before the race
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    with context.Manager() as manager:
        results = manager.dict()
        racers = [context.Process(target=_fold_racer, args=(url, exclusive, barrier, results, i)) for i in range(2)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=120)
        outcomes = [json.loads(results[i]) for i in range(2)]
    engine = make_engine(make_url(url))
    with engine.connect() as connection:
        entries = bulletin_entries(connection)
    engine.dispose()
    return outcomes, entries


def test_two_runners_at_the_same_moment_open_one_entry(db_url):
    outcomes, entries = race(db_url, exclusive=True)
    assert all("error" not in outcome for outcome in outcomes), outcomes
    assert sorted(len(outcome["opened"]) for outcome in outcomes) == [0, 1], "one opened it, the other saw it open"
    assert [entry["event"] for entry in entries] == ["opened"]


def test_without_the_lock_postgresql_opens_the_problem_twice(postgres_url):
    outcomes, entries = race(postgres_url, exclusive=False)
    assert [len(outcome.get("opened", [])) for outcome in outcomes] == [1, 1]
    assert [entry["event"] for entry in entries] == ["opened", "opened"]


def test_without_begin_immediate_sqlite_refuses_one_runner(sqlite_url):
    outcomes, entries = race(sqlite_url, exclusive=False)
    errors = [outcome["error"] for outcome in outcomes if "error" in outcome]
    assert len(errors) == 1 and "locked" in errors[0], outcomes
    assert [entry["event"] for entry in entries] == ["opened"]


# --- credentials, and a database that is down or refuses the write -------------------


def test_password_comes_from_the_inventory_secret_and_is_never_shown(postgres_cluster, tmp_path):
    url = database_url(postgres_cluster.url(password=False), tmp_path / "bulletin.jsonl")
    assert url.password is None and url.drivername == "postgresql+psycopg"
    secret = Secret(name="system-db", env="CONFORMANCE_DB_PASSWORD")
    filled = with_password(url, [secret], {"CONFORMANCE_DB_PASSWORD": postgres_cluster.password})
    assert filled.password == postgres_cluster.password
    assert postgres_cluster.password not in describe(filled) and "***" in describe(filled)
    engine = make_engine(filled)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()
    from conformance.redact import redact

    assert postgres_cluster.password not in redact(f"dsn {filled.render_as_string(hide_password=False)}")


def test_a_database_that_is_down_is_reported_and_the_file_still_written(tmp_path):
    inventory = lab_inventory()
    bulletin = tmp_path / "bulletin.jsonl"
    down = "postgresql://monitor:hunter2-secret@127.0.0.1:1/conformance"
    failing = health_result(inventory, "litellm-health", Outcome.VIOLATED)
    outcome = record_session(down, bulletin, inventory, [failing], run_info("r1"))
    assert outcome.error is not None and "127.0.0.1:1" in outcome.error
    assert "hunter2-secret" not in outcome.error and "hunter2-secret" not in outcome.database
    assert [entry["event"] for entry in read_entries(bulletin)] == ["opened"]
    assert read_entries(pending_path(bulletin)) == read_entries(bulletin)


def test_a_refused_write_loses_nothing_and_is_carried_later(postgres_cluster, postgres_url, tmp_path):
    inventory = lab_inventory()
    bulletin = tmp_path / "bulletin.jsonl"
    health = health_result(inventory, "litellm-health", Outcome.VIOLATED)
    readiness = health_result(inventory, "litellm-readiness", Outcome.VIOLATED)
    assert record_session(postgres_url, bulletin, inventory, [health], run_info("r1")).error is None
    database = make_url(postgres_url).database
    admin = make_engine(make_url(postgres_cluster.url()))
    with admin.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        )
    refused = record_session(postgres_url, bulletin, inventory, [health, readiness], run_info("r2"))
    assert refused.error is not None and "read-only" in refused.error, refused.error
    assert refused.update.opened == [readiness.subject.fingerprint], "the file still records the new problem"
    engine = make_engine(make_url(postgres_url))
    with engine.connect() as connection:
        assert [row.id for row in connection.execute(select(schema.runs))] == ["r1"], "r1 is kept, r2 not half-written"
        assert [entry["event"] for entry in bulletin_entries(connection)] == ["opened"]
    with admin.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = off')
        )
    admin.dispose()
    recovered = record_session(postgres_url, bulletin, inventory, [health, readiness], run_info("r3"))
    assert recovered.error is None and recovered.update.opened == [], "the pending entry was carried, not reopened"
    with engine.connect() as connection:
        in_database = bulletin_entries(connection)
    engine.dispose()
    assert sorted(entry["fingerprint"] for entry in in_database) == sorted(
        [health.subject.fingerprint, readiness.subject.fingerprint]
    )
    assert read_entries(bulletin) == in_database and not pending_path(bulletin).exists()


def test_status_and_bulletin_commands_read_the_database(db_url, tmp_path, capsys, monkeypatch):
    from conformance.cli import main as cli_main

    monkeypatch.delenv("CONFORMANCE_DB", raising=False)
    inventory = lab_inventory()
    bulletin = tmp_path / "bulletin.jsonl"
    failing = health_result(inventory, "litellm-health", Outcome.VIOLATED, latency=33.0)
    record_session(db_url, bulletin, inventory, [failing], run_info("r1"))
    record_session(db_url, bulletin, inventory, [failing], run_info("r2", complete=False))
    assert cli_main(["db", "status", "--db", db_url, "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "open entries: 1" in out and f"  {failing.subject.owner}: 1" in out
    assert "litellm-health: violated, for 0 min, checked 0 min ago, 33 ms  http://198.51.100.10:4000/health" in out
    assert "last 1 runs:" in out and "r2 by test-runner" in out and "r1 by" not in out
    password = make_url(db_url).password
    assert not password or password not in out
    assert cli_main(["db", "status", "--db", db_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [run["id"] for run in report["runs"]] == ["r2", "r1"]
    # `conformance bulletin --db` folds the same table the runs wrote.
    assert cli_main(["bulletin", "--db", db_url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["fingerprint"] for row in rows] == [failing.subject.fingerprint]
    assert cli_main(["db", "upgrade", "--db", db_url]) == 0


def test_an_up_to_date_database_is_opened_without_loading_alembic(tmp_path):
    """Alembic costs a run about 0.25 s of start-up: it is loaded only when a migration is due."""
    code = (
        "import sys; from sqlalchemy.engine import make_url; "
        "from conformance.store.db import make_engine, upgrade; "
        "upgrade(make_engine(make_url(sys.argv[1]))); print('alembic' in sys.modules)"
    )
    url = f"sqlite:///{tmp_path / 'conformance.db'}"
    answers = [
        subprocess.run(
            [sys.executable, "-c", code, url], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        for _ in range(2)
    ]
    assert answers == ["True", "False"], "the first run migrates, the next one only reads the version"
