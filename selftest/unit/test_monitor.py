"""The System monitor without the lab: its bind rule, poll plan, bulletin folding, server limits and outputs.

Each server test starts the real HTTP server on an ephemeral loopback port over a real SQLite
database, and speaks raw HTTP to it where a client library would hide what is being tested
(a missing Host header, a slow request head, an oversized header block).
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.engine import make_url

from conformance.bulletin import events
from conformance.bulletin.flapping import FlapPolicy, fold_history, policy_from_inventory
from conformance.inventory.loader import load_inventory
from conformance.monitor.config import Limits, MonitorConfigError, build_config
from conformance.monitor.poller import HealthPoller, health_subject, plan
from conformance.monitor.service import SCHEMAS, Monitor
from conformance.probes import ProbeResult
from conformance.redact import register_secret
from conformance.results import Outcome, Result, Subject
from conformance.store import schema
from conformance.store.db import make_engine, upgrade
from conformance.store.records import RunInfo, bulletin_entries, record_poll, record_run
from selftest.conftest import PROJECT_ROOT

LAB = PROJECT_ROOT / "inventory" / "lab.yaml"


def lab_inventory():
    return load_inventory(LAB, environ={})


def sqlite(tmp_path: Path):
    engine = make_engine(make_url(f"sqlite:///{tmp_path / 'conformance.db'}"))
    upgrade(engine)
    return engine


# --- the bind rule --------------------------------------------------------------------------


def test_the_monitor_binds_loopback_and_refuses_anything_else_unless_both_keys_turn():
    inventory = lab_inventory()
    config = build_config(inventory)
    assert (config.bind, config.port.port, config.poll_seconds) == ("127.0.0.1", 4090, 5.0)
    with pytest.raises(MonitorConfigError, match="--allow-non-loopback"):
        build_config(inventory, bind="0.0.0.0", allow_non_loopback=True)  # the inventory still says 127.0.0.1
    declared = inventory.model_copy(
        update={
            "ports": tuple(
                p.model_copy(update={"bind": "0.0.0.0", "exposure": "lan"}) if p.port == 4090 else p
                for p in inventory.ports
            )
        }
    )
    with pytest.raises(MonitorConfigError, match="--allow-non-loopback does not say so"):
        build_config(declared)
    assert build_config(declared, allow_non_loopback=True).bind == "0.0.0.0"


def test_a_planned_monitor_does_not_start():
    inventory = lab_inventory()
    planned = inventory.model_copy(
        update={
            "services": tuple(
                s.model_copy(update={"state": "planned"}) if s.kind == "monitor" else s for s in inventory.services
            )
        }
    )
    with pytest.raises(MonitorConfigError, match="state 'planned'"):
        build_config(planned)


# --- what it polls, and from where ----------------------------------------------------------


def test_the_poll_plan_asks_its_own_host_on_loopback_and_the_studio_over_the_lan():
    planned, skipped = plan(build_config(lab_inventory()))
    urls = {item.check.id: item.url for item in planned}
    assert urls == {
        "litellm-liveliness": "http://127.0.0.1:4000/health/liveliness",
        "litellm-readiness": "http://127.0.0.1:4000/health/readiness",
        "optillm-proxy-health": "http://127.0.0.1:4020/health",
        "optillm-local-high-models": "http://198.51.100.11:4040/v1/models",
        "optillm-local-balanced-models": "http://198.51.100.11:4041/v1/models",
    }
    reasons = {item.check.id: item.reason for item in skipped}
    assert "--model-health" in reasons["litellm-health"]  # the billed /health only on request
    assert "own endpoint" in reasons["system-monitor-healthz"]
    # the subjects are the health contract's own, so the fingerprints are the suites'
    liveliness = next(item for item in planned if item.check.id == "litellm-liveliness")
    assert liveliness.subject.fingerprint == "gateway/health-endpoint/mini/litellm-orch/4000/litellm-liveliness"


def _probe_by_url(answers: dict[str, ProbeResult]):
    def probe(url: str, timeout: float, headers: dict[str, str] | None) -> ProbeResult:
        return answers.get(url) or ProbeResult(url, True, 200, '{"status": "ok"}', {"status": "ok"}, milliseconds=2)

    return probe


def _healthy(url: str) -> ProbeResult:
    if url.endswith("/v1/models"):
        model = "labtiny/tiny-chat-high" if ":4040" in url else "labtiny/tiny-chat-balanced"
        body = {"data": [{"id": model}]}
    elif "liveliness" in url:
        body = "I'm alive!"  # type: ignore[assignment]
    elif "readiness" in url:
        body = {"status": "healthy"}
    else:
        body = {"status": "ok"}
    return ProbeResult(url, True, 200, json.dumps(body), body, milliseconds=3)


def test_the_studio_down_is_one_root_cause_and_litellm_refused_one_entry(monkeypatch):
    monkeypatch.setenv("OPTILLM_LOCAL_API_KEY", "studio-key-for-the-test")
    config = build_config(lab_inventory())
    down = {
        url: ProbeResult(url, False, error="timed out", error_kind="timeout")
        for url in ("http://198.51.100.11:4040/v1/models", "http://198.51.100.11:4041/v1/models")
    }
    refused = {
        url: ProbeResult(url, False, error="Connection refused", error_kind="refused")
        for url in ("http://127.0.0.1:4000/health/liveliness", "http://127.0.0.1:4000/health/readiness")
    }
    answers = {**down, **refused}
    poller = HealthPoller(config, probe=lambda url, timeout, headers: answers.get(url) or _healthy(url))
    try:
        poll = poller.poll()
    finally:
        poller.close()
    by_fingerprint = {r.subject.fingerprint: r for r in poll.results if r.subject is not None}
    root = by_fingerprint["gateway/host-identity/studio/-"]
    assert root.outcome is Outcome.BROKEN and root.blocked_by is None
    for port in (4040, 4041):
        studio = next(r for f, r in by_fingerprint.items() if f"/studio/optillm-local/{port}/" in f)
        assert studio.blocked_by == "gateway/host-identity/studio/-"
    readiness = by_fingerprint["gateway/health-endpoint/mini/litellm-orch/4000/litellm-readiness"]
    liveliness = by_fingerprint["gateway/health-endpoint/mini/litellm-orch/4000/litellm-liveliness"]
    assert liveliness.blocked_by is None
    assert readiness.blocked_by == liveliness.subject.fingerprint


def test_a_missing_secret_is_could_not_check_naming_where_to_put_it(monkeypatch):
    monkeypatch.delenv("OPTILLM_LOCAL_API_KEY", raising=False)
    inventory = lab_inventory().model_copy(update={"secrets_file": None})
    config = build_config(inventory)
    poller = HealthPoller(config, probe=lambda url, timeout, headers: _healthy(url))
    try:
        poll = poller.poll()
    finally:
        poller.close()
    studio = [r for r in poll.results if r.subject and r.subject.host == "studio"]
    assert studio and all(r.outcome is Outcome.BROKEN and "optillm-local-key" in r.summary for r in studio)


def _polling_monitor(tmp_path, answers: dict[str, ProbeResult], **options):
    inventory = lab_inventory()
    config = build_config(inventory, bulletin_file=tmp_path / "bulletin.jsonl", **options)
    url = make_url(f"sqlite:///{tmp_path / 'conformance.db'}")

    def factory():
        engine = make_engine(url)
        upgrade(engine)
        return engine

    poller = HealthPoller(
        config, probe=lambda probe_url, timeout, headers: answers.get(probe_url) or _healthy(probe_url)
    )
    return Monitor(config, factory, str(url), poller=poller, log=lambda line: None)


def _open_fingerprints(monitor) -> list[str]:
    with monitor.engine.connect() as connection:
        entries = bulletin_entries(connection, "gateway")
    state: dict[str, str] = {}
    for entry in entries:
        state[entry["fingerprint"]] = entry["event"]
    return sorted(fingerprint for fingerprint, event in state.items() if event == events.OPENED)


PROXY_HEALTH = "gateway/health-endpoint/mini/optillm-proxy/4020/optillm-proxy-health"
PROXY_REFUSED = {
    "http://127.0.0.1:4020/health": ProbeResult(
        "http://127.0.0.1:4020/health", False, error="Connection refused", error_kind="refused"
    )
}


def test_a_restart_one_poll_catches_opens_nothing_an_outage_opens_one_entry_after_three_polls(tmp_path, monkeypatch):
    """The monitor's polls open an entry only after open_after_polls (3) failing polls in a row:
    the proxy refused by one poll while it restarts is no outage, refused by three is one."""
    monkeypatch.setenv("OPTILLM_LOCAL_API_KEY", "studio-key-for-the-test")
    answers: dict[str, ProbeResult] = {}
    monitor = _polling_monitor(tmp_path, answers)
    assert monitor.config.open_after_polls == 3
    start = datetime(2026, 12, 1, tzinfo=UTC)
    clock = iter(start + timedelta(seconds=30 * number) for number in range(20))
    try:
        monitor.poll_once(next(clock))
        answers.update(PROXY_REFUSED)
        monitor.poll_once(next(clock))  # the restart, caught once
        answers.clear()
        monitor.poll_once(next(clock))
        assert _open_fingerprints(monitor) == [], "one failing poll is a blip, not an entry"
        answers.update(PROXY_REFUSED)
        monitor.poll_once(next(clock))
        monitor.poll_once(next(clock))
        assert _open_fingerprints(monitor) == [], "two failing polls are still below the threshold"
        monitor.poll_once(next(clock))
        assert _open_fingerprints(monitor) == [PROXY_HEALTH]
        monitor.poll_once(next(clock))
        assert _open_fingerprints(monitor) == [PROXY_HEALTH], "one outage, one entry"
        answers.clear()
        monitor.poll_once(next(clock))
        assert _open_fingerprints(monitor) == [], "the first passing poll resolves it"
    finally:
        monitor.poller.close()
        monitor._dispose_engine()


def test_the_poll_threshold_comes_from_the_option_else_the_inventory_and_a_higher_check_threshold_stays(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("OPTILLM_LOCAL_API_KEY", "studio-key-for-the-test")
    inventory = lab_inventory()
    monitor_record = inventory.service("system-monitor").model_copy(update={"open_after_polls": 5})
    custom = inventory.model_copy(
        update={"services": tuple(monitor_record if s.name == "system-monitor" else s for s in inventory.services)}
    )
    assert build_config(custom).open_after_polls == 5
    assert build_config(custom, open_after_polls=1).open_after_polls == 1
    with pytest.raises(MonitorConfigError, match="from 1 to 20"):
        build_config(inventory, open_after_polls=50)
    policy = FlapPolicy(open_after_failures=1, per_check={"optillm-proxy-health": 4, "port-bound": 2}).at_least(3)
    assert policy.open_after_failures == 3
    assert dict(policy.per_check) == {"optillm-proxy-health": 4, "port-bound": 3}
    # With a threshold of one the monitor opens at the first failing poll, as the suites do.
    answers = dict(PROXY_REFUSED)
    monitor = _polling_monitor(tmp_path, answers, open_after_polls=1)
    try:
        monitor.poll_once(datetime(2026, 12, 1, tzinfo=UTC))
        assert _open_fingerprints(monitor) == [PROXY_HEALTH]
    finally:
        monitor.poller.close()
        monitor._dispose_engine()


# --- the bulletin: the suites' correlation, scoped runs, retention ---------------------------


def _poll_results(inventory, outcome: Outcome) -> list[Result]:
    check = next(c for c in inventory.health_checks if c.id == "optillm-proxy-health")
    return [Result(outcome, f"proxy health {outcome.value}", subject=health_subject(inventory, check), latency_ms=4.0)]


def test_a_poll_opens_one_entry_resolves_it_and_records_the_health_checks_row(tmp_path):
    inventory = lab_inventory()
    engine = sqlite(tmp_path)
    policy = policy_from_inventory(inventory)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    update = record_poll(engine, inventory, _poll_results(inventory, Outcome.VIOLATED), "monitor-1", policy, start)
    assert update.opened == ["gateway/health-endpoint/mini/optillm-proxy/4020/optillm-proxy-health"]
    again = record_poll(
        engine,
        inventory,
        _poll_results(inventory, Outcome.VIOLATED),
        "monitor-2",
        policy,
        start + timedelta(seconds=30),
    )
    assert not again.opened, "one outage, one entry: a second failing poll opens nothing"
    with engine.connect() as connection:
        row = connection.execute(
            select(schema.health_checks).where(schema.health_checks.c.id == "optillm-proxy-health")
        ).one()
    assert (row.last_status, row.latency_ms, row.last_run) == ("violated", 4.0, "monitor-2")
    healed = record_poll(
        engine, inventory, _poll_results(inventory, Outcome.PASSED), "monitor-3", policy, start + timedelta(minutes=1)
    )
    assert healed.resolved == ["gateway/health-endpoint/mini/optillm-proxy/4020/optillm-proxy-health"]
    engine.dispose()


def test_polls_do_not_age_the_suites_windows_and_their_bookkeeping_is_pruned(tmp_path):
    """A poll every 30 s is a state of the polled checks only: a contract of the suites that
    needs 3 failing runs in a row does not open after 3 polls, and the monitor keeps only the
    poll events the fold can still use."""
    inventory = lab_inventory()
    engine = sqlite(tmp_path)
    contract = Subject(check="port-bound", host="mini", service="litellm-orch", port=4000, layer="gateway")
    policy = FlapPolicy(per_check={"port-bound": 3})
    record_run(
        engine,
        inventory,
        [Result(Outcome.VIOLATED, "bound wrong", subject=contract)],
        RunInfo("r1", "t", "0", False),
        policy=policy,
    )
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for number in range(60):
        record_poll(
            engine,
            inventory,
            _poll_results(inventory, Outcome.PASSED),
            f"monitor-{number:03}",
            policy,
            start + timedelta(seconds=30 * number),
        )
    with engine.connect() as connection:
        history = bulletin_entries(connection, "gateway", bookkeeping=True)
    histories = fold_history(history, policy.window)
    assert histories[contract.fingerprint].streak == 1, "the polls counted as runs of the suites"
    polls = [e for e in history if e["event"] == events.RUN and str(e["run"]).startswith("monitor-")]
    assert len(polls) == policy.window + 1, "the monitor's poll events must be pruned to what the fold needs"
    assert all(e.get(events.RUN_SCOPE) for e in polls)
    engine.dispose()


def test_a_host_the_monitor_found_down_is_resolved_by_the_monitor_when_it_answers(tmp_path):
    inventory = lab_inventory()
    engine = sqlite(tmp_path)
    policy = policy_from_inventory(inventory)
    root = Subject(check="host-identity", host="studio", owner="gateway-agent", severity="critical", layer="gateway")
    down = Result(Outcome.BROKEN, "studio could not be checked: none of its health endpoints answers", subject=root)
    opened = record_poll(engine, inventory, [down], "monitor-a", policy)
    assert opened.opened == [root.fingerprint]
    healed = record_poll(engine, inventory, [], "monitor-b", policy, recovered_hosts=["studio"])
    assert healed.resolved == [root.fingerprint]
    # An entry the suites opened (their SSH login failed) is theirs to resolve.
    record_run(engine, inventory, [down], RunInfo("suites-1", "t", "0", False))
    untouched = record_poll(engine, inventory, [], "monitor-c", policy, recovered_hosts=["studio"])
    assert untouched.resolved == []
    engine.dispose()


# --- the server -----------------------------------------------------------------------------


def _seed_database(engine, inventory, secret: str) -> None:
    subject = Subject(
        check="port-bound",
        host="mini",
        service="optillm-proxy",
        port=4020,
        owner="optillm-proxy",
        severity="critical",
        layer="gateway",
    )
    results = [
        Result(Outcome.VIOLATED, f"bound to 0.0.0.0:4020 (key {secret})", subject=subject),
        Result(
            Outcome.PASSED,
            "liveliness answered",
            subject=Subject(
                check="unit-active", host="mini", service="litellm-orch", layer="gateway", owner="litellm-orch"
            ),
        ),
    ]
    record_run(engine, inventory, results, RunInfo("run-1", "mini-timer", "0.1.0", True, datetime.now(UTC)))


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A monitor over a seeded SQLite database on an ephemeral loopback port (no polling)."""
    secret = "sk-monitor-test-secret-value-123456"
    register_secret(secret)
    inventory = lab_inventory()
    engine = sqlite(tmp_path)
    _seed_database(engine, inventory, secret)
    engine.dispose()
    url = make_url(f"sqlite:///{tmp_path / 'conformance.db'}")
    config = build_config(inventory, port=0, poll=False, bulletin_file=tmp_path / "bulletin.jsonl")
    config = type(config)(
        **{**config.__dict__, "limits": Limits(max_connections=4, request_seconds=1.5, read_timeout_seconds=1.0)}
    )
    lines: list[str] = []

    def factory():
        engine = make_engine(url)
        upgrade(engine)
        return engine

    monitor = Monitor(config, factory, str(url), log=lines.append)
    handle = monitor.start(port=0)
    base = f"http://127.0.0.1:{handle.port}"
    yield monitor, base, handle.port, secret, tmp_path, lines
    monitor.stop()


