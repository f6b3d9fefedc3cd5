"""LiteLLM 1.108.7's effective routing table, resolved from its config files the way it does.

Every rule cites the pinned wheel (``selftest/corpus/RULES.md`` has the full list):
includes (L1), ``os.environ/`` references (L2, L3), aliases (L4), wildcard model names (L5),
provider defaults when ``api_base`` is absent (L6) and fallbacks (L7).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from conformance.facts import yaml_text
from conformance.facts.model import FactUnavailable
from conformance.facts.parsers.errors import describe_yaml_error

ENV_PREFIX = "os.environ/"

# litellm/types/utils.py:LlmProviders (1.108.7): a "<provider>/" prefix of litellm_params.model.
KNOWN_PROVIDERS = frozenset(
    (
        "openai",
        "chatgpt",
        "openai_like",
        "jina_ai",
        "xai",
        "zai",
        "custom_openai",
        "text-completion-openai",
        "cohere",
        "cohere_chat",
        "clarifai",
        "anthropic",
        "anthropic_text",
        "bytez",
        "replicate",
        "reducto",
        "aws_textract",
        "runwayml",
        "aws_polly",
        "transcribe",
        "huggingface",
        "together_ai",
        "openrouter",
        "datarobot",
        "vertex_ai",
        "vertex_ai_beta",
        "gemini",
        "ai21",
        "baseten",
        "black_forest_labs",
        "azure",
        "azure_text",
        "azure_ai",
        "sagemaker",
        "sagemaker_chat",
        "sagemaker_nova",
        "bedrock",
        "vllm",
        "nlp_cloud",
        "petals",
        "oobabooga",
        "ollama",
        "ollama_chat",
        "deepinfra",
        "perplexity",
        "typesafe",
        "strands_decider",
        "laya",
        "bespoke",
        "mistral",
        "milvus",
        "groq",
        "a2a",
        "gigachat",
        "nvidia_nim",
        "nvidia_riva",
        "soniox",
        "cerebras",
        "nadir",
        "ai21_chat",
        "volcengine",
        "codestral",
        "text-completion-codestral",
        "dashscope",
        "qwencloud",
        "qwen_ai_platform",
        "modelscope",
        "moonshot",
        "publicai",
        "v0",
        "morph",
        "lambda_ai",
        "inception",
        "text-completion-inception",
        "deepseek",
        "sambanova",
        "maritalk",
        "voyage",
        "cloudflare",
        "xinference",
        "fireworks_ai",
        "friendliai",
        "featherless_ai",
        "watsonx",
        "scaledown",
        "watsonx_text",
        "triton",
        "predibase",
        "databricks",
        "databricks_agent",
        "empower",
        "github",
        "ragflow",
        "compactifai",
        "docker_model_runner",
        "custom",
        "litellm_proxy",
        "hosted_vllm",
        "tencent",
        "llamafile",
        "lm_studio",
        "galadriel",
        "nebius",
        "infinity",
        "deepgram",
        "elevenlabs",
        "novita",
        "aiohttp_openai",
        "langfuse",
        "humanloop",
        "topaz",
        "sap",
        "assemblyai",
        "azure_speech",
        "charity_engine",
        "github_copilot",
        "snowflake",
        "gradient_ai",
        "meta_llama",
        "nscale",
        "pg_vector",
        "s3_vectors",
        "valkey",
        "mongodb",
        "helicone",
        "hyperbolic",
        "recraft",
        "fal_ai",
        "stability",
        "heroku",
        "aiml",
        "cometapi",
        "oci",
        "auto_router",
        "vercel_ai_gateway",
        "edenai",
        "dotprompt",
        "manus",
        "wandb",
        "ovhcloud",
        "scaleway",
        "lemonade",
        "amazon_nova",
        "a2a_agent",
        "langgraph",
        "langflow",
        "microsoft_365_copilot",
        "minimax",
        "synthetic",
        "apertis",
        "nano-gpt",
        "poe",
        "chutes",
        "neosantara",
        "parasail",
        "xiaomi_mimo",
        "tensormesh",
        "libertai",
        "pinstripes",
        "cognition",
        "coralbricks",
        "cortecs",
        "scx-ai",
        "prism",
        "inferenceapis",
        "darkbloom",
        "meta",
        "sail",
        "reka",
        "litellm_agent",
        "cursor",
        "bedrock_mantle",
        "gdc",
    )
)

# Providers whose default server, with no api_base, is on the gateway host itself (L6):
# (variable read first, default URL, source location).
LOCAL_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "ollama": (
        "OLLAMA_API_BASE",
        "http://localhost:11434",
        "get_llm_provider_logic.py L708; ollama/common_utils.py L123",
    ),
    "ollama_chat": ("OLLAMA_API_BASE", "http://localhost:11434", "main.py L7169; ollama/chat/transformation.py L252"),
    "llamafile": ("LLAMAFILE_API_BASE", "http://127.0.0.1:8080/v1", "llamafile/chat/transformation.py L28"),
    "lemonade": ("LEMONADE_API_BASE", "http://localhost:8000/api/v1", "lemonade/chat/transformation.py L228"),
    "docker_model_runner": (
        "DOCKER_MODEL_RUNNER_API_BASE",
        "http://localhost:22088/engines/llama.cpp",
        "docker_model_runner/chat/transformation.py L62",
    ),
    "xinference": ("XINFERENCE_API_BASE", "http://127.0.0.1:9997/v1", "main.py L7325"),
    "langgraph": ("LANGGRAPH_API_BASE", "http://localhost:2024", "langgraph/chat/transformation.py L68"),
    "langflow": ("LANGFLOW_API_BASE", "http://localhost:7860", "langflow/chat/transformation.py L52"),
}
# Providers with no default at all: only their variable (else the call fails).
ENV_ONLY_BASES: dict[str, str] = {
    "hosted_vllm": "HOSTED_VLLM_API_BASE",
    "lm_studio": "LM_STUDIO_API_BASE",
    "litellm_proxy": "LITELLM_PROXY_API_BASE",
}
# Providers that run the model inside the LiteLLM process (main.py:_complete_vllm L4458).
IN_PROCESS = frozenset({"vllm"})
# OpenAI chat and text completion: litellm.api_base, OPENAI_BASE_URL, OPENAI_API_BASE, public (main.py L1712-1718).
OPENAI_CHAIN = frozenset({"openai", "text-completion-openai"})
OPENAI_PUBLIC = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Deployment:
    handle: str  # model_name as written (may contain "*")
    model: str  # litellm_params.model
    provider: str
    forwarded: str  # model name the provider receives
    api_base: str | None  # where LiteLLM sends it, None when nowhere (a failing call) or in-process
    base_source: str  # how api_base was decided
    in_process: bool = False
    unresolved: tuple[str, ...] = ()  # os.environ names that were unset

    @property
    def wildcard(self) -> bool:
        return "*" in self.handle


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # "alias", "fallback", "context_window_fallback", "content_policy_fallback"


@dataclass
class LiteLLMConfig:
    deployments: list[Deployment] = field(default_factory=list)
    alias_edges: list[Edge] = field(default_factory=list)
    fallback_edges: list[Edge] = field(default_factory=list)
    model_alias_map: dict[str, str] = field(default_factory=dict)
    model_group_alias: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def groups(self) -> list[str]:
        """Model groups clients can ask for by exact name (model_name without "*", and aliases)."""
        names = {d.handle for d in self.deployments if not d.wildcard}
        return sorted(names | set(self.model_group_alias) | set(self.model_alias_map))

    def served_name(self, requested: str) -> str:
        """common_utils.py:resolve_served_model L95-116: global alias map once, then model_group_alias once."""
        after_global = self.model_alias_map.get(requested, requested)
        return self.model_group_alias.get(after_global, after_global)

    def deployments_for(self, name: str) -> tuple[list[Deployment], str | None]:
        """Deployments serving ``name`` (already alias-resolved), and the wildcard pattern used if any.

        Exact model_name first; else the first wildcard pattern, most specific first
        (pattern_match_deployments.py route L139-173, get_pattern L232-244).
        """
        exact = [d for d in self.deployments if not d.wildcard and d.handle == name]
        if exact:
            return exact, None
        for pattern in sorted({d.handle for d in self.deployments if d.wildcard}, key=_specificity, reverse=True):
            regex = re.escape(pattern).replace(r"\*", "(.*)")
            for candidate in (name, f"{_inferred_provider(name)}/{name}"):
                match = re.match(regex, candidate)
                if match:
                    return [_substitute(d, match) for d in self.deployments if d.handle == pattern], pattern
        return [], None


def _specificity(pattern: str) -> tuple[int, int]:
    # pattern_match_deployments.py:calculate_pattern_specificity L28-44: longer, fewer wildcards first.
    return len(pattern), -sum(pattern.count(char) for char in "*+?\\^$|()")


def _inferred_provider(name: str) -> str:
    head = name.split("/", 1)[0]
    return head if "/" in name and head in KNOWN_PROVIDERS else "openai"


def _substitute(deployment: Deployment, match: re.Match[str]) -> Deployment:
    """set_deployment_model_name L184-230: each "*" of litellm_params.model takes one matched segment."""
    model = deployment.model
    segments = match.groups()
    if "*" in model:
        if len(segments) > model.count("*"):
            model = match.string
        else:
            for segment in segments:
                model = model.replace("*", segment, 1)
    _, forwarded = split_provider(model, None)
    return Deployment(
        match.string,
        model,
        deployment.provider,
        forwarded,
        deployment.api_base,
        deployment.base_source,
        deployment.in_process,
        deployment.unresolved,
    )


def split_provider(model: str, custom_llm_provider: str | None) -> tuple[str, str]:
    """get_llm_provider L230-279: (provider, model the provider receives)."""
    head, sep, rest = model.partition("/")
    if custom_llm_provider:
        return custom_llm_provider, rest if sep and head == custom_llm_provider else model
    if sep and head in KNOWN_PROVIDERS:
        return head, rest
    return "openai", model


# --- loading -----------------------------------------------------------------------------

Reader = Callable[[str], str | None]


def resolve_includes(root: Mapping[str, Any], root_path: str, read: Reader) -> tuple[dict[str, Any], list[str]]:
    """config_includes.py:resolve_includes L92-132 with resolve_include_file_path L11-42.

    ``read(path)`` gives a file's text or None when it does not exist. A missing include or a
    non-mapping one stops LiteLLM from starting (proxy_server.py L5644-5650): FactUnavailable.
    """
    config: dict[str, Any] = dict(root)
    loaded = [root_path]
    pending = [(entry, root_path) for entry in _include_entries(root, root_path)]
    while pending:
        entry, declared_in = pending.pop(0)
        declared_relative = posixpath.normpath(posixpath.join(posixpath.dirname(declared_in), entry))
        root_relative = posixpath.normpath(posixpath.join(posixpath.dirname(root_path), entry))
        text = read(declared_relative)
        location = declared_relative
        if text is None and root_relative != declared_relative:
            text, location = read(root_relative), root_relative
        if location in loaded:
            continue
        if text is None:
            raise FactUnavailable(
                f"include {entry!r} of {declared_in} cannot be read ({declared_relative}): "
                "LiteLLM would refuse to start (FileNotFoundError)"
            )
        try:
            included = yaml_text.safe_load(text)
        except yaml.YAMLError as exc:
            raise FactUnavailable(f"included file is not valid YAML: {describe_yaml_error(location, exc)}") from None
        if not isinstance(included, dict):
            raise FactUnavailable(f"included {location} is not a YAML mapping: LiteLLM would refuse to start")
        loaded.append(location)
        pending.extend((item, location) for item in _include_entries(included, location))
        for key, value in included.items():
            if key == "include":
                continue
            base = config.get(key)
            # _merged_value L53-56: lists are appended, everything else replaced whole.
            config[key] = [*base, *value] if isinstance(base, list) and isinstance(value, list) else value
    config.pop("include", None)
    return config, loaded


def _include_entries(config: Mapping[str, Any], where: str) -> list[str]:
    if "include" not in config:
        return []
    entries = config["include"]
    if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        raise FactUnavailable(f"{where}: 'include' must be a list of file paths (LiteLLM refuses to start)")
    return list(entries)


def resolve_env_references(value: Any, env: Mapping[str, str], unset: set[str]) -> Any:
    """proxy_server.py:_check_for_os_environ_vars L5860-5899 with get_secret: unset -> None."""
    if isinstance(value, dict):
        return {key: resolve_env_references(item, env, unset) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_env_references(item, env, unset) if isinstance(item, dict) else item for item in value]
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        if name not in env:
            unset.add(name)
            return None
        return env[name]
    return value


def effective_api_base(
    provider: str, api_base: str | None, env: Mapping[str, str], global_api_base: str | None
) -> tuple[str | None, str, bool]:
    """(api_base, how it was decided, runs in-process) for a deployment (L6)."""
    if provider in IN_PROCESS:
        return None, "vllm/ runs the model inside the LiteLLM process (main.py:_complete_vllm L4458)", True
    if api_base:
        return api_base, "api_base", False
    if provider in LOCAL_DEFAULTS:
        variable, default, where = LOCAL_DEFAULTS[provider]
        if env.get(variable):
            return env[variable], f"no api_base: {variable} from the environment ({where})", False
        return default, f"no api_base: {provider}'s default server on the gateway host ({where})", False
    if provider in ENV_ONLY_BASES:
        variable = ENV_ONLY_BASES[provider]
        if env.get(variable):
            return env[variable], f"no api_base: {variable} from the environment", False
        return None, f"no api_base and {variable} unset: {provider} has no default, the call fails", False
    if provider in OPENAI_CHAIN:
        for source, value in (
            ("litellm_settings.api_base", global_api_base),
            ("OPENAI_BASE_URL", env.get("OPENAI_BASE_URL")),
            ("OPENAI_API_BASE", env.get("OPENAI_API_BASE")),
        ):
            if value:
                return value, f"no api_base: {source} (main.py L1712-1718)", False
        return OPENAI_PUBLIC, "no api_base: the public OpenAI API (main.py L1717)", False
    return None, f"no api_base: {provider}'s public API", False


def tabulate(config: Mapping[str, Any], env: Mapping[str, str], files: list[str] | None = None) -> LiteLLMConfig:
    unset: set[str] = set()
    sections = {key: value for key, value in config.items() if key != "model_list"}
    resolved = resolve_env_references(sections, env, unset)
    result = LiteLLMConfig(files=list(files or []))
    litellm_settings = resolved.get("litellm_settings") if isinstance(resolved.get("litellm_settings"), dict) else {}
    router_settings = resolved.get("router_settings") if isinstance(resolved.get("router_settings"), dict) else {}
    global_base = litellm_settings.get("api_base") if isinstance(litellm_settings.get("api_base"), str) else None
    entries = config.get("model_list") or []
    if not isinstance(entries, list):
        raise FactUnavailable("model_list is not a list")
    for raw_entry in entries:
        deployment_unset: set[str] = set()
        entry = resolve_env_references(raw_entry, env, deployment_unset) if isinstance(raw_entry, dict) else raw_entry
        unset |= deployment_unset
        params = entry.get("litellm_params") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not entry.get("model_name") or not isinstance(params, dict):
            # Named by its keys only: an entry's values include api_key.
            keys = (
                ", ".join(sorted(str(key) for key in raw_entry))
                if isinstance(raw_entry, dict)
                else type(raw_entry).__name__
            )
            result.notes.append(f"ignored model_list entry without model_name/litellm_params (keys: {keys})"[:200])
            continue
        model = params.get("model")
        if not isinstance(model, str) or not model:
            raise FactUnavailable(
                f"handle {entry['model_name']!r} has no model"
                + (f" ({', '.join(sorted(deployment_unset))} unset)" if deployment_unset else "")
                + ": LiteLLM cannot route it"
            )
        custom = params.get("custom_llm_provider")
        provider, forwarded = split_provider(model, custom if isinstance(custom, str) else None)
        base = params.get("api_base") or params.get("base_url")
        api_base, source, in_process = effective_api_base(
            provider, base if isinstance(base, str) else None, env, global_base
        )
        if deployment_unset:
            source += f" [unset: {', '.join(sorted(deployment_unset))}]"
        result.deployments.append(
            Deployment(
                str(entry["model_name"]),
                model,
                provider,
                forwarded,
                api_base,
                source,
                in_process,
                tuple(sorted(deployment_unset)),
            )
        )
    for section_name, section in (("litellm_settings", litellm_settings), ("router_settings", router_settings)):
        key = "model_alias_map" if section_name == "litellm_settings" else "model_group_alias"
        aliases = section.get(key) or {}
        if not isinstance(aliases, dict):
            result.notes.append(f"{section_name}.{key} is not a mapping: ignored")
            continue
        table = result.model_alias_map if key == "model_alias_map" else result.model_group_alias
        for alias, target in aliases.items():
            # resolve_model_group_alias L86-92: a string, or {"model": target}.
            name = target.get("model") if isinstance(target, dict) else target
            if isinstance(name, str) and name:
                table[str(alias)] = name
                result.alias_edges.append(Edge(str(alias), name, "alias"))
    for kind, key in (
        ("fallback", "fallbacks"),
        ("context_window_fallback", "context_window_fallbacks"),
        ("content_policy_fallback", "content_policy_fallbacks"),
    ):
        # router.py L1440-1463: router_settings wins, else litellm_settings (litellm.<key>).
        chains = router_settings.get(key) or litellm_settings.get(key) or []
        _add_fallbacks(result, chains, kind, key)
    defaults = router_settings.get("default_fallbacks") or litellm_settings.get("default_fallbacks")
    if defaults:
        if isinstance(defaults, str):
            raise FactUnavailable("default_fallbacks is a string: LiteLLM refuses it (router.py L1450-1453)")
        _add_fallbacks(result, [{"*": defaults}], "fallback", "default_fallbacks")
    if unset:
        result.notes.append(f"os.environ references unset (they resolve to None): {', '.join(sorted(unset))}")
    return result


def _add_fallbacks(result: LiteLLMConfig, chains: Any, kind: str, key: str) -> None:
    if not isinstance(chains, list):
        result.notes.append(f"{key} is not a list: ignored")
        return
    for item in chains:
        if isinstance(item, dict):
            for source, targets in item.items():
                for target in targets if isinstance(targets, list) else [targets]:
                    if isinstance(target, str):
                        result.fallback_edges.append(Edge(str(source), target, kind))
        elif isinstance(item, str):
            # get_fallback_model_group L606-607: a bare string is a fallback for every group.
            result.fallback_edges.append(Edge("*", item, kind))
