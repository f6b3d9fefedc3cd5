"""The model graph: where each LiteLLM handle really goes.

Nodes are ``litellm:<handle>`` and ``optillm:<model>``; leaves are ``(endpoint, model)``
where endpoint is ``<host>:<port>`` in inventory names when the URL hits a declared port,
or the URL's own netloc otherwise. A handle whose ``api_base`` is LiteLLM itself or the
OptiLLM proxy continues at that service under the forwarded model name; this is how a
routing loop (LiteLLM -> OptiLLM -> LiteLLM -> ...) becomes a cycle we can spell out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from conformance.inventory.model import Inventory, Port
from conformance.redact import register_structure, strip_userinfo

# LiteLLM provider prefixes: "openai/x" sends model "x" to an OpenAI-compatible api_base.
PROVIDER_PREFIXES = {
    "openai",
    "hosted_vllm",
    "text-completion-openai",
    "openai_like",
    "custom_openai",
    "ollama",
    "ollama_chat",
    "huggingface",
    "azure",
    "anthropic",
    "vllm",
    "lm_studio",
    "litellm_proxy",
}
# OptiLLM approach slugs that may prefix a model name ("moa-gpt-4o" runs moa on gpt-4o).
OPTILLM_APPROACHES = {
    "none",
    "mcts",
    "bon",
    "moa",
    "rto",
    "z3",
    "self_consistency",
    "pvg",
    "rstar",
    "cot_reflection",
    "plansearch",
    "leap",
    "re2",
    "cepo",
    "mars",
    "proxy",
    "majority_voting",
    "genselect",
    "deepthink",
}


def strip_provider(model: str) -> str:
    head, sep, rest = model.partition("/")
    return rest if sep and head in PROVIDER_PREFIXES else model


def strip_approach(model: str) -> str:
    head, sep, rest = model.partition("-")
    return rest if sep and head in OPTILLM_APPROACHES else model


@dataclass
class ModelGraph:
    edges: dict[str, list[str]] = field(default_factory=dict)
    leaves: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    local_targets: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def handles(self) -> list[str]:
        return sorted(
            node.split(":", 1)[1] for node in self.edges if node.startswith("litellm:") and node in self._declared
        )

    _declared: set[str] = field(default_factory=set)

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

    def terminals(self, handle: str) -> list[tuple[str, str]]:
        return sorted({leaf for node in self._reachable(handle) for leaf in self.leaves.get(node, [])})

    def dangling(self, handle: str) -> list[str]:
        """LiteLLM handles the route reaches that router.yaml does not declare."""
        return sorted(
            node for node in self._reachable(handle) if node.startswith("litellm:") and node not in self._declared
        )

    def local_inference_handles(self) -> list[tuple[str, str]]:
        return list(self.local_targets)

    def describe(self) -> str:
        lines = []
        for node in sorted(self.edges):
            targets = [*self.edges[node], *(f"{endpoint} [{model}]" for endpoint, model in self.leaves.get(node, []))]
            lines.append(f"{node} -> {', '.join(targets) or '(nothing)'}")
        return "\n".join(lines + self.notes)


def _endpoint_port(inventory: Inventory, gateway_host: str, url: str) -> tuple[Port | None, str]:
    parts = urlsplit(url)
    hostname = (parts.hostname or "").lower()
    port_number = parts.port or (443 if parts.scheme == "https" else 80)
    local = hostname in {"localhost", "127.0.0.1", "::1"} or hostname.startswith("127.")
    for port in inventory.ports:
        if port.port != port_number:
            continue
        host = inventory.host(port.host)
        names = {value.lower() for value in (host.address, host.hostname) if value}
        if (local and port.host == gateway_host) or hostname in names:
            return port, f"{port.host}:{port.port}"
    # The host and port only: a netloc keeps "user:password@".
    where = f"{parts.hostname}:{parts.port}" if parts.hostname and parts.port else parts.hostname
    return None, where or strip_userinfo(url)


def build_model_graph(
    router: Mapping[str, Any], env: Mapping[str, str], inventory: Inventory, litellm_service: str
) -> ModelGraph:
    """Build the graph from LiteLLM's router.yaml (``os.environ/NAME`` resolved from ``env``)."""
    register_structure(router)  # api_key, master_key and URL passwords of router.yaml
    graph = ModelGraph()
    litellm = inventory.service(litellm_service)
    proxy_upstreams = {
        service.name: service.upstream_service for service in inventory.services if service.kind == "optillm-proxy"
    }
    entries = router.get("model_list") or []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("model_name"):
            graph._declared.add(f"litellm:{entry['model_name']}")
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("model_name"):
            # Never repr an entry: its litellm_params hold api_key.
            keys = sorted(map(str, entry)) if isinstance(entry, dict) else [type(entry).__name__]
            graph.notes.append(f"ignored model_list entry without model_name (keys: {', '.join(keys)})"[:200])
            continue
        node = f"litellm:{entry['model_name']}"
        graph.edges.setdefault(node, [])
        params = entry.get("litellm_params") or {}
        model = str(params.get("model", ""))
        api_base = params.get("api_base") or params.get("base_url")
        if isinstance(api_base, str) and api_base.startswith("os.environ/"):
            api_base = env.get(api_base.split("/", 1)[1], "")
        forwarded = strip_provider(model)
        if not api_base:
            provider = model.partition("/")[0] if "/" in model else "openai"
            graph.leaves.setdefault(node, []).append((f"(public {provider} API)", forwarded))
            continue
        port, endpoint = _endpoint_port(inventory, litellm.host, str(api_base))
        service = inventory.service(port.service) if port else None
        if service is not None and service.kind == "litellm":
            graph.edges[node].append(f"litellm:{forwarded}")
        elif service is not None and service.kind == "optillm-proxy":
            optillm_node = f"optillm:{forwarded}"
            graph.edges[node].append(optillm_node)
            upstream = proxy_upstreams.get(service.name)
            graph.edges.setdefault(optillm_node, [])
            if upstream and inventory.service(upstream).kind == "litellm":
                target = f"litellm:{strip_approach(forwarded)}"
                if target not in graph.edges[optillm_node]:
                    graph.edges[optillm_node].append(target)
        else:
            graph.leaves.setdefault(node, []).append((endpoint, forwarded))
            target_host = port.host if port else None
            on_gateway = target_host == litellm.host or (port is None and _is_loopback_url(str(api_base)))
            if on_gateway and (service is None or service.tier != "gateway"):
                graph.local_targets.append((entry["model_name"], f"{strip_userinfo(str(api_base))} [{forwarded}]"))
    return graph


def _is_loopback_url(url: str) -> bool:
    hostname = (urlsplit(url).hostname or "").lower()
    return hostname in {"localhost", "::1"} or hostname.startswith("127.")
