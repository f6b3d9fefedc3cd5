"""Live route: LiteLLM really sends each handle where the model graph says (opt-in: ``--probe-routes``).

The static reading of router.yaml (and LiteLLM's live table, /model/info) says where a handle
*should* go; only a request shows where LiteLLM *does* send it. With ``--probe-routes`` the
harness sends, from the LAN vantage, one chat completion per handle through LiteLLM with the
smallest budget (``max_tokens: 1``, caching off, a short timeout, the master key) and reads the
response headers LiteLLM 1.108.7 sets on every completion
(litellm/proxy/common_request_processing.py, ProxyBaseLLMRequestProcessing.get_custom_headers):

- ``x-litellm-model-api-base``: the api_base of the deployment that answered (query stripped);
- ``x-litellm-model-name``: that deployment's ``litellm_params.model`` (_get_deployment_model_name);
- ``x-litellm-model-group``: the model group that answered (litellm/router.py
  set_response_headers), which differs from the handle's own group after a fallback;
- ``x-litellm-attempted-fallbacks`` (router_utils/add_retry_fallback_headers.py).

The observed api_base must reach what the model graph's deployments of that group reach
(conformance.facts.routing.endpoint_of: compared by what an address reaches, not by text), and
its model must be one of theirs. A group served through a fallback must be one the files route
the handle to. A handle LiteLLM could not answer is broken with the cause: its route is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from conformance.contracts._live_table import MASTER_KEY, live_table
from conformance.contracts._live_table import lan_probes as live_table_probes
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.derived import litellm_service, router_graph
from conformance.facts.routing import Hop, ModelGraph, endpoint_of
from conformance.inventory.model import Service
from conformance.probes import LanRequest, ProbeResult
from conformance.redact import strip_userinfo
from conformance.results import Result, broken, passed, skipped, violated

CHAT_PATH = "/v1/chat/completions"
API_BASE_HEADER = "x-litellm-model-api-base"
MODEL_HEADER = "x-litellm-model-name"
GROUP_HEADER = "x-litellm-model-group"
FALLBACKS_HEADER = "x-litellm-attempted-fallbacks"
# One request at a time: several handles may end on one single-model inference server, and a
# local OptiLLM instance may answer concurrent completions with HTTP 500 (seen on the lab),
# which would make a sound route look unreadable.
PARALLEL = 1

# Where an address reaches, and whether that is a host of the inventory (routing.endpoint_of).
Locate = Callable[[str], tuple[str, bool]]


def route_payload(handle: str) -> str:
    """The smallest completion LiteLLM will route: one token, no stream, the cache neither read
    nor written (``cache: {"no-cache": true}`` is read by litellm/caching/caching_handler.py L331),
    so the answer always comes from a deployment."""
    body = {
        "model": handle,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
        "stream": False,
        "cache": {"no-cache": True, "no-store": True},
    }
    return json.dumps(body, sort_keys=True)


def route_request(case: Case, litellm: Service, handle: str) -> LanRequest | None:
    """The POST that probes one handle, or None when it cannot be made (no address or port)."""
    address = case.inventory.host(litellm.host).address
    port = next((port for port in case.inventory.ports_of(litellm.name) if port.state == "active"), None)
    if not address or port is None:
        return None
    timeout = case.bound.options.route_timeout
    return LanRequest(address, port.port, CHAT_PATH, MASTER_KEY, timeout, route_payload(handle))


def _describe_hop(hop: Hop) -> str:
    return f"{hop.where} ({hop.endpoint}) as {hop.model}" if hop.endpoint else f"{hop.where} as {hop.model}"


def judge_route(graph: ModelGraph, handle: str, probe: ProbeResult, locate: Locate) -> tuple[str, str]:
    """("ok" | "violated" | "broken", what was seen) for one handle's probe."""
    if not probe.answered or probe.status != 200:
        return "broken", f"handle {handle!r}: LiteLLM did not answer the probe ({probe.describe()})"
    headers: Mapping[str, str] = probe.headers or {}
    api_base = headers.get(API_BASE_HEADER)
    model = headers.get(MODEL_HEADER)
    served = graph.served_group(handle)
    group = headers.get(GROUP_HEADER) or served
    try:
        fallbacks = int(headers.get(FALLBACKS_HEADER) or 0)
    except ValueError:
        fallbacks = 0
    allowed = {served, *graph.fallback_groups(handle)} if fallbacks else {served}
    via = f" (model group {group!r} after {fallbacks} fallback(s))" if fallbacks else ""
    if group not in allowed:
        return "violated", (
            f"handle {handle!r} was served by model group {group!r}{via}; the files route it to "
            f"{', '.join(sorted(allowed))}"
        )
    hops = graph.hops.get(f"litellm:{group}", [])
    expected = "; ".join(_describe_hop(hop) for hop in hops) or "(no deployment)"
    if api_base is None:
        if any(hop.endpoint is None and (model is None or hop.model == model) for hop in hops):
            return "ok", f"handle {handle!r} -> no api_base, as {model}{via} (files: {expected})"
        return "broken", f"handle {handle!r}: LiteLLM's answer names no api_base ({API_BASE_HEADER} missing)"
    shown = strip_userinfo(api_base)
    endpoint, known = locate(api_base)

    def matches(hop: Hop) -> bool:
        if model is not None and hop.model != model:
            return False
        # No URL in the files (a provider's public API): any address outside the inventory.
        return hop.endpoint == endpoint if hop.endpoint is not None else not known

    seen = f"{shown} ({endpoint}) as {model or '(model not named)'}{via}"
    if any(matches(hop) for hop in hops):
        return "ok", f"handle {handle!r} -> {seen}"
    return "violated", f"handle {handle!r}: LiteLLM sent it to {seen}; the files route it to {expected}"


