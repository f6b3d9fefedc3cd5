"""The seed's contracts, each a pure function over facts and probe results."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from conformance.checks.hosts import _describe, _is_loopback
from conformance.facts.addresses import HostIdentity, connect_address
from conformance.facts.environment import OptiLLMSettings
from conformance.facts.model import FactUnavailable, HostFacts
from conformance.facts.routing import ModelGraph, host_identity
from conformance.inventory.model import Host, Inventory, Port, Service
from conformance.probes import ProbeResult
from conformance.redact import MASK
from conformance.results import Result, broken, passed, violated


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
        )
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
                    **{"listeners": _describe(listeners), **evidence},
                )
    return passed(
        f"{service.name} forwards only to {litellm.name} ({', '.join(sorted({v.url for v in verdicts}))})", **evidence
    )


def no_routing_loop(graph: ModelGraph) -> Result:
    cycles = graph.cycles()
    evidence = {"graph": graph.describe()}
    if cycles:
        return violated(
            "routing loop in the model graph: a request would circle forever",
            *(" -> ".join(cycle) for cycle in cycles),
            **evidence,
        )
    return passed(f"no routing loop among {len(graph.handles())} LiteLLM handles", **evidence)


def gateway_never_runs_inference(
    service: Service, settings: OptiLLMSettings | None, graph: ModelGraph | None, facts: HostFacts
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


def showroom_models_present(
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


_PROBE_VERSIONS = ("5.0.0", "5.0.0rc1", "5.0.1", "5.1", "5.99.99", "6.0", "10.0")


def transformers_pin(service: Service, facts: HostFacts, venv: str | None, requirements_key: str | None) -> Result:
    spec_text = service.package_pins.get("transformers", "<5")
    spec = SpecifierSet(spec_text)
    if venv is None:
        return broken(f"{service.name} declares no venv (give repo_root/venv for this site)")
    metadata = facts.packages.get(venv)
    if metadata is None:
        return broken(f"package metadata of {venv} was not gathered", *facts.problems)
    evidence = {"venv": venv, "site-packages": ", ".join(metadata.get("site_packages") or []) or "(none)"}
    if metadata.get("error"):
        return broken(f"cannot read the package metadata of {venv}", str(metadata["error"]), **evidence)
    if not metadata.get("site_packages"):
        return violated(f"{venv} is not a virtualenv with site-packages", **evidence)
    installed = metadata.get("packages", {}).get("transformers")
    problems = []
    if installed is None:
        problems.append(f"transformers is not installed in {venv}")
    else:
        evidence["installed"] = f"transformers {installed}"
        try:
            if Version(installed) not in spec:
                problems.append(f"installed transformers {installed} does not satisfy {spec_text}")
        except InvalidVersion:
            problems.append(f"installed transformers version {installed!r} is not a valid version")
    fact = facts.files.get(requirements_key) if requirements_key else None
    if fact is None or fact.content is None:
        return broken(
            f"cannot read {service.name}'s requirements",
            (fact.error if fact else None) or "no requirements file declared",
            **evidence,
        )
    declared = None
    for line in fact.content.splitlines():
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.name.lower() == "transformers":
            declared = requirement
    evidence["requirements"] = f"{fact.path}: {declared or '(transformers not listed)'}"
    if declared is None:
        problems.append(f"{fact.path} does not list transformers, so a reinstall is unpinned")
    else:
        allowed = [version for version in _PROBE_VERSIONS if declared.specifier.contains(version, prereleases=True)]
        if allowed:
            problems.append(
                f"{fact.path} declares {declared}, which admits transformers {', '.join(allowed)}: "
                f"a reinstall can break the {spec_text} pin"
            )
    if problems:
        return violated(f"the transformers {spec_text} pin of {service.name} does not hold", *problems, **evidence)
    return passed(f"transformers {installed} satisfies {spec_text} and {fact.path} declares {declared}", **evidence)


def hf_cache_path(service: Service, port: Port, effective: str | None, facts: HostFacts) -> Result:
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


def hf_token_present(service: Service, port: Port, env: Mapping[str, str], token_file: bool) -> Result:
    names = [name for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") if env.get(name)]
    if names:
        return passed(
            f"an HF token is configured for {port.instance or port.port} ({names[0]}: {MASK})",
            **{names[0]: f"set ({MASK})"},
        )
    if token_file:
        return passed(f"an HF token file is present for {port.instance or port.port}")
    return violated(
        f"no HF token for gated pulls on {service.name} {port.instance or port.port}",
        "set HF_TOKEN in the instance's environment (its value is never shown)",
    )


def dependency_reachable(source: Service, target: Service, probes: list[ProbeResult]) -> Result:
    if not probes:
        return broken(f"{target.name} has no active port to reach")
    evidence = {probe.target: probe.describe() for probe in probes}
    failed = [probe for probe in probes if not probe.answered]
    if failed:
        return violated(
            f"{source.name} ({source.host}) cannot reach {target.name}",
            *(f"{probe.target}: {probe.describe()}" for probe in failed),
            **evidence,
        )
    return passed(f"{source.name} reaches {target.name} at {', '.join(probe.target for probe in probes)}", **evidence)


def clients_call_litellm_only(
    host: Host,
    litellm_probe: ProbeResult,
    local_probes: list[tuple[Port, ProbeResult]],
    stray_probes: list[tuple[str, ProbeResult]],
    facts: HostFacts,
) -> Result:
    problems = []
    evidence = {"litellm": litellm_probe.describe()}
    if not litellm_probe.answered:
        return broken(f"LiteLLM does not answer from the LAN ({litellm_probe.describe()})", **evidence)
    for port, probe in local_probes:
        evidence[f"{port.service}:{port.port} from LAN"] = probe.describe()
        if probe.answered:
            problems.append(f"{port.service} (local only) answers from the LAN on {probe.target}")
    for label, probe in stray_probes:
        evidence[f"{label} from LAN"] = probe.describe()
        if probe.answered:
            problems.append(f"{label} is reachable from the LAN: {probe.describe()}")
    if problems:
        return violated(f"clients on the LAN can reach more than LiteLLM on {host.name}", *problems, **evidence)
    return passed(f"from the LAN only LiteLLM answers on {host.name}", **evidence)


def optillm_local_only(port: Port, facts: HostFacts, loopback: ProbeResult | None, lan: ProbeResult) -> Result:
    try:
        listeners = [item for item in facts.require_listeners() if item.port == port.port]
    except FactUnavailable as exc:
        return broken(f"cannot read the listening sockets of {port.host}", str(exc))
    evidence = {
        "listening": _describe(listeners),
        "from the LAN": lan.describe(),
        "on loopback": loopback.describe() if loopback else "(not probed)",
    }
    exposed = [item for item in listeners if not _is_loopback(item)]
    problems = []
    if exposed:
        problems.append("bound beyond loopback: " + ", ".join(f"{item.bind_text()}:{item.port}" for item in exposed))
    if lan.answered:
        problems.append(f"answers from the LAN at {lan.target}")
    if problems:
        return violated(f"{port.service} is EXPOSED beyond localhost", *problems, **evidence)
    if not listeners:
        return violated(f"{port.service} is not listening on port {port.port} at all", **evidence)
    if loopback is None or not loopback.answered or loopback.status is None or loopback.status >= 500:
        return violated(f"{port.service} does not answer on loopback inside {port.host}", **evidence)
    return passed(f"{port.service} listens on loopback only, answers there and is refused from the LAN", **evidence)
