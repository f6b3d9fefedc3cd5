"""Showroom/backroom: only models present on the Mini/Studio get handles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.derived import litellm_service, models_present, router_graph
from conformance.facts.routing import ModelGraph
from conformance.probes import LanRequest
from conformance.results import Result, passed, violated

MASTER_KEY = "litellm-master-key"


def judge_handles(
    graph: ModelGraph, live_handles: list[str] | None, live_note: str, present: Mapping[str, set[str]]
) -> Result:
    """Every handle resolves to a model that a host really serves or holds in its cache.

    ``present`` maps "host:port" of each live inference endpoint to the models found there.
    """
    problems = []
    for handle in graph.handles():
        for terminal in graph.terminals(handle):
            endpoint, model = terminal
            if endpoint not in present:
                problems.append(
                    f"handle {handle!r} -> {model} at {endpoint}: no declared, live inference endpoint there"
                )
            elif model not in present[endpoint]:
                problems.append(
                    f"handle {handle!r} -> {model} at {endpoint}: that model is not present there "
                    f"(present: {', '.join(sorted(present[endpoint])) or 'none'})"
                )
        for dangling in graph.dangling(handle):
            problems.append(f"handle {handle!r} -> {dangling}: no such LiteLLM handle")
    if live_handles is not None:
        for handle in sorted(set(live_handles) - set(graph.handles())):
            problems.append(f"handle {handle!r} is served live by /v1/models but is not in router.yaml")
    evidence = {
        "graph": graph.describe(),
        "live /v1/models": live_note,
        "present": "\n".join(
            f"{endpoint}: {', '.join(sorted(models)) or '(none)'}" for endpoint, models in sorted(present.items())
        ),
    }
    if problems:
        return violated("LiteLLM has handles for models that are not present on the Mini/Studio", *problems, **evidence)
    return passed(f"all {len(graph.handles())} handles resolve to models present on their hosts", **evidence)


def _models_request(case: Case) -> LanRequest | None:
    litellm = litellm_service(case.inventory, case.service)
    address = case.inventory.host(litellm.host).address
    if not address or case.bound.secret(MASTER_KEY) is None:
        return None
    port = next(port for port in case.inventory.ports_of(litellm.name) if port.state == "active")
    return LanRequest(address, port.port, "/v1/models", MASTER_KEY)


def lan_probes(case: Case) -> Sequence[LanRequest]:
    request = _models_request(case)
    return (request,) if request else ()


def judge(case: Case) -> Result:
    inventory = case.inventory
    litellm = litellm_service(inventory, case.service)
    graph = router_graph(inventory, case.facts, litellm)
    live_handles: list[str] | None = None
    request = _models_request(case)
    if request is not None:
        probe = case.lan(request)
        if probe.status == 200 and isinstance(probe.json, dict):
            live_handles = sorted(str(item.get("id")) for item in probe.json.get("data", []) if isinstance(item, dict))
            live_note = f"{len(live_handles)} handles: {', '.join(live_handles)}"
        else:
            live_note = f"not available ({probe.describe()})"
    else:
        record = inventory.secret_env(MASTER_KEY)
        live_note = f"skipped: master key not in the environment ({record.env if record else MASTER_KEY})"
    hosts = {service.host for service in inventory.services if service.kind == "optillm-local" and service.is_live}
    present = models_present(inventory, {host: case.facts(host) for host in sorted(hosts)})
    return judge_handles(graph, live_handles, live_note, present)


CONTRACT = ContractSpec(
    id="showroom-backroom",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    lan_probes=lan_probes,
    statement="Showroom/backroom rule: only models present on Mini/Studio get handles.",
    rule="Every LiteLLM handle resolves to a live, declared inference endpoint whose HF cache holds the model "
    "completely and which is configured to serve it; LiteLLM's live /v1/models lists no handle the config lacks.",
)
