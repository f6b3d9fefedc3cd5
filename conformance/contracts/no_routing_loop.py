"""No routing loop: following LiteLLM's handles through OptiLLM and back never returns to a handle."""

from __future__ import annotations

from conformance.contracts._live_table import LiveTable, lan_probes, live_table
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.derived import litellm_service, router_graph
from conformance.facts.routing import ModelGraph
from conformance.results import Result, passed, violated


def judge_graph(graph: ModelGraph, live: LiveTable | None = None) -> Result:
    """No cycle in the files' graph, nor in the graph of LiteLLM's live table (its live api_bases)."""
    cycles = [" -> ".join(cycle) for cycle in graph.cycles()]
    evidence = {"graph": graph.describe()}
    if live is not None:
        evidence["live /model/info"] = live.note
        if live.graph is not None:
            evidence["live graph"] = live.graph.describe()
            cycles.extend(f"live: {' -> '.join(cycle)}" for cycle in live.graph.cycles())
    if cycles:
        return violated("routing loop in the model graph: a request would circle forever", *cycles, **evidence)
    return passed(f"no routing loop among {len(graph.handles())} LiteLLM handles", **evidence)


def judge(case: Case) -> Result:
    litellm = litellm_service(case.inventory, case.service)
    return judge_graph(router_graph(case.inventory, case.facts, litellm), live_table(case, litellm))


CONTRACT = ContractSpec(
    id="no-routing-loop",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    lan_probes=lan_probes,
    statement="OptiLLM points upstream to LiteLLM; avoid routing loops.",
    rule="In the model graph (each LiteLLM handle -> its api_base: LiteLLM itself, the OptiLLM proxy under the "
    "forwarded model name, or an inference endpoint) no handle reaches itself again; the same holds for the graph "
    "of LiteLLM's live table (/model/info).",
)
