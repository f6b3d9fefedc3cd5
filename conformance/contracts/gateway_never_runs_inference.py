"""The gateway never runs inference: LiteLLM and the OptiLLM proxy only forward."""

from __future__ import annotations

from collections.abc import Sequence

from conformance.contracts._live_table import LiveTable, live_table
from conformance.contracts._live_table import lan_probes as live_table_probes
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.derived import litellm_service, router_graph
from conformance.facts.environment import OptiLLMSettings, optillm_settings
from conformance.facts.routing import ModelGraph
from conformance.inventory.model import Service
from conformance.probes import LanRequest
from conformance.results import Result, broken, passed, violated


def judge_forwarding(
    service: Service, settings: OptiLLMSettings | None, graph: ModelGraph | None, live: LiveTable | None = None
) -> Result:
    if settings is not None:
        evidence = {"client": settings.client, "approach": settings.values["approach"]}
        if settings.local_inference:
            return violated(
                f"{service.name} on the gateway runs inference itself: OPTILLM_API_KEY in its environment "
                "switches OptiLLM to local inference (torch/transformers)",
                **evidence,
            )
        return passed(f"{service.name} only forwards (client: {settings.client})", **evidence)
    if graph is not None:
        local = [f"{handle}: {target}" for handle, target in graph.local_inference_handles()]
        evidence = {"graph": graph.describe()}
        if live is not None:
            evidence["live /model/info"] = live.note
            if live.graph is not None:
                evidence["live graph"] = live.graph.describe()
                local.extend(f"live: {handle}: {target}" for handle, target in live.graph.local_inference_handles())
        if local:
            problem = f"{service.name} routes handles to inference on the gateway host itself"
            return violated(problem, *local, **evidence)
        return passed(f"every {service.name} handle forwards to the inference tier or through the gateway", **evidence)
    return broken(f"no way to tell how {service.name} serves requests")


def judge(case: Case) -> Result:
    service = case.service
    assert service is not None
    if service.kind == "optillm-proxy":
        return judge_forwarding(service, optillm_settings(case.facts(), service), None)
    litellm = litellm_service(case.inventory, service)
    return judge_forwarding(service, None, router_graph(case.inventory, case.facts, litellm), live_table(case, litellm))


def lan_probes(case: Case) -> Sequence[LanRequest]:
    service = case.service
    return () if service is None or service.kind != "litellm" else live_table_probes(case)


CONTRACT = ContractSpec(
    id="gateway-never-runs-inference",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    lan_probes=lan_probes,
    statement="Gateway never runs inference.",
    rule="The OptiLLM proxy's environment has no OPTILLM_API_KEY (which switches it to local inference), and no "
    "LiteLLM handle resolves to an inference server on the gateway host itself, in router.yaml or in LiteLLM's live "
    "table (/model/info).",
)
