"""No routing loop: following LiteLLM's handles through OptiLLM and back never returns to a handle."""

from __future__ import annotations

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.derived import litellm_service, router_graph
from conformance.facts.routing import ModelGraph
from conformance.results import Result, passed, violated


def judge_graph(graph: ModelGraph) -> Result:
    cycles = graph.cycles()
    evidence = {"graph": graph.describe()}
    if cycles:
        return violated(
            "routing loop in the model graph: a request would circle forever",
            *(" -> ".join(cycle) for cycle in cycles),
            **evidence,
        )
    return passed(f"no routing loop among {len(graph.handles())} LiteLLM handles", **evidence)


def judge(case: Case) -> Result:
    litellm = litellm_service(case.inventory, case.service)
    return judge_graph(router_graph(case.inventory, case.facts, litellm))


CONTRACT = ContractSpec(
    id="no-routing-loop",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    statement="OptiLLM points upstream to LiteLLM; avoid routing loops.",
    rule="In the model graph (each LiteLLM handle -> its api_base: LiteLLM itself, the OptiLLM proxy under the "
    "forwarded model name, or an inference endpoint) no handle reaches itself again.",
)
