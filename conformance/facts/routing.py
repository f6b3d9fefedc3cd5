"""The model graph: where each LiteLLM handle really goes.

Nodes are ``litellm:<name>`` (a model name as LiteLLM receives it) and ``optillm:<model>``;
leaves are ``(endpoint, model)`` where endpoint is ``<host>:<port>`` in inventory names when the
URL hits a declared port,
or the URL's own netloc otherwise. A handle whose ``api_base`` is LiteLLM itself or the
OptiLLM proxy continues at that service under the forwarded model name; this is how a
routing loop (LiteLLM -> OptiLLM -> LiteLLM -> ...) becomes a cycle we can spell out.
Edges are labelled with how they are taken: ``api_base``, ``alias``, ``fallback`` (and the
context-window and content-policy kinds) or ``optillm``; a cycle through any of them is a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from conformance.facts import yaml_text
from conformance.facts.addresses import HostIdentity
from conformance.facts.environment import optillm_settings
from conformance.facts.litellm_config import Deployment, LiteLLMConfig, Reader, resolve_includes, tabulate
from conformance.facts.model import FactUnavailable, HostFacts
from conformance.facts.optillm_config import ProxyPluginConfig, request_model
from conformance.facts.parsers.errors import describe_yaml_error
from conformance.inventory.model import Host, Inventory, Port, Service
from conformance.redact import register_structure, strip_userinfo


@dataclass(frozen=True)
class Hop:
    """One deployment of a model group: where LiteLLM itself sends a request for it.

    ``endpoint`` is what the api_base reaches ("host:port" in inventory names for a declared
    port, else the URL's host and port; see ``endpoint_of``); ``model`` is the deployment's
    ``litellm_params.model`` as LiteLLM names it in its x-litellm-model-name header.
    ``endpoint`` is None when no URL is involved (inside the LiteLLM process, or a provider's
    public API with no api_base), and ``where`` then says which.
    """

    endpoint: str | None
    model: str
    where: str


@dataclass
class ModelGraph:
    edges: dict[str, list[str]] = field(default_factory=dict)
    leaves: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    local_targets: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    edge_kinds: dict[tuple[str, str], str] = field(default_factory=dict)
    wildcards: list[str] = field(default_factory=list)  # wildcard model_names (served on demand, not handles)
    hops: dict[str, list[Hop]] = field(default_factory=dict)  # litellm:<group> -> its deployments' first hops

    def handles(self) -> list[str]:
        return sorted(
            node.split(":", 1)[1] for node in self.edges if node.startswith("litellm:") and node in self._declared
        )

    _declared: set[str] = field(default_factory=set)  # groups the config names (model_name, aliases)
    _served: set[str] = field(default_factory=set)  # names LiteLLM serves (also through a wildcard)

    def cycles(self) -> list[list[str]]:
        found: list[list[str]] = []
        seen_cycles: set[tuple[str, ...]] = set()

        def visit(node: str, path: list[str]) -> None:
            if node in path:
                cycle = [*path[path.index(node) :], node]
                key = tuple(sorted(cycle[:-1]))
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    found.append(cycle)
                return
            for nxt in self.edges.get(node, []):
                visit(nxt, [*path, node])

        for start in sorted(self._declared):
            visit(start, [])
        return found

    def _reachable(self, handle: str) -> set[str]:
        """Every node a request for ``handle`` can pass through (cycles included once)."""
        stack, seen = [f"litellm:{handle}"], set()
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self.edges.get(node, []))
        return seen

    def loops(self, handle: str) -> bool:
        """A request for ``handle`` can enter a cycle of the graph."""
        looping = {node for cycle in self.cycles() for node in cycle}
        return bool(self._reachable(handle) & looping)

    def terminals(self, handle: str) -> list[tuple[str, str]]:
        return sorted({leaf for node in self._reachable(handle) for leaf in self.leaves.get(node, [])})

    def dangling(self, handle: str) -> list[str]:
        """LiteLLM handles the route reaches that router.yaml does not declare."""
        return sorted(
            node
            for node in self._reachable(handle)
            if node.startswith("litellm:") and node not in self._declared and node not in self._served
        )

    def served_group(self, handle: str) -> str:
        """The model group LiteLLM serves ``handle`` from, after its aliases."""
        node, seen = f"litellm:{handle}", set()
        while node not in seen:
            seen.add(node)
            alias = next((t for t in self.edges.get(node, []) if self.edge_kinds.get((node, t)) == "alias"), None)
            if alias is None:
                break
            node = alias
        return node.split(":", 1)[1]

    def fallback_groups(self, handle: str) -> list[str]:
        """Groups a request for ``handle`` may be served from when fallbacks are taken (aliases
        and fallbacks of any kind, followed transitively; LiteLLM counts fallback depth, so a
        fallback's own fallbacks apply too: router_utils/fallback_event_handlers.py)."""
        start = f"litellm:{handle}"
        stack, seen = [start], {start}
        while stack:
            node = stack.pop()
            for target in self.edges.get(node, []):
                kind = self.edge_kinds.get((node, target), "api_base")
                if (kind == "alias" or kind.endswith("fallback")) and target not in seen:
                    seen.add(target)
                    stack.append(target)
        return sorted(node.split(":", 1)[1] for node in seen if node != start)

    def local_inference_handles(self) -> list[tuple[str, str]]:
        return list(self.local_targets)

    def describe(self) -> str:
        lines = []
        for node in sorted(self.edges):
            targets = [
                *(f"{target} ({self.edge_kinds.get((node, target), 'api_base')})" for target in self.edges[node]),
                *(f"{endpoint} [{model}]" for endpoint, model in self.leaves.get(node, [])),
            ]
            lines.append(f"{node} -> {', '.join(targets) or '(nothing)'}")
        return "\n".join(lines + self.notes)


def host_identity(host: Host, *extra_names: str | None) -> HostIdentity:
    return HostIdentity.of([host.hostname, *host.aliases, *extra_names], [host.address])


def _locate(inventory: Inventory, gateway_host: str, url: str) -> tuple[Port | None, str, bool]:
    """(declared port the URL reaches, endpoint text, whether it stays on the gateway host).

    Host spellings are compared by what they reach (conformance.facts.addresses), never by text
    or by a first label.
    """
    parts = urlsplit(url)
    try:
        port_number = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None, f"(invalid URL {url})", False
    hostname = parts.hostname or ""
    on_gateway = host_identity(inventory.host(gateway_host)).reached_from_itself(hostname)
    for port in inventory.ports:
        if port.port != port_number:
            continue
        if (on_gateway and port.host == gateway_host) or (
            not on_gateway and host_identity(inventory.host(port.host)).named_by(hostname)
        ):
            return port, f"{port.host}:{port.port}", on_gateway
    # The host and port only: a netloc keeps "user:password@".
    where = f"{hostname}:{parts.port}" if hostname and parts.port else hostname
    return None, where or strip_userinfo(url), on_gateway


def endpoint_of(inventory: Inventory, gateway_host: str, url: str) -> tuple[str, bool]:
    """What a URL used by LiteLLM on ``gateway_host`` reaches, and whether that is a host of the
    inventory: "host:port" of a declared port in inventory names, else the URL's own host and
    port. Compared by what it reaches, not by text: ``127.0.0.1``, ``localhost`` and
    ``[::ffff:127.0.0.1]`` used on the gateway all reach the gateway."""
    port, endpoint, on_gateway = _locate(inventory, gateway_host, url)
    return endpoint, port is not None or on_gateway


def build_model_graph(
    router: Mapping[str, Any],
    env: Mapping[str, str],
    inventory: Inventory,
    litellm_service: str,
    *,
    router_path: str = "router.yaml",
    read: Reader | None = None,
    optillm_approaches: Mapping[str, str] | None = None,
    proxy_plugins: Mapping[str, ProxyPluginConfig] | None = None,
) -> ModelGraph:
    """Build the graph from LiteLLM's config the way LiteLLM 1.108.7 resolves it.

    Includes, ``os.environ/`` references, aliases, wildcard model names, provider defaults
    and fallbacks come from conformance.facts.litellm_config. A request arriving at OptiLLM
    loses its approach prefixes as OptiLLM's own parser strips them (``optillm_approaches``
    gives each proxy's ``--approach``), and a proxy-plugin provider's ``model_map`` renames it.
    Raises FactUnavailable when LiteLLM itself could not load the config.
    """
    merged, files = resolve_includes(router, router_path, read or (lambda _path: None))
    register_structure(merged)  # api_key, master_key and URL passwords of the config and its includes
    config = tabulate(merged, env, files)
    graph = ModelGraph()
    graph.notes.extend(config.notes)
    litellm = inventory.service(litellm_service)
    proxies = {service.name: service for service in inventory.services if service.kind == "optillm-proxy"}
    groups = config.groups()
    graph._declared.update(f"litellm:{name}" for name in groups)
    graph.wildcards.extend(sorted({d.handle for d in config.deployments if d.wildcard}))
    pending = list(groups)
    done: set[str] = set()

    def link(source: str, target: str, kind: str) -> None:
        if target not in graph.edges.setdefault(source, []):
            graph.edges[source].append(target)
            graph.edge_kinds[(source, target)] = kind

    def reach_litellm(source: str, name: str, kind: str) -> None:
        link(source, f"litellm:{name}", kind)
        pending.append(name)

    while pending:
        name = pending.pop(0)
        if name in done:
            continue
        done.add(name)
        node = f"litellm:{name}"
        graph.edges.setdefault(node, [])
        served = config.served_name(name)
        if served != name:
            # resolve_served_model (common_utils.py L95-116): the alias replaces the name.
            graph._served.add(node)
            reach_litellm(node, served, "alias")
            continue
        deployments, pattern = config.deployments_for(name)
        if deployments:
            graph._served.add(node)
        if pattern:
            graph.notes.append(f"{node} is served by the wildcard model_name {pattern!r}")
        for deployment in deployments:
            _route(
                graph, inventory, litellm, proxies, deployment, node, reach_litellm, optillm_approaches, proxy_plugins
            )
        for target, kind in _fallbacks_of(config, name):
            if target != name:
                reach_litellm(node, target, kind)
    return graph


def _fallbacks_of(config: LiteLLMConfig, group: str) -> list[tuple[str, str]]:
    """get_fallback_model_group (fallback_event_handlers.py L573-): the group's own chain, else "*"."""
    found: list[tuple[str, str]] = []
    for kind in ("fallback", "context_window_fallback", "content_policy_fallback"):
        edges = [edge for edge in config.fallback_edges if edge.kind == kind]
        own = [edge for edge in edges if edge.source == group]
        chosen = own or [edge for edge in edges if edge.source == "*"]
        found.extend((edge.target, kind) for edge in chosen)
    return found


def _route(
    graph: ModelGraph,
    inventory: Inventory,
    litellm: Service,
    proxies: Mapping[str, Service],
    deployment: Deployment,
    node: str,
    reach_litellm: Callable[[str, str, str], None],
    optillm_approaches: Mapping[str, str] | None,
    proxy_plugins: Mapping[str, ProxyPluginConfig] | None,
) -> None:
    handle = node.split(":", 1)[1]
    forwarded = deployment.forwarded
    hops = graph.hops.setdefault(node, [])
    if deployment.in_process:
        hops.append(Hop(None, deployment.model, "(inside the LiteLLM process)"))
        graph.leaves.setdefault(node, []).append(("(inside the LiteLLM process)", forwarded))
        graph.local_targets.append((handle, f"{deployment.model}: {deployment.base_source}"))
        return
    if not deployment.api_base:
        hops.append(Hop(None, deployment.model, f"(public {deployment.provider} API)"))
        graph.leaves.setdefault(node, []).append((f"(public {deployment.provider} API)", forwarded))
        if deployment.unresolved:
            graph.notes.append(f"{node}: {deployment.base_source}")
        return
    port, endpoint, on_gateway = _locate(inventory, litellm.host, deployment.api_base)
    hops.append(Hop(endpoint, deployment.model, strip_userinfo(deployment.api_base)))
    service = inventory.service(port.service) if port else None
    if deployment.base_source != "api_base":
        graph.notes.append(f"{node}: {deployment.api_base} ({deployment.base_source})")
    if service is not None and service.kind == "litellm":
        reach_litellm(node, forwarded, "api_base")
        return
    if service is not None and service.kind == "optillm-proxy":
        optillm_node = f"optillm:{forwarded}"
        graph.edges.setdefault(node, [])
        if optillm_node not in graph.edges[node]:
            graph.edges[node].append(optillm_node)
            graph.edge_kinds[(node, optillm_node)] = "api_base"
        graph.edges.setdefault(optillm_node, [])
        upstream = proxies[service.name].upstream_service if service.name in proxies else None
        if upstream and inventory.service(upstream).kind == "litellm":
            approach = (optillm_approaches or {}).get(service.name, "auto")
            parsed = request_model(forwarded, approach)
            names = [parsed.model]
            plugin = (proxy_plugins or {}).get(service.name)
            if "proxy" in parsed.approaches and plugin is not None:
                names = sorted({provider.model_map.get(parsed.model, parsed.model) for provider in plugin.providers})
                names = names or [parsed.model]
            for name in names:
                reach_litellm(optillm_node, name, "optillm")
        return
    graph.leaves.setdefault(node, []).append((endpoint, forwarded))
    if on_gateway and (service is None or service.tier != "gateway"):
        graph.local_targets.append((handle, f"{deployment.api_base} [{forwarded}] ({deployment.base_source})"))


def optillm_routes(
    inventory: Inventory, facts_of: Callable[[str], HostFacts]
) -> tuple[dict[str, str], dict[str, ProxyPluginConfig]]:
    """Each live OptiLLM proxy's ``--approach`` and proxy-plugin config, for the graph.

    A proxy whose settings cannot be read keeps ``auto`` (its own prefix parsing still applies).
    """
    approaches: dict[str, str] = {}
    plugins: dict[str, ProxyPluginConfig] = {}
    for service in inventory.services:
        if service.kind != "optillm-proxy" or not service.is_live:
            continue
        try:
            settings = optillm_settings(facts_of(service.host), service)
        except FactUnavailable:
            continue
        approaches[service.name] = settings.values["approach"]
        if settings.proxy_plugin is not None:
            plugins[service.name] = settings.proxy_plugin
    return approaches, plugins


def graph_from_router_text(
    text: str,
    path: str,
    facts: HostFacts,
    env: Mapping[str, str],
    inventory: Inventory,
    litellm_service: str,
    optillm_approaches: Mapping[str, str] | None = None,
    proxy_plugins: Mapping[str, ProxyPluginConfig] | None = None,
) -> ModelGraph:
    """The graph of LiteLLM's router config as gathered on its host.

    ``include:`` entries are read from the gathered files (declare them in the inventory); one
    that was not gathered makes the graph unavailable with that cause.
    """
    try:
        router = yaml_text.safe_load(text)
    except yaml.YAMLError as exc:
        raise FactUnavailable(f"not valid YAML: {describe_yaml_error(path, exc)}") from None
    if not isinstance(router, dict):
        raise FactUnavailable(f"{path} is empty or not a mapping: LiteLLM refuses to start")
    by_path = {fact.path: fact for fact in facts.files.values() if fact.path}

    def read(included: str) -> str | None:
        fact = by_path.get(included)
        if fact is None:
            raise FactUnavailable(f"include {included} of {path} was not gathered (declare it in the inventory)")
        if not fact.exists:
            return None
        return fact.require()

    return build_model_graph(
        router,
        env,
        inventory,
        litellm_service,
        router_path=path,
        read=read,
        optillm_approaches=optillm_approaches,
        proxy_plugins=proxy_plugins,
    )