def _raw(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_endpoints_answer_and_the_json_validates_against_its_published_schema(served):
    _monitor, base, _port, secret, _tmp, _lines = served
    with httpx.Client(base_url=base, timeout=5) as client:
        page = client.get("/")
        status = client.get("/api/v1/status")
        bulletin = client.get("/api/v1/bulletin")
        metrics = client.get("/metrics")
        health = client.get("/healthz")
        published = client.get("/api/v1/schemas/status-v1.json")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'data-fingerprint="gateway/port-bound/mini/optillm-proxy/4020"' in page.text
    jsonschema.validate(status.json(), json.loads((SCHEMAS / "status-v1.json").read_text()))
    jsonschema.validate(bulletin.json(), json.loads((SCHEMAS / "bulletin-v1.json").read_text()))
    assert published.json() == json.loads((SCHEMAS / "status-v1.json").read_text())
    entries = bulletin.json()["entries"]
    assert [(e["fingerprint"], e["owner"], e["state"]) for e in entries] == [
        ("gateway/port-bound/mini/optillm-proxy/4020", "optillm-proxy", "open")
    ]
    runners = status.json()["runners"]
    assert runners[0]["runner"] == "mini-timer" and runners[0]["seconds"] is not None
    families = {family.name: family for family in text_string_to_metric_families(metrics.text)}
    status_codes = {s.labels["fingerprint"]: s.value for s in families["gateway_conformance_check_status"].samples}
    assert status_codes["gateway/port-bound/mini/optillm-proxy/4020"] == 1  # violated
    assert status_codes["gateway/unit-active/mini/litellm-orch"] == 0  # passed
    counts = {
        (s.labels["contract"], s.labels["state"]): s.value for s in families["gateway_conformance_checks"].samples
    }
    assert counts[("port-bound", "violated")] == 1 and counts[("port-bound", "passed")] == 0
    # by default the status lists what does not hold; checks=all lists every check
    assert [c["fingerprint"] for c in status.json()["checks"]] == ["gateway/port-bound/mini/optillm-proxy/4020"]
    assert {c["contract"]: c["state"] for c in status.json()["contracts"]} == {
        "port-bound": "violated",
        "unit-active": "passed",
    }
    assert "process_resident_memory_bytes" in families or "process_resident_memory" in families
    assert health.status_code == 200 and health.json()["ready"] is True
    for response in (page, status, bulletin, metrics):
        assert secret not in response.text, "a secret reached a monitor output"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_filters_narrow_the_api_and_an_unknown_one_is_a_clear_400(served):
    _monitor, base, _port, _secret, _tmp, _lines = served
    with httpx.Client(base_url=base, timeout=5) as client:
        mine = client.get("/api/v1/bulletin", params={"owner": "optillm-proxy"}).json()["entries"]
        theirs = client.get("/api/v1/bulletin", params={"owner": "litellm-orch"}).json()["entries"]
        failing = client.get("/api/v1/status", params={"state": "violated"}).json()["checks"]
        every = client.get("/api/v1/status", params={"checks": "all"}).json()
        bad_checks = client.get("/api/v1/status", params={"checks": "some"})
        bad = client.get("/api/v1/status", params={"colour": "red"})
        bad_state = client.get("/api/v1/bulletin", params={"state": "closed"})
    assert len(mine) == 1 and theirs == []
    assert [c["fingerprint"] for c in failing] == ["gateway/port-bound/mini/optillm-proxy/4020"]
    assert every["checks_listed"] == "all" and len(every["checks"]) == 2
    assert bad_checks.status_code == 400
    assert bad.status_code == 400 and "unknown parameter 'colour'" in bad.text
    assert bad_state.status_code == 400 and "open, acknowledged, flapping" in bad_state.text


def test_only_get_and_head_only_its_own_host_names_and_no_request_body(served):
    _monitor, base, port, _secret, _tmp, _lines = served
    with httpx.Client(base_url=base, timeout=5) as client:
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            response = client.request(method, "/api/v1/status")
            assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD", method
        head = client.head("/metrics")
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
        rebinding = client.get("/api/v1/bulletin", headers={"Host": f"attacker.example:{port}"})
        assert rebinding.status_code == 421 and "optillm" not in rebinding.text
        assert client.get("/", headers={"Host": f"localhost:{port}"}).status_code == 200
        body = client.request("GET", "/", content=b"x=1")
        assert body.status_code == 400
    no_host = _raw(port, b"GET /api/v1/status HTTP/1.0\r\n\r\n")
    assert no_host.startswith(b"HTTP/1.1 421")


def test_oversized_and_slow_requests_are_cut_off(served):
    _monitor, _base, port, _secret, _tmp, _lines = served
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    long_line = _raw(port, b"GET /?" + b"a" * 9000 + b" HTTP/1.1\r\n" + host + b"\r\n")
    assert long_line.startswith(b"HTTP/1.1 414")
    many = b"".join(f"X-H{i}: v\r\n".encode() for i in range(80))
    assert _raw(port, b"GET / HTTP/1.1\r\n" + host + many + b"\r\n").startswith(b"HTTP/1.1 431")
    big = b"X-Big: " + b"b" * 20000 + b"\r\n"
    assert _raw(port, b"GET / HTTP/1.1\r\n" + host + big + b"\r\n").startswith(b"HTTP/1.1 431")
    # A client that sends its head a byte at a time is cut off at the request deadline.
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        closed = False
        for _ in range(40):
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            try:
                sock.settimeout(0.01)
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
    assert closed and time.monotonic() - started < 3.5


def test_connections_beyond_the_limit_get_a_503_and_the_server_goes_on(served):
    _monitor, base, port, _secret, _tmp, _lines = served
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
    try:
        time.sleep(0.2)
        extra = _raw(port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert extra.startswith(b"HTTP/1.1 503") and b"too many connections" in extra
    finally:
        for sock in held:
            sock.close()
    time.sleep(1.6)  # the held connections time out and free their slots
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200


def test_an_unreadable_database_is_a_503_with_the_reason_and_the_last_state_marked_stale(served):
    monitor, base, _port, _secret, tmp_path, _lines = served
    database = tmp_path / "conformance.db"
    # (The lab's drift takes the read permission away; root reads any file, so here the file is
    # made unreadable as a database instead.)
    original = database.read_bytes()
    database.write_bytes(b"this is not a database" * 100)
    try:
        monitor.refresh()
        with httpx.Client(base_url=base, timeout=5) as client:
            health = client.get("/healthz")
            status = client.get("/api/v1/status")
            page = client.get("/")
            metrics = client.get("/metrics")
    finally:
        database.write_bytes(original)
    assert health.status_code == 503 and health.json()["status"] == "stale"
    assert "the system database cannot be read" in health.json()["database"]["error"]
    assert status.status_code == 503 and status.json()["stale"] is True
    assert status.json()["checks"], "the last known state is still served"
    assert page.status_code == 503 and 'id="stale"' in page.text and "Traceback" not in page.text
    families = {family.name: family for family in text_string_to_metric_families(metrics.text)}
    assert families["gateway_conformance_monitor_database_up"].samples[0].value == 0
    monitor.refresh()
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200, "it recovers by itself"


def _unit_and_health(inventory):
    service = inventory.service("optillm-local")
    port = next(p for p in inventory.ports if p.port == 4041)
    unit = Subject(
        check="unit-active",
        host="studio",
        service=service.name,
        port=4041,
        item=port.unit.name,
        owner="gateway-agent",
        severity="major",
        layer="gateway",
    )
    check = next(c for c in inventory.health_checks if c.id == "optillm-local-balanced-models")
    return unit, health_subject(inventory, check)


@pytest.mark.parametrize("first", ["monitor", "suites"])
def test_one_outage_seen_by_the_monitor_and_the_suites_is_one_entry_whoever_sees_it_first(tmp_path, first):
    """The balanced instance stopped: the monitor sees its /v1/models refused, the suites see its unit
    down (and the health check blocked by it). Sharing one database, they open one entry."""
    inventory = lab_inventory()
    engine = sqlite(tmp_path)
    policy = policy_from_inventory(inventory)
    unit, health = _unit_and_health(inventory)
    refused = Result(Outcome.BROKEN, "/v1/models on port 4041 did not answer: refused", subject=health)
    suites = [
        Result(Outcome.VIOLATED, "optillm-local-balanced.service is not running", subject=unit),
        Result(Outcome.BROKEN, "optillm-local is down", subject=health, blocked_by=unit.fingerprint),
    ]
    opened: list[str] = []
    runs = [("monitor", "monitor-1"), ("suites", "suites-1")]
    if first == "suites":
        runs.reverse()
    for who, run_id in [*runs, ("monitor", "monitor-2"), ("suites", "suites-2")]:
        if who == "monitor":
            update = record_poll(engine, inventory, [refused], run_id, policy)
        else:
            update = record_run(engine, inventory, suites, RunInfo(run_id, "mini-timer", "0", False), policy=policy)
        opened += update.opened
    assert len(opened) == 1, opened
    healed = record_run(
        engine,
        inventory,
        [Result(Outcome.PASSED, "running", subject=unit), Result(Outcome.PASSED, "answers", subject=health)],
        RunInfo("suites-3", "mini-timer", "0", False),
        policy=policy,
    )
    assert healed.resolved == opened and healed.still_open == 0
    engine.dispose()
