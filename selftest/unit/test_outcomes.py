"""The outcome policy on canned facts, without the lab: violated, broken, blocked by a root
cause, skipped, and an internal error that still becomes a counted result."""

from __future__ import annotations

import pytest

from conformance.contracts import Case, ContractSpec, Scope, cases_of, load_registry
from conformance.errors import FactUnavailable, HostUnavailable, ParseError
from conformance.facts.model import HostFacts, UnitFact
from conformance.facts.parsers import parse_ss
from conformance.inventory.loader import load_inventory
from conformance.outcomes import evaluate
from conformance.results import Outcome, Result, passed
from conformance.runtime import Runtime
from conformance.transport.audit import AuditLog
from selftest.conftest import INVENTORY_DIR

REGISTRY = load_registry()


def unit(name: str, active: bool) -> UnitFact:
    return UnitFact(
        "systemd",
        name,
        True,
        active,
        "active (running)" if active else "inactive (dead)",
        True,
        "enabled",
        f"/etc/systemd/system/{name}",
        100 if active else None,
        None,
        (),
        {},
        (),
        None,
    )


@pytest.fixture
def runtime(tmp_path):
    inventory = load_inventory(INVENTORY_DIR / "lab.yaml", environ={})
    run = Runtime(inventory, AuditLog(tmp_path / "audit.jsonl", "test"))
    ss = 'LISTEN 0 128 0.0.0.0:4020 0.0.0.0:* users:(("python3",pid=100,fd=3))\n'
    facts = HostFacts("mini", hostname="mini", os_name="Linux", listeners=parse_ss(ss))
    facts.units = {
        "optillm-proxy.service": unit("optillm-proxy.service", True),
        "litellm-orch.service": unit("litellm-orch.service", True),
    }
    run.use_facts("mini", facts)
    run.use_facts("studio", HostUnavailable("studio", "timeout", "SSH to 198.51.100.11:22 timed out after 5 s"))
    yield run
    run.close()


def case_of(runtime: Runtime, check: str | ContractSpec, case_id: str) -> Case:
    spec = REGISTRY.get(check) if isinstance(check, str) else check
    case = next(case for case in cases_of(spec, runtime.inventory) if case.id == case_id)
    case.runtime = runtime
    return case


def test_violated(runtime):
    result = evaluate(REGISTRY.get("port-bound"), case_of(runtime, "port-bound", "mini/optillm-proxy:4020"))
    assert result.outcome is Outcome.VIOLATED
    assert "declared 127.0.0.1 only" in result.summary
    assert result.subject is not None and result.subject.fingerprint == "gateway/port-bound/mini/optillm-proxy/4020"


def test_host_down_is_the_root_cause_and_blocks_the_others(runtime):
    root = evaluate(REGISTRY.get("host-identity"), case_of(runtime, "host-identity", "studio"))
    assert root.outcome is Outcome.BROKEN and root.blocked_by is None
    assert "timed out" in root.summary
    blocked = evaluate(REGISTRY.get("port-bound"), case_of(runtime, "port-bound", "studio/optillm-local:4040"))
    assert blocked.outcome is Outcome.BROKEN
    assert blocked.blocked_by == root.subject.fingerprint == "gateway/host-identity/studio/-"


def test_stopped_unit_blocks_the_contracts_that_need_it_running(runtime):
    facts = runtime.facts("mini")
    facts.units["optillm-proxy.service"] = unit("optillm-proxy.service", False)
    result = evaluate(REGISTRY.get("port-bound"), case_of(runtime, "port-bound", "mini/optillm-proxy:4020"))
    assert result.outcome is Outcome.BROKEN
    assert result.blocked_by == "gateway/unit-active/mini/optillm-proxy/optillm-proxy.service"
    own = evaluate(REGISTRY.get("unit-active"), case_of(runtime, "unit-active", "mini/optillm-proxy"))
    assert own.outcome is Outcome.VIOLATED and own.subject.fingerprint == result.blocked_by


def test_not_live_service_is_skipped_with_its_reason(runtime):
    inventory = runtime.inventory
    services = tuple(
        service.model_copy(update={"state": "disabled", "state_reason": "off for the test"})
        if service.name == "optillm-proxy"
        else service
        for service in inventory.services
    )
    runtime.inventory = inventory.model_copy(update={"services": services})
    result = evaluate(REGISTRY.get("port-bound"), case_of(runtime, "port-bound", "mini/optillm-proxy:4020"))
    assert result.outcome is Outcome.SKIPPED and "off for the test" in result.summary


@pytest.mark.parametrize(
    ("error", "outcome", "phrase"),
    [
        (FactUnavailable("listening sockets unknown: permission denied"), Outcome.BROKEN, "permission denied"),
        (ParseError("/etc/x/env", "no '='", line_no=2, line="sk-canary-0123456789"), Outcome.BROKEN, "line 2"),
        (KeyError("boom"), Outcome.BROKEN, "internal error in check throwaway: KeyError"),
        (ZeroDivisionError("division by zero"), Outcome.BROKEN, "internal error in check throwaway"),
    ],
)
def test_every_exception_in_a_judgement_becomes_a_result(runtime, error, outcome, phrase):
    def judge(case: Case) -> Result:
        raise error

    spec = ContractSpec("throwaway", "hosts", Scope.HOST, judge, "a throwaway contract")
    result = evaluate(spec, case_of(runtime, spec, "mini"))
    assert result.outcome is outcome
    assert phrase in result.summary
    assert "sk-canary" not in result.render()  # a parse error never shows the offending line
    assert result.subject is not None and result.subject.check == "throwaway"


def test_a_passing_judgement_is_about_its_subject(runtime):
    spec = ContractSpec("throwaway", "hosts", Scope.HOST, lambda case: passed("fine"), "a throwaway contract")
    result = evaluate(spec, case_of(runtime, spec, "mini"))
    assert result.outcome is Outcome.PASSED and result.subject.host == "mini"