def looping_handles(graph: ModelGraph, live: ModelGraph | None) -> list[str]:
    """Handles never probed: a request for them would circle LiteLLM -> OptiLLM -> LiteLLM until
    some timeout, a load the harness must not cause (no-routing-loop reports the loop itself)."""
    looping = {handle for handle in graph.handles() if graph.loops(handle)}
    if live is not None:
        looping |= {handle for handle in live.handles() if live.loops(handle)}
    return sorted(looping)


def judge_routes(
    graph: ModelGraph, probes: Mapping[str, ProbeResult], locate: Locate, looping: list[str] | None = None
) -> Result:
    """Every probed handle went where the files say; a handle with no readable route is broken."""
    verdicts = {handle: judge_route(graph, handle, probe, locate) for handle, probe in sorted(probes.items())}
    for handle in looping or []:
        verdicts[handle] = ("broken", f"handle {handle!r}: not probed, its route loops (see no-routing-loop)")
    seen = "\n".join(text for _, text in verdicts.values())
    evidence = {"live routes": seen, "graph": graph.describe()}
    wrong = [text for kind, text in verdicts.values() if kind == "violated"]
    unknown = [text for kind, text in verdicts.values() if kind == "broken"]
    if wrong:
        return violated(
            f"LiteLLM's live route disagrees with its router config for {len(wrong)} handle(s)",
            *wrong,
            *unknown,
            **evidence,
        )
    if unknown:
        return broken(f"the live route of {len(unknown)} handle(s) could not be read", *unknown, **evidence)
    return passed(f"all {len(probes)} LiteLLM handles are served where the router config says", **evidence)


def lan_probes(case: Case) -> Sequence[LanRequest]:
    """Only LiteLLM's live table ahead of time: the handles to probe come from the gathered files."""
    return live_table_probes(case) if case.bound.options.probe_routes else ()


def judge(case: Case) -> Result:
    if not case.bound.options.probe_routes:
        return skipped("the live route probe sends one one-token completion per handle; run with --probe-routes")
    litellm = litellm_service(case.inventory, case.service)
    if case.bound.secret(MASTER_KEY) is None:
        return broken(f"the live route probe needs the {MASTER_KEY} secret: {case.bound.secret_hint(MASTER_KEY)}")
    graph = router_graph(case.inventory, case.facts, litellm)
    looping = looping_handles(graph, live_table(case, litellm).graph)
    requests = {handle: route_request(case, litellm, handle) for handle in graph.handles() if handle not in looping}
    planned = {handle: request for handle, request in requests.items() if request is not None}
    if not planned and not looping:
        return broken(f"no address or active port for {litellm.name}: nothing to probe")
    with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL, len(planned))), thread_name_prefix="route") as pool:
        futures = {handle: pool.submit(case.lan, request) for handle, request in planned.items()}
        probes = {handle: future.result() for handle, future in futures.items()}
    return judge_routes(graph, probes, lambda url: endpoint_of(case.inventory, litellm.host, url), looping)


CONTRACT = ContractSpec(
    id="live-route",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    lan_probes=lan_probes,
    needs_running=True,
    statement="Each LiteLLM handle is served where the router config says (the live route agrees with the files).",
    rule="Opt-in (--probe-routes): one chat completion per handle through LiteLLM (max_tokens 1, the master key, "
    "a short timeout); the deployment LiteLLM names in its x-litellm-model-api-base and x-litellm-model-name "
    "response headers must be one the model graph gives that handle (compared by what the address reaches), and a "
    "fallback must be one the files declare.",
)
