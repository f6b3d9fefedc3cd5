"""Facts derived from gathered facts: the LiteLLM model graph, the models really present.

These are what several contracts read; each derivation lives here once, so no contract
rebuilds a path, a URL or an environment by hand.
"""

from __future__ import annotations

from collections.abc import Callable

from conformance.errors import FactUnavailable
from conformance.facts.discovery import settled_service
from conformance.facts.environment import hf_cache_of, instance_environment, service_environment
from conformance.facts.model import HostFacts
from conformance.facts.routing import ModelGraph, graph_from_router_text, optillm_routes
from conformance.inventory.model import Inventory, Service
from conformance.paths import file_key


def litellm_service(inventory: Inventory, preferred: Service | None = None) -> Service:
    """The LiteLLM service whose model table a contract reads (the case's own, if it is one)."""
    if preferred is not None and preferred.kind == "litellm":
        return preferred
    found = next((service for service in inventory.services if service.kind == "litellm"), None)
    if found is None:
        raise FactUnavailable("the inventory declares no LiteLLM service")
    return found


def router_graph(inventory: Inventory, facts_of: Callable[[str], HostFacts], litellm: Service) -> ModelGraph:
    """Where each of LiteLLM's handles really goes: its router config resolved as LiteLLM does
    (includes, os.environ/, aliases, fallbacks, provider defaults), and through each OptiLLM
    proxy by its approach prefixes and proxy-plugin model_map (selftest/corpus/RULES.md)."""
    facts = facts_of(litellm.host)
    router_file = next((file for file in litellm.files if file.role == "router_config"), None)
    if router_file is None:
        raise FactUnavailable(f"{litellm.name} declares no router_config file")
    fact = facts.file(file_key(litellm.name, router_file.path))
    env = service_environment(facts, litellm)
    approaches, plugins = optillm_routes(inventory, facts_of)
    return graph_from_router_text(
        fact.require(), fact.path or router_file.path, facts, env, inventory, litellm.name, approaches, plugins
    )


def models_present(inventory: Inventory, facts_of: dict[str, HostFacts]) -> dict[str, set[str]]:
    """For each live inference endpoint ("host:port"), the models its cache really holds
    (complete snapshots) that the instance is configured to serve."""
    present: dict[str, set[str]] = {}
    for declared in inventory.services:
        if declared.kind != "optillm-local" or not declared.is_live:
            continue
        facts = facts_of[declared.host]
        service = settled_service(inventory, declared, facts)  # ~ is the user the host names
        for port in inventory.ports_of(service.name):
            if port.state != "active" or not port.model:
                continue
            env = instance_environment(facts, service, port)
            cache = hf_cache_of(env, facts, service)
            listing = facts.hf_caches.get(cache or "", {})
            if listing.get("error"):
                raise FactUnavailable(f"cannot list the HF cache {cache} on {service.host}: {listing['error']}")
            present[f"{port.host}:{port.port}"] = {
                model
                for model, complete in listing.get("models", {}).items()
                if complete and model == env.get("OPTILLM_MODEL", port.model)
            }
    return present
