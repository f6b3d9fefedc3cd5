"""The gateway never runs inference: LiteLLM and the OptiLLM proxy only forward."""

from __future__ import annotations

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.derived import litellm_service, router_graph
from conformance.facts.environment import OptiLLMSettings, optillm_settings
from conformance.facts.routing import ModelGraph
from conformance.inventory.model import Service
from conformance.results import Result, broken, env_cause, passed, violated


def judge_forwarding(service: Service, settings: OptiLLMSettings | None, graph: ModelGraph | None) -> Result:
    if settings is not None:
        evidence = {"client": settings.client, "approach": settings.values["approach"]}
        if settings.local_inference:
            return violated(
                f"{service.name} on the gateway runs inference itself: OPTILLM_API_KEY in its environment "
                "switches OptiLLM to local inference (torch/transformers)",
                **evidence,
            ).caused_by(env_cause(service.host, service.name, "OPTILLM_API_KEY"))
        return passed(f"{service.name} only forwards (client: {settings.client})", **evidence)
    if graph is not None:
        local = graph.local_inference_handles()
        if local:
            return violated(
                f"{service.name} routes handles to inference on the gateway host itself",
                *(f"{handle}: {target}" for handle, target in local),
                **{"graph": graph.describe()},
            )
        return passed(
            f"every {service.name} handle forwards to the inference tier or through the gateway",
            **{"graph": graph.describe()},
        )
    return broken(f"no way to tell how {service.name} serves requests")


def judge(case: Case) -> Result:
    service = case.service
    assert service is not None
    if service.kind == "optillm-proxy":
        return judge_forwarding(service, optillm_settings(case.facts(), service), None)
    litellm = litellm_service(case.inventory, service)
    return judge_forwarding(service, None, router_graph(case.inventory, case.facts, litellm))


CONTRACT = ContractSpec(
    id="gateway-never-runs-inference",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    statement="Gateway never runs inference.",
    rule="The OptiLLM proxy's environment has no OPTILLM_API_KEY (which switches it to local inference), and no "
    "LiteLLM handle resolves to an inference server on the gateway host itself.",
)
