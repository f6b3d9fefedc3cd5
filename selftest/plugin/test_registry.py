"""The contract registry: one module per contract, in agreement with the inventory, or nothing runs."""

from __future__ import annotations

import textwrap

import pytest

from conformance.contracts import Scope, cases_of, describe, load_registry
from conformance.errors import RegistryError
from conformance.inventory.loader import load_inventory
from selftest.conftest import INVENTORY_DIR, PROJECT_ROOT

REGISTRY = load_registry()

THROWAWAY_CONTRACT = '''
"""OptiLLM must not log request bodies."""

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.environment import service_environment
from conformance.results import Result, passed, violated


def judge(case: Case) -> Result:
    env = service_environment(case.facts(), case.service)
    if env.get("OPTILLM_LOG", "").lower() == "debug":
        return violated("OptiLLM logs request bodies (OPTILLM_LOG=debug)")
    return passed("OptiLLM does not log request bodies")


CONTRACT = ContractSpec(
    id="optillm-no-body-logging",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    statement="OptiLLM must not log request bodies.",
)
'''

THROWAWAY_RECORD = """
  - id: optillm-no-body-logging
    statement: OptiLLM must not log request bodies.
    severity: major
    services: [optillm-proxy]
"""


@pytest.mark.parametrize("name", ["gateway.yaml", "lab.yaml"])
def test_inventories_and_registry_agree(name):
    REGISTRY.check_agreement(load_inventory(INVENTORY_DIR / name, environ={}))


def test_the_seed_inventory_uses_every_contract_of_the_contracts_table():
    seed = load_inventory(INVENTORY_DIR / "gateway.yaml", environ={})
    used = {contract.check_id for contract in seed.contracts}
    assert used == {spec.id for spec in REGISTRY if spec.scope.from_contracts_table}


def test_unknown_check_is_an_error_with_a_suggestion():
    seed = load_inventory(INVENTORY_DIR / "gateway.yaml", environ={})
    renamed = tuple(
        contract.model_copy(update={"check": "no-routing-loops"}) if contract.id == "no-routing-loop" else contract
        for contract in seed.contracts
    )
    with pytest.raises(RegistryError) as error:
        REGISTRY.check_agreement(seed.model_copy(update={"contracts": renamed}))
    text = str(error.value)
    assert "no implementation of check 'no-routing-loops'" in text and "did you mean 'no-routing-loop'" in text
    # ... and the module that no contract now uses is named too: never a silent gap.
    assert "conformance.contracts.no_routing_loop" in text and "no contract in" in text


def test_a_table_check_cannot_be_named_by_a_contract():
    seed = load_inventory(INVENTORY_DIR / "gateway.yaml", environ={})
    extra = seed.contracts[0].model_copy(update={"id": "ports-bound", "check": "port-bound"})
    with pytest.raises(RegistryError, match="derived from the inventory's tables"):
        REGISTRY.check_agreement(seed.model_copy(update={"contracts": (*seed.contracts, extra)}))


def test_one_spelling_module_id_and_test_name():
    for spec in REGISTRY:
        assert spec.module.rsplit(".", 1)[-1] == spec.id.replace("-", "_")
        assert spec.test_name == "test_" + spec.id.replace("-", "_")
        assert spec.statement, spec.id


@pytest.mark.parametrize("name", ["gateway.yaml", "lab.yaml"])
def test_every_case_has_its_own_fingerprint(name):
    inventory = load_inventory(INVENTORY_DIR / name, environ={})
    fingerprints: dict[str, str] = {}
    for spec in REGISTRY:
        for case in cases_of(spec, inventory):
            fingerprint = case.subject(inventory).fingerprint
            assert fingerprint not in fingerprints, f"{spec.id}[{case.id}] and {fingerprints[fingerprint]}"
            fingerprints[fingerprint] = f"{spec.id}[{case.id}]"
    assert len(fingerprints) > 40


@pytest.mark.parametrize("suite", ["hosts", "contracts", "health"])
def test_suite_readme_is_current(suite):
    readme = PROJECT_ROOT / f"tests_{suite}" / "README.md"
    assert readme.read_text(encoding="utf-8") == describe(REGISTRY, suite), (
        "regenerate with: conformance contracts --write-readmes"
    )


def test_scopes_of_the_contracts_table_are_marked():
    assert {scope for scope in Scope if scope.from_contracts_table} == {
        Scope.CONTRACT_SERVICE,
        Scope.CONTRACT_PORT,
        Scope.CONTRACT_LAYER,
        Scope.CONTRACT_EDGE,
    }


def test_adding_a_contract_is_one_module_and_one_inventory_record(harness_project):
    """The README's "Adding a contract", done in a throwaway project: nothing else is edited."""
    (harness_project.path / "contracts").mkdir()
    (harness_project.path / "contracts" / "optillm_no_body_logging.py").write_text(textwrap.dedent(THROWAWAY_CONTRACT))
    inventory = harness_project.path / "inventory" / "gateway.yaml"
    text = inventory.read_text(encoding="utf-8")
    inventory.write_text(text.replace("\ndependencies:\n", THROWAWAY_RECORD + "\ndependencies:\n", 1), encoding="utf-8")
    result = harness_project.runpytest("--collect-only", "-q", "--inventory=inventory/gateway.yaml")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert "tests_contracts/test_contracts.py::test_optillm_no_body_logging[mini/optillm-proxy]" in result.outlines
    # Without its record, the implemented contract is a collection error (exit 4), not a silent gap.
    inventory.write_text(text, encoding="utf-8")
    result = harness_project.runpytest("--collect-only", "-q", "--inventory=inventory/gateway.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "optillm-no-body-logging" in result.stderr.str() and "no contract in" in result.stderr.str()


def test_a_record_without_its_module_fails_collection(harness_project):
    inventory = harness_project.path / "inventory" / "gateway.yaml"
    text = inventory.read_text(encoding="utf-8")
    inventory.write_text(text.replace("\ndependencies:\n", THROWAWAY_RECORD + "\ndependencies:\n", 1), encoding="utf-8")
    result = harness_project.runpytest("-q", "--inventory=inventory/gateway.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "no implementation of check 'optillm-no-body-logging'" in result.stderr.str()
