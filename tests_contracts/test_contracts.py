"""The seed's contracts, each its own test, parametrized from the inventory's contracts."""

import pytest

from conformance import evaluate
from conformance.assertions import expect

pytestmark = pytest.mark.contracts


@pytest.mark.check("clients_call_litellm_only")
def test_clients_call_litellm_only(contract_case):
    expect(contract_case, evaluate.clients_call_litellm_only, needs_running=True)


@pytest.mark.check("optillm_local_only")
def test_optillm_reachable_only_on_localhost(contract_case):
    expect(contract_case, evaluate.optillm_local_only, needs_running=True)


@pytest.mark.check("optillm_upstream_is_litellm")
def test_optillm_upstream_is_litellm(contract_case):
    expect(contract_case, evaluate.optillm_upstream)


@pytest.mark.check("no_routing_loop")
def test_no_routing_loop(contract_case):
    expect(contract_case, evaluate.no_routing_loop)


@pytest.mark.check("gateway_never_runs_inference")
def test_gateway_never_runs_inference(contract_case):
    expect(contract_case, evaluate.gateway_never_runs_inference)


@pytest.mark.check("showroom_models_present")
def test_only_present_models_get_handles(contract_case):
    expect(contract_case, evaluate.showroom)


@pytest.mark.check("transformers_pin")
def test_transformers_pinned_below_5(contract_case):
    expect(contract_case, evaluate.transformers_pin)


@pytest.mark.check("hf_cache_path")
def test_hf_cache_path(contract_case):
    expect(contract_case, evaluate.hf_cache)


@pytest.mark.check("hf_token_present")
def test_hf_token_for_gated_pulls(contract_case):
    expect(contract_case, evaluate.hf_token)


@pytest.mark.check("dependencies_reachable")
def test_dependency_reachable(contract_case):
    expect(contract_case, evaluate.dependency, needs_running=True)
