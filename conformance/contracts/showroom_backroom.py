"""Showroom/backroom: only models present on the Mini/Studio get handles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conformance.contracts._live_table import MASTER_KEY, LiveTable, live_table, model_info_request
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.derived import litellm_service, models_present, router_graph
from conformance.facts.live_models import compare_tables
from conformance.facts.routing import ModelGraph
from conformance.probes import LanRequest
from conformance.results import Result, handle_cause, passed, violated


def judge_handles(
    graph: ModelGraph,
    live_handles: list[str] | None,
    live_note: str,
    present: Mapping[str, set[str]],
    live_table: LiveTable | None = None,
    litellm: str = "litellm-orch",
) -> Result:
    """Every handle resolves to a model that a host really serves or holds in its cache.

    ``present`` maps "host:port" of each live inference endpoint to the models found there.
    ``live_table`` is LiteLLM's /model/info: a handle it has that the files do not explain
    (or the reverse) is a finding, and its handles must resolve to present models too.
    """
    problems = []
    bad_handles: set[str] = set()  # the router entries at fault: the cause other contracts may share
    for handle in graph.handles():
        for terminal in graph.terminals(handle):
            endpoint, model = terminal
            if endpoint not in present or model not in present[endpoint]:
                bad_handles.add(handle)
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
            bad_handles.add(handle)
            problems.append(f"handle {handle!r} -> {dangling}: no such LiteLLM handle")
    if live_handles is not None:
        for handle in sorted(set(live_handles) - set(graph.handles())):
            problems.append(f"handle {handle!r} is served live by /v1/models but is not in router.yaml")
    live_evidence: dict[str, str] = {}
    if live_table is not None:
        live_evidence["live /model/info"] = live_table.note
        if live_table.graph is not None:
            problems.extend(compare_tables(graph, live_table.graph))
            live_evidence["live graph"] = live_table.graph.describe()
            for handle in live_table.graph.handles():
                for endpoint, model in live_table.graph.terminals(handle):
                    if endpoint in present and model not in present[endpoint]:
                        problems.append(
                            f"live handle {handle!r} -> {model} at {endpoint}: that model is not present there"
                        )
    evidence = {
        "graph": graph.describe(),
        "live /v1/models": live_note,
        **live_evidence,
        "present": "\n".join(
            f"{endpoint}: {', '.join(sorted(models)) or '(none)'}" for endpoint, models in sorted(present.items())
        ),
    }
    if problems:
        return violated(
            "LiteLLM has handles for models that are not present on the Mini/Studio", *problems, **evidence
        ).caused_by(*sorted(handle_cause(litellm, handle) for handle in bad_handles))
    return passed(f"all {len(graph.handles())} handles resolve to models present on their hosts", **evidence)


def _models_request(case: Case) -> LanRequest | None:
    return model_info_request(case, "/v1/models")


def lan_probes(case: Case) -> Sequence[LanRequest]:
    return tuple(request for request in (_models_request(case), model_info_request(case)) if request)


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
        live_note = f"skipped: the {MASTER_KEY} secret was not found ({case.bound.secret_hint(MASTER_KEY)})"
    hosts = {service.host for service in inventory.services if service.kind == "optillm-local" and service.is_live}
    present = models_present(inventory, {host: case.facts(host) for host in sorted(hosts)})
    return judge_handles(graph, live_handles, live_note, present, live_table(case, litellm), litellm.name)


CONTRACT = ContractSpec(
    id="showroom-backroom",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    lan_probes=lan_probes,
    statement="Showroom/backroom rule: only models present on Mini/Studio get handles.",
    rule="Every LiteLLM handle resolves to a live, declared inference endpoint whose HF cache holds the model "
    "completely and which is configured to serve it; LiteLLM's live /v1/models lists no handle the config lacks, "
    "and its live /model/info table has exactly the handles router.yaml explains, each resolving to a present "
    "model.",
)
