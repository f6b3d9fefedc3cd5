"""OptiLLM 0.3.20's request routing: approach prefixes, the upstream client, the proxy plugin.

Rules O1-O6 of ``selftest/corpus/RULES.md``, each citing the pinned wheel.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from conformance.facts import yaml_text
from conformance.facts.parsers.errors import describe_yaml_error
from conformance.redact import register_structure

# server.py L201-202.
KNOWN_APPROACHES = frozenset(
    (
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
    )
)
# SLUG of each optillm/plugins/*_plugin.py in the 0.3.20 wheel (load_plugins, server.py L287-340).
PLUGIN_SLUGS = frozenset(
    (
        "coc",
        "compact",
        "deep_research",
        "deepthink",
        "executecode",
        "genselect",
        "json",
        "longcepo",
        "majority_voting",
        "mcp",
        "memory",
        "privacy",
        "proxy",
        "readurls",
        "router",
        "spl",
        "web_search",
    )
)
# plugins/proxy/example_config.yaml of the wheel: what the proxy plugin reads when the service
# user's HOME has no proxy_config.yaml/.yml (config.py L37-47).
PACKAGED_PROXY_CONFIG = "optillm/plugins/proxy/example_config.yaml (inside the installed package)"


@dataclass(frozen=True)
class ParsedModel:
    operation: str  # SINGLE | AND | OR
    approaches: tuple[str, ...]
    model: str


def parse_combined_approach(model: str, plugins: frozenset[str] = PLUGIN_SLUGS) -> ParsedModel:
    """Models server.py:parse_combined_approach L362-394 (OptiLLM 0.3.20), rule for rule.

    A part containing "&" or "|" is consumed as approaches whatever its pieces are.
    """
    if model == "auto":
        return ParsedModel("SINGLE", ("none",), model)
    approaches: list[str] = []
    operation = "SINGLE"
    model_parts: list[str] = []
    parsing = True
    for part in model.split("-"):
        if parsing:
            if part in KNOWN_APPROACHES or part in plugins:
                approaches.append(part)
            elif "&" in part:
                operation = "AND"
                approaches.extend(part.split("&"))
            elif "|" in part:
                operation = "OR"
                approaches.extend(part.split("|"))
            else:
                parsing = False
                model_parts.append(part)
        else:
            model_parts.append(part)
    if not approaches:
        return ParsedModel("SINGLE", ("none",), "-".join(model_parts))
    return ParsedModel(operation, tuple(approaches), "-".join(model_parts))


def request_model(model: str, server_approach: str, plugins: frozenset[str] = PLUGIN_SLUGS) -> ParsedModel:
    """server.py:proxy L752-774: a non-auto server approach is prefixed, then the prefix parsed."""
    prefixed = model if server_approach == "auto" else f"{server_approach}-{model}"
    return parse_combined_approach(prefixed, plugins)


def choose_client(env: Mapping[str, str]) -> str:
    """server.py:get_config L81-128: the first variable set (non-empty) decides the default client."""
    if env.get("OPTILLM_API_KEY"):
        return "local"
    if env.get("CEREBRAS_API_KEY"):
        return "cerebras"
    if env.get("OPENAI_API_KEY"):
        return "openai"
    if env.get("AZURE_OPENAI_API_KEY"):
        return "azure"
    return "litellm-wrapper"


def interpolate(value: Any, env: Mapping[str, str], unset: set[str]) -> Any:
    """plugins/proxy/config.py:_interpolate_env_vars L84-123, on parsed values.

    ``${VAR:-default}`` is env.get(VAR, default) (an empty VAR stays empty); ``${VAR}`` unset stays literal.
    """
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if ":-" in expression:
                name, default = expression.split(":-", 1)
                return env.get(name.strip(), default)
            name = expression.strip()
            if name not in env:
                unset.add(name)
                return match.group(0)
            return env[name]

        return re.sub(r"\$\{([^}]+)\}", replace, value)
    if isinstance(value, dict):
        return {key: interpolate(item, env, unset) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env, unset) for item in value]
    return value


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    fallback_only: bool
    model_map: Mapping[str, str]


@dataclass
class ProxyPluginConfig:
    path: str | None  # the file OptiLLM reads, None when the packaged example is used
    providers: list[Provider] = field(default_factory=list)
    problem: str | None = None  # why the file gives no providers (load failed)
    unset: tuple[str, ...] = ()
    packaged: bool = False


# (path -> text or None when it does not exist; raises OSError when it exists but cannot be read)
FileReader = Callable[[str], str | None]


def resolve_proxy_plugin(home: str | None, read: FileReader, env: Mapping[str, str]) -> ProxyPluginConfig:
    """plugins/proxy/config.py:ProxyConfig.load L21-76: the first existing of
    ~/.optillm/proxy_config.yaml, ~/.optillm/proxy_config.yml, the packaged example."""
    text: str | None = None
    path: str | None = None
    names = ("proxy_config.yaml", "proxy_config.yml")
    for candidate in (posixpath.normpath(posixpath.join(home, ".optillm", name)) for name in names) if home else ():
        try:
            found = read(candidate)
        except OSError as exc:
            # exists but unreadable: open() raises, load() returns the minimal config (no providers).
            return ProxyPluginConfig(candidate, problem=f"{candidate} cannot be read ({exc}): no providers")
        if found is not None:
            text, path = found, candidate
            break
    if text is None:
        return packaged_proxy_config(env)
    return parse_proxy_config(text, path or "", env)


def packaged_proxy_config(env: Mapping[str, str]) -> ProxyPluginConfig:
    from importlib.resources import files

    text = files("conformance.facts").joinpath("optillm_example_proxy_config.yaml").read_text()
    config = parse_proxy_config(text, PACKAGED_PROXY_CONFIG, env)
    config.path, config.packaged = None, True
    return config


def parse_proxy_config(text: str, path: str, env: Mapping[str, str]) -> ProxyPluginConfig:
    """load L55-76, _apply_defaults L126-178, _validate_config L181-199: any failure -> no providers."""
    try:
        data = yaml_text.safe_load(text) or {}
    except yaml.YAMLError as exc:
        # Position and reason only: PyYAML's message quotes the line, which may hold a key.
        return ProxyPluginConfig(path, problem=f"invalid YAML ({describe_yaml_error(path, exc)}): no providers")
    if not isinstance(data, dict):
        return ProxyPluginConfig(path, problem=f"{path}: not a mapping: no providers")
    unset: set[str] = set()
    data = interpolate(data, env, unset)
    register_structure(data)  # api_key values and URL passwords of the providers
    raw = data.get("providers") or []
    if not isinstance(raw, list):
        return ProxyPluginConfig(path, problem=f"{path}: providers is not a list: no providers", unset=tuple(unset))
    providers: list[Provider] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            return ProxyPluginConfig(path, problem=f"{path}: provider {index} is not a mapping: no providers")
        name = str(item.get("name", f"provider_{index}"))
        for required in ("base_url", "api_key"):
            if required not in item:
                return ProxyPluginConfig(
                    path,
                    problem=f"{path}: provider {name} missing {required}: OptiLLM loads no providers",
                    unset=tuple(sorted(unset)),
                )
        raw_map = item.get("model_map")
        model_map: dict[Any, Any] = raw_map if isinstance(raw_map, dict) else {}
        providers.append(
            Provider(
                name,
                str(item["base_url"]),
                bool(item.get("fallback_only", False)),
                {str(key): str(value) for key, value in model_map.items()},
            )
        )
    return ProxyPluginConfig(path, providers, unset=tuple(sorted(unset)))
