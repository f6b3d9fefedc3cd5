"""Facts gathered once, handed on: HostFacts to and from JSON, the private snapshot, and a
worker's Runtime that reads it instead of connecting."""

from __future__ import annotations

import json
import stat
import time
from dataclasses import fields, replace
from pathlib import Path

import pytest

from conformance.contracts import cases_of, load_registry
from conformance.errors import HostUnavailable
from conformance.facts.gather import _systemd_unit
from conformance.facts.model import FileFact, HostFacts, ProbeFact, Process
from conformance.facts.parsers import parse_ss, parse_systemctl_show_many
from conformance.inventory.loader import load_inventory
from conformance.outcomes import evaluate
from conformance.probes import LanRequest, ProbeResult
from conformance.runtime import Runtime
from conformance.snapshot import Snapshot
from conformance.transport.audit import AuditLog
from selftest.conftest import INVENTORY_DIR
from selftest.unit.test_macos_path import studio  # noqa: F401 - the recorded macOS gathering, as a fixture

RECORDED = Path(__file__).resolve().parent.parent / "recorded"
REGISTRY = load_registry()


def mini_facts() -> HostFacts:
    """The Mini's facts built by the real parsers from outputs recorded on the lab."""
    facts = HostFacts("mini", hostname="gc-mini", os_name="Linux")
    listeners = parse_ss((RECORDED / "lab-mini-ss-Htlnp.txt").read_text())
    facts.listeners = [replace(listeners[0], notes=("netstat row unreadable",)), *listeners[1:]]
    facts.listeners_notes = ["dual-stack enrichment not done for port 22"]
    blocks = parse_systemctl_show_many((RECORDED / "lab-mini-systemctl-show-two-units.txt").read_text())
    for block in blocks:
        facts.units[block["Id"]] = _systemd_unit(block["Id"], block)
    facts.processes = {34: Process(34, 1, 998, "litellm"), 35: Process(35, 1, 997, "optillm")}
    facts.account_names = {0: "root", 998: "litellm"}
    facts.user_ids = {"litellm": 998}
    facts.user_homes = {"litellm": "/var/lib/litellm", "nobody": None}
    facts.listeners_without_processes = "ss on this host does not support -H"
    facts.account_errors = {"ldapsvc": "no account database (NSS) knows the account 'ldapsvc'"}
    facts.files["litellm-orch:config/env.local"] = FileFact(
        "config/env.local", "/srv/env.local", True, "LITELLM_MASTER_KEY=sk-recorded\n", None, secret=True
    )
    facts.files["unit:/missing"] = FileFact("/missing", "/missing", False, None, "No such file", False)
    facts.files["optillm-proxy:/etc/optillm-proxy/env"] = FileFact(
        "/etc/optillm-proxy/env", "/etc/optillm-proxy/env", True, None, "sudo refused to read it", True, "mini"
    )
    facts.probes["http://127.0.0.1:4020/health"] = ProbeFact(
        "http://127.0.0.1:4020/health", True, 200, '{"status":"ok"}', None, 2.5
    )
    facts.unit_errors["ghost.service"] = "unit ghost.service was not gathered"
    facts.packages = {"/opt/litellm/venv": {"packages": {"litellm": "1.108.7"}}}
    facts.hf_caches = {"/var/lib/optillm/.cache/huggingface/hub": {"exists": True, "models": {}}}
    facts.problems = ["HF cache listing: exit 1: denied"]
    facts.commands = 2
    return facts


def test_every_field_is_set_by_the_fixture_and_travels():
    """A field added to HostFacts later must be covered here, or this fails."""
    facts, empty = mini_facts(), HostFacts("mini")
    unset = [item.name for item in fields(HostFacts) if getattr(facts, item.name) == getattr(empty, item.name)]
    # an error (and sudo's refusal of the listener command) only when listeners are unknown: below
    assert unset == ["host", "listeners_error", "listeners_refused"]
    assert set(json.loads(facts.to_json())) == {item.name for item in fields(HostFacts)}


def test_linux_facts_survive_a_json_round_trip():
    facts = mini_facts()
    assert facts.units and facts.listeners, "the recordings were parsed"
    again = HostFacts.from_json(facts.to_json())
    assert again == facts
    assert again.to_json() == facts.to_json()
    # The records keep their types, not what JSON would make of them.
    assert isinstance(again.units["litellm-orch.service"].argv, tuple)
    assert isinstance(next(iter(again.processes)), int) and isinstance(next(iter(again.account_names)), int)
    assert again.listeners is not None
    loopback = [item.is_loopback_only() for item in facts.listeners]
    assert [item.is_loopback_only() for item in again.listeners] == loopback


def test_recorded_macos_gathering_survives_a_json_round_trip(studio):  # noqa: F811
    _, facts, _ = studio
    assert facts.units and facts.listeners and facts.hf_caches, "the replayed gathering produced facts"
    assert HostFacts.from_json(facts.to_json()) == facts


def test_listeners_unknown_survive_a_round_trip():
    facts = HostFacts("studio", listeners=None, listeners_error="lsof failed (exit 1)", listeners_refused=True)
    again = HostFacts.from_json(facts.to_json())
    assert again.listeners is None and again.listeners_error == "lsof failed (exit 1)" and again.listeners_refused


