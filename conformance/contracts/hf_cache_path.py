"""Studio OptiLLM local uses the HF cache at /Users/thestudio/models/hf/hub, which holds its model."""

from __future__ import annotations

import posixpath

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.discovery import settled_service
from conformance.facts.environment import hf_cache_of, instance_environment
from conformance.facts.model import HostFacts
from conformance.inventory.model import Port, Service
from conformance.results import Result, broken, passed, violated


def judge_cache(service: Service, port: Port, effective: str | None, facts: HostFacts) -> Result:
    required = service.hf_cache
    if required is None:
        return broken(f"{service.name} declares no hf_cache")
    evidence = {"required": required, "effective": effective or "(unknown)"}
    if effective is None:
        return broken(f"cannot tell which HF cache {port.instance or port.port} uses")
    if posixpath.normpath(effective) != posixpath.normpath(required):
        return violated(
            f"{service.name} {port.instance or port.port} uses HF cache {effective}, not {required}", **evidence
        )
    listing = facts.hf_caches.get(effective)
    if listing is None:
        return broken(f"the HF cache {effective} was not listed", *facts.problems, **evidence)
    if listing.get("error"):
        return broken(f"cannot list the HF cache {effective}", str(listing["error"]), **evidence)
    if not listing.get("exists"):
        return violated(f"the HF cache directory {effective} does not exist", **evidence)
    models = listing.get("models", {})
    evidence["models in cache"] = ", ".join(sorted(models)) or "(none)"
    if port.model and not models.get(port.model):
        return violated(f"{port.model} (served on {port.port}) is not in the HF cache {effective}", **evidence)
    return passed(f"{port.instance or port.port} uses {effective}, which holds {port.model or 'its model'}", **evidence)


def judge(case: Case) -> Result:
    assert case.service is not None and case.port is not None
    facts = case.facts()
    # ~ of the cache is the service user's home: the site's user, else the one its units name.
    service = settled_service(case.inventory, case.service, facts)
    env = instance_environment(facts, service, case.port)
    return judge_cache(service, case.port, hf_cache_of(env, facts, service), facts)


CONTRACT = ContractSpec(
    id="hf-cache-path",
    suite="contracts",
    scope=Scope.CONTRACT_PORT,
    judge=judge,
    statement="Studio OptiLLM local uses HF cache at /Users/thestudio/models/hf/hub.",
    rule="The instance's effective cache, resolved as huggingface_hub does (HF_HUB_CACHE, HF_HOME/hub, "
    "XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub of the service user), is the declared path, "
    "exists, and holds the port's model.",
)
