"""LiteLLM's live model table, read from its authenticated, read-only ``GET /model/info``.

LiteLLM 1.108.7, litellm/proxy/proxy_server.py ``model_info_v1`` (``@router.get("/model/info")``
and ``/v1/model/info``, ``Depends(user_api_key_auth)``): with no query it returns
``{"data": [...]}``, one entry per router deployment (``llm_router.model_list``) plus one per
``model_group_alias`` (``get_model_list_from_model_alias``), wildcard deployments expanded
(``expand_wildcard_deployments_for_model_info``). Each entry keeps ``model_name`` and
``litellm_params`` (``model``, ``api_base`` ...) with the credentials removed by
``remove_sensitive_info_from_deployment`` (proxy/common_utils/openai_endpoint_utils.py: pops
``api_key``, ``client_secret``, cloud credentials, then masks the rest by name). The harness
still treats the answer as secret-bearing: every credential-named value is registered for
redaction before anything from it can reach evidence.

It makes no model call, so it is read as often as the static router.yaml: the live table is
built into a model graph with the same resolution rules as the files (conformance.facts.routing),
and the two are compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from conformance.errors import FactUnavailable
from conformance.facts.optillm_config import ProxyPluginConfig
from conformance.facts.routing import ModelGraph, build_model_graph
from conformance.inventory.model import Inventory
from conformance.redact import register_structure


@dataclass(frozen=True)
class LiveDeployment:
    model_name: str
    model: str
    api_base: str | None


def live_deployments(payload: object) -> list[LiveDeployment]:
    """The deployments of a ``/model/info`` answer; FactUnavailable when it has another shape."""
    register_structure(payload)
    if not isinstance(payload, Mapping) or not isinstance(payload.get("data"), list):
        raise FactUnavailable("/model/info did not answer {'data': [...]}")
    found: list[LiveDeployment] = []
    for index, entry in enumerate(payload["data"]):
        params = entry.get("litellm_params") if isinstance(entry, Mapping) else None
        name = entry.get("model_name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not isinstance(params, Mapping) or not isinstance(params.get("model"), str):
            raise FactUnavailable(f"/model/info entry {index} has no model_name and litellm_params.model")
        base = params.get("api_base")
        found.append(LiveDeployment(name, params["model"], base if isinstance(base, str) and base else None))
    return found


def live_graph(
    deployments: list[LiveDeployment],
    inventory: Inventory,
    litellm_service: str,
    optillm_approaches: Mapping[str, str] | None = None,
    proxy_plugins: Mapping[str, ProxyPluginConfig] | None = None,
) -> ModelGraph:
    """The model graph of the live table: each deployment routed exactly as a router.yaml entry
    with the same ``model`` and ``api_base`` would be (the values are already resolved live, so
    no environment is needed)."""
    model_list: list[dict[str, Any]] = []
    for item in deployments:
        params: dict[str, Any] = {"model": item.model}
        if item.api_base is not None:
            params["api_base"] = item.api_base
        model_list.append({"model_name": item.model_name, "litellm_params": params})
    return build_model_graph(
        {"model_list": model_list},
        {},
        inventory,
        litellm_service,
        router_path="/model/info",
        optillm_approaches=optillm_approaches,
        proxy_plugins=proxy_plugins,
    )


def compare_tables(static: ModelGraph, live: ModelGraph) -> list[str]:
    """Handles one table has and the other does not explain.

    A live name is explained by the files when they declare it, or when it matches a wildcard
    ``model_name`` they declare (LiteLLM expands wildcards in /model/info). A handle the files
    declare but the live table lacks is a finding too: LiteLLM is not running what is on disk.
    """
    files = set(static.handles())
    wildcards = static.wildcards
    served = set(live.handles())
    problems = [
        f"handle {name!r} is in LiteLLM's live table (/model/info) but router.yaml does not explain it"
        for name in sorted(served - files)
        if not any(fnmatchcase(name, pattern) for pattern in wildcards)
    ]
    problems.extend(
        f"handle {name!r} is in router.yaml but not in LiteLLM's live table (/model/info)"
        for name in sorted(files - served)
    )
    return problems