def test_snapshot_is_private_and_removed_at_the_end():
    snapshot = Snapshot.create()
    try:
        assert stat.S_IMODE(snapshot.path.stat().st_mode) == 0o700
        snapshot.write_facts("mini", mini_facts())
        snapshot.write_facts("studio", HostUnavailable("studio", "timeout", "SSH timed out after 5 s"))
        snapshot.write_probes({"GET x": ProbeResult("x", True, 200, "{}", {}, milliseconds=1.0)}, {"a": "timeout"})
        snapshot.write_plan(["mini", "studio"], probes=True)
        files = list(snapshot.path.iterdir())
        assert len(files) == 4
        assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
        assert not any("mini" in path.name or path.name.endswith(".part") for path in files)
        assert snapshot.read_facts("mini", 0) == mini_facts()
        down = snapshot.read_facts("studio", 0)
        assert isinstance(down, HostUnavailable) and (down.kind, down.cause) == ("timeout", "SSH timed out after 5 s")
        probes = snapshot.read_probes(0)
        assert probes is not None and probes[0]["GET x"].status == 200 and probes[1] == {"a": "timeout"}
    finally:
        snapshot.remove()
    assert not snapshot.path.exists()


def test_a_missing_host_is_waited_for_within_the_bound_only():
    snapshot = Snapshot.create()
    try:
        started = time.monotonic()
        assert snapshot.read_facts("nowhere", 0.1) is None
        assert 0.1 <= time.monotonic() - started < 1.0
    finally:
        snapshot.remove()


@pytest.fixture
def lab_inventory():
    return load_inventory(INVENTORY_DIR / "lab.yaml", environ={})


def test_controller_publishes_what_it_gathered(lab_inventory, tmp_path):
    controller = Runtime(lab_inventory, AuditLog(tmp_path / "audit.jsonl", "test"))
    controller.use_facts("mini", mini_facts())
    controller.use_facts("studio", HostUnavailable("studio", "timeout", "SSH timed out after 5 s"))
    snapshot = Snapshot.create()
    try:
        for thread in controller.start_prefetch(["mini", "studio"], [], publish=snapshot):
            thread.join(5)
        assert snapshot.read_facts("mini", 0) == mini_facts()
        assert isinstance(snapshot.read_facts("studio", 0), HostUnavailable)
        assert snapshot.read_probes(0) == ({}, {})
        assert snapshot.read_plan(0) == (["mini", "studio"], False)
    finally:
        snapshot.remove()
        controller.close()


def test_worker_reads_the_snapshot_and_never_connects(lab_inventory, tmp_path):
    """Every mini check judged from the snapshot equals the judgement on the gathered facts."""
    audit = tmp_path / "audit.jsonl"
    down = HostUnavailable("studio", "timeout", "SSH to 198.51.100.11:22 timed out after 5 s")
    request = LanRequest("198.51.100.10", 4000, "/health/liveliness")
    answer = ProbeResult(request.url, True, 200, '"I\'m alive!"', "I'm alive!", milliseconds=3.0)
    snapshot = Snapshot.create()
    original = Runtime(lab_inventory, AuditLog(audit, "test"))
    worker = Runtime(lab_inventory, AuditLog(audit, "test"))
    try:
        snapshot.write_facts("mini", mini_facts())
        snapshot.write_facts("studio", down)
        snapshot.write_probes({request.key: answer}, {"198.51.100.11": down.cause})
        original.use_facts("mini", mini_facts())
        original.use_facts("studio", down)
        snapshot.write_plan(["mini", "studio"], probes=True)
        worker.read_snapshot(snapshot)
        assert worker.facts("mini") == mini_facts()
        with pytest.raises(HostUnavailable, match="timed out"):
            worker.facts("studio")
        assert worker.lan(request) == answer
        # The studio is known to be down: its probes fail at once, without a connect attempt.
        refused = worker.lan(LanRequest("198.51.100.11", 4040))
        assert not refused.answered and "unreachable" in (refused.error or "")
        judged = 0
        for spec in REGISTRY:
            for case in cases_of(spec, lab_inventory):
                if case.host != "mini" or spec.lan_probes(_bound(case, original)):
                    continue  # LAN probes would reach the network from the original runtime
                expected = evaluate(spec, _bound(case, original))
                got = evaluate(spec, _bound(case, worker))
                assert (got.outcome, got.summary) == (expected.outcome, expected.summary), case.id
                judged += 1
        assert judged >= 10
        assert not audit.exists(), "the worker opened no connection"
    finally:
        snapshot.remove()
        original.close()
        worker.close()


def _bound(case, runtime):
    case.runtime = runtime
    return case


def test_a_worker_without_a_plan_gathers_itself(lab_inventory, tmp_path, monkeypatch):
    """No plan in time (the controller could not write it): the snapshot is dropped, not waited on."""
    import conformance.runtime

    monkeypatch.setattr(conformance.runtime, "SNAPSHOT_PLAN_WAIT", 0.05)
    snapshot = Snapshot.create()
    worker = Runtime(lab_inventory, AuditLog(tmp_path / "audit.jsonl", "test"))
    try:
        snapshot.write_facts("mini", mini_facts())  # facts, but no plan naming them
        worker.read_snapshot(snapshot)
        assert worker._snapshot_plan() == (frozenset(), False)
        assert worker.snapshot is None
    finally:
        snapshot.remove()
        worker.close()
