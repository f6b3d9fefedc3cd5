"""OptiLLM's effective upstream is LiteLLM, and only LiteLLM.

The effective settings are computed as OptiLLM computes them: flags over ``OPTILLM_*``
environment over defaults; ``OPTILLM_API_KEY`` in the environment switches it to local
inference; every provider of the proxy plugin's config (``~/.optillm/proxy_config.yaml`` of
the service user, else the packaged example) is an upstream too, since any request can
select the plugin (selftest/corpus/RULES.md). Each URL must name
LiteLLM's host, port and ``/v1`` path, and reach LiteLLM as it is really bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from conformance.contracts._listeners import describe
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.addresses import HostIdentity, connect_address
from conformance.facts.environment import OptiLLMSettings, optillm_settings
from conformance.facts.model import HostFacts
from conformance.facts.routing import host_identity
from conformance.inventory.model import Host, Inventory, Port, Service
from conformance.results import Result, broken, env_cause, passed, violated


def _identity(host: Host, facts: HostFacts | None) -> HostIdentity:
    return host_identity(host, facts.hostname if facts else None)


def means_host(url_host: str, host: Host, facts: HostFacts | None) -> bool:
    """Whether a URL's host part, used on ``host`` itself, reaches ``host`` (conformance.facts.addresses)."""
    return _identity(host, facts).reached_from_itself(url_host)


def _connect_address(url_host: str, host: Host) -> str | None:
    """The address a connect to ``url_host`` on ``host`` itself goes to, when knowable."""
    return connect_address(url_host, _identity(host, None))


@dataclass(frozen=True)
class UpstreamVerdict:
    url: str
    source: str
    problem: str | None


def judge_upstream(
    url: str, source: str, litellm: Service, litellm_host: Host, litellm_port: Port, same_host: bool, facts: HostFacts
) -> UpstreamVerdict:
    if not url:
        return UpstreamVerdict(url, source, "empty: OptiLLM then calls api.openai.com, not LiteLLM")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return UpstreamVerdict(url, source, "not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host_ok = (
        means_host(parts.hostname, litellm_host, facts)
        if same_host
        else _identity(litellm_host, None).named_by(parts.hostname)
    )
    if not host_ok:
        return UpstreamVerdict(
            url, source, f"host {parts.hostname} is not {litellm_host.name} (where {litellm.name} runs)"
        )
    if port != litellm_port.port:
        return UpstreamVerdict(url, source, f"port {port} is not {litellm.name}'s port {litellm_port.port}")
    if parts.path.rstrip("/") != "/v1":
        return UpstreamVerdict(url, source, f"path {parts.path or '/'} is not LiteLLM's OpenAI path /v1")
    return UpstreamVerdict(url, source, None)


def optillm_upstream_is_litellm(
    service: Service, settings: OptiLLMSettings, inventory: Inventory, facts: HostFacts
) -> Result:
    if service.upstream_service is None:
        return broken(f"{service.name} declares no upstream_service to compare against")
    litellm = inventory.service(service.upstream_service)
    litellm_port = next((port for port in inventory.ports_of(litellm.name) if port.state == "active"), None)
    if litellm_port is None:
        return broken(f"{litellm.name} declares no active port")
    litellm_host = inventory.host(litellm.host)
    same_host = litellm.host == service.host
    evidence = {
        "client": settings.client,
        "base_url": f"{settings.values['base_url'] or '(empty)'}  [{settings.sources['base_url']}]",
        "approach": f"{settings.values['approach']}  [{settings.sources['approach']}]",
    }
    if settings.proxy_config_path:
        evidence["proxy_config"] = settings.proxy_config_path
    if settings.local_inference:
        return violated(
            f"{service.name} is in LOCAL INFERENCE mode: OPTILLM_API_KEY is set in its environment, "
            "so it runs models itself instead of calling LiteLLM",
            "remove OPTILLM_API_KEY from the environment (protect the API with --optillm-api-key instead)",
            **evidence,
        ).caused_by(env_cause(service.host, service.name, "OPTILLM_API_KEY"))
    if settings.client != "openai":
        return violated(
            f"{service.name} would use its {settings.client} client, not an OpenAI client pointed at LiteLLM",
            "OPENAI_API_KEY must be set and OPTILLM_BASE_URL must be LiteLLM's /v1 URL",
            **evidence,
        )
    verdicts = [
        judge_upstream(
            settings.values["base_url"],
            f"base_url ({settings.sources['base_url']})",
            litellm,
            litellm_host,
            litellm_port,
            same_host,
            facts,
        )
    ]
    # The proxy plugin's providers are upstreams whenever the plugin can run: always with
    # --approach proxy, and on any request that selects it (RULES.md O3-O6); with no providers
    # the plugin uses the default client judged above.
    if settings.proxy_config_error:
        evidence["proxy plugin"] = settings.proxy_config_error
    if settings.proxy_plugin is not None and settings.proxy_plugin.unset:
        evidence["proxy_config ${VAR} left literal"] = ", ".join(settings.proxy_plugin.unset)
    selection = "every request (--approach proxy)" if settings.proxy_by_default else "requests that select proxy"
    if settings.proxy_plugin is not None and settings.proxy_plugin.packaged and settings.providers:
        evidence["proxy_config"] = f"{settings.proxy_config_path}: no proxy_config.yaml in the service user's HOME"
    for provider in settings.providers:
        verdicts.append(
            judge_upstream(
                str(provider.get("base_url") or ""),
                f"proxy plugin provider {provider.get('name')!r} ({selection})",
                litellm,
                litellm_host,
                litellm_port,
                same_host,
                facts,
            )
        )
        evidence[f"provider {provider.get('name')}"] = str(provider.get("base_url"))
    wrong = [verdict for verdict in verdicts if verdict.problem]
    if wrong:
        return violated(
            f"{service.name}'s upstream is not {litellm.name}",
            *(f"{verdict.source}: {verdict.url or '(empty)'}: {verdict.problem}" for verdict in wrong),
            **evidence,
        )
    # Each URL must also reach LiteLLM as it is bound: ::1 does not reach an IPv4-only
    # 0.0.0.0 listener, and 127.0.0.1 does not reach a bind to the LAN address only.
    if same_host and facts.listeners is not None:
        listeners = [item for item in facts.listeners if item.port == litellm_port.port]
        for verdict in verdicts:
            address = _connect_address(urlsplit(verdict.url).hostname or "", litellm_host)
            if listeners and address and not any(item.reachable_at(address) for item in listeners):
                return violated(
                    f"{service.name} calls {verdict.url}, but {litellm.name} does not listen there",
                    f"{verdict.source}: {address} is not reachable on {litellm.name}'s listeners",
                    **{"listeners": describe(listeners), **evidence},
                )
    return passed(
        f"{service.name} forwards only to {litellm.name} ({', '.join(sorted({v.url for v in verdicts}))})", **evidence
    )


def judge(case: Case) -> Result:
    assert case.service is not None
    facts = case.facts()
    return optillm_upstream_is_litellm(case.service, optillm_settings(facts, case.service), case.inventory, facts)


CONTRACT = ContractSpec(
    id="optillm-upstream-litellm",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    statement="OptiLLM must call LiteLLM upstream only.",
    rule="OptiLLM's effective client is an OpenAI client (not local inference), and its base URL and every proxy "
    "provider's base_url are LiteLLM's http://<host>:<port>/v1, reachable on LiteLLM's real listeners.",
)
