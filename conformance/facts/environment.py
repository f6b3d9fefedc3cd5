"""Effective settings of a service, computed the way the service itself computes them.

systemd: ``Environment=`` first, then each ``EnvironmentFile=`` in order (a file's values
override ``Environment=``); launchd: the job's ``EnvironmentVariables``. OptiLLM then takes
each setting from its command-line flag, else its ``OPTILLM_*`` variable, else its default,
and its proxy plugin reads ``~/.optillm/proxy_config.yaml`` from the *service user's* home
with ``${VAR}``/``${VAR:-default}`` substitution from that environment.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from conformance.facts.model import FactUnavailable, HostFacts
from conformance.facts.optillm_config import (
    PACKAGED_PROXY_CONFIG,
    ProxyPluginConfig,
    choose_client,
    request_model,
    resolve_proxy_plugin,
)
from conformance.facts.parsers import ParseError, parse_env_file
from conformance.inventory.model import Port, Service
from conformance.paths import file_key, unit_of
from conformance.redact import register_env_values, strip_userinfo

# OptiLLM 0.3.x flags and the variables they fall back to (llm-services.md 2.3).
OPTILLM_FLAGS: dict[str, tuple[str, str]] = {
    "host": ("OPTILLM_HOST", "127.0.0.1"),
    "port": ("OPTILLM_PORT", "8000"),
    "base_url": ("OPTILLM_BASE_URL", ""),
    "approach": ("OPTILLM_APPROACH", "auto"),
    "model": ("OPTILLM_MODEL", "gpt-4o-mini"),
    "optillm_api_key": ("OPTILLM_API_KEY", ""),
}


def service_environment(facts: HostFacts, service: Service, port: Port | None = None) -> dict[str, str]:
    """The environment the service's (or instance's) process starts with."""
    unit_ref = unit_of(service, port)
    if unit_ref is None:
        raise FactUnavailable(f"{service.name} declares no unit, so its environment is unknown")
    unit = facts.unit(unit_ref[1])
    env = dict(unit.environment)
    for path, optional in unit.environment_files:
        fact = _file_by_path(facts, path)
        if fact is None or fact.content is None:
            if optional and (fact is None or not fact.exists):
                continue
            why = fact.error if fact else "not gathered"
            raise FactUnavailable(
                f"cannot read EnvironmentFile {path} of {unit.name}: {why}",
                refused_on=fact.refused_on if fact else None,
            )
        try:
            values = parse_env_file(fact.content, path)
        except ParseError as exc:
            where = f", line {exc.line_no}" if exc.line_no else ""
            raise FactUnavailable(f"EnvironmentFile {path}{where} does not parse: {exc.reason}", file=path) from None
        register_env_values(values)
        env.update(values)
    return env


def instance_environment(facts: HostFacts, service: Service, port: Port) -> dict[str, str]:
    env = service_environment(facts, service, port)
    if port.env_file:
        fact = facts.files.get(file_key(service.name, port.env_file))
        unit = facts.unit(unit_of(service, port)[1]) if unit_of(service, port) else None  # type: ignore[index]
        referenced = (
            unit is not None and fact is not None and any(fact.path == path for path, _ in unit.environment_files)
        )
        if fact is not None and fact.content is not None and not referenced:
            # launchd has no EnvironmentFile; an instance env file is then read by the
            # wrapper the plist runs, after the plist's own variables.
            try:
                values = parse_env_file(fact.content, fact.path or port.env_file)
            except ParseError as exc:
                # By line number only: the line of an env file may hold a key (ParseError
                # from parse_env_file never carries the text, and this says so explicitly).
                where = f", line {exc.line_no}" if exc.line_no else ""
                raise FactUnavailable(
                    f"env file {exc.source}{where} does not parse: {exc.reason}", file=fact.path or port.env_file
                ) from None
            register_env_values(values)
            env.update(values)
    return env


def _file_by_path(facts: HostFacts, path: str) -> Any:
    for fact in facts.files.values():
        if fact.path == path:
            return fact
    return None


def service_home(facts: HostFacts, service: Service, env: dict[str, str] | None = None) -> str | None:
    if env and env.get("HOME"):
        return env["HOME"]
    return facts.user_homes.get(_service_user(facts, service) or "root")


def _service_user(facts: HostFacts, service: Service) -> str | None:
    if service.user is None and service.unit and service.unit.name in facts.units:
        return facts.units[service.unit.name].user
    return service.user


def hf_cache_of(env: dict[str, str], facts: HostFacts, service: Service) -> str | None:
    """huggingface_hub's cache resolution order: HF_HUB_CACHE, HF_HOME/hub, XDG, ~."""
    if env.get("HF_HUB_CACHE"):
        return env["HF_HUB_CACHE"]
    if env.get("HUGGINGFACE_HUB_CACHE"):
        return env["HUGGINGFACE_HUB_CACHE"]
    if env.get("HF_HOME"):
        return posixpath.join(env["HF_HOME"], "hub")
    if env.get("XDG_CACHE_HOME"):
        return posixpath.join(env["XDG_CACHE_HOME"], "huggingface", "hub")
    home = service_home(facts, service, env)
    return posixpath.join(home, ".cache", "huggingface", "hub") if home else None


@dataclass
class OptiLLMSettings:
    values: dict[str, str]
    sources: dict[str, str]  # setting -> "flag --x", "env OPTILLM_X (file)", "default"
    env: dict[str, str]
    client: str  # which upstream client OptiLLM will build (local | cerebras | openai | azure | litellm-wrapper)
    providers: list[dict[str, Any]] = field(default_factory=list)
    proxy_config_path: str | None = None
    proxy_config_error: str | None = None
    proxy_plugin: ProxyPluginConfig | None = None

    @property
    def local_inference(self) -> bool:
        return self.client == "local"

    @property
    def proxy_by_default(self) -> bool:
        """The server's own approach puts the proxy plugin on every request (server.py L768-774)."""
        return "proxy" in request_model("m", self.values["approach"]).approaches


def _flag_values(argv: tuple[str, ...]) -> dict[str, str]:
    flags: dict[str, str] = {}
    args = list(argv[1:])
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            name = name.replace("-", "_")
            if not eq and index + 1 < len(args) and not args[index + 1].startswith("--"):
                value = args[index + 1]
                index += 1
            flags[name] = value if (eq or value) else "true"
        index += 1
    return flags


def optillm_settings(facts: HostFacts, service: Service, port: Port | None = None) -> OptiLLMSettings:
    env = service_environment(facts, service, port)
    unit_ref = unit_of(service, port)
    assert unit_ref is not None
    unit = facts.unit(unit_ref[1])
    flags = _flag_values(unit.argv)
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for setting, (variable, default) in OPTILLM_FLAGS.items():
        if setting in flags:
            values[setting], sources[setting] = flags[setting], f"flag --{setting.replace('_', '-')}"
        elif variable in env:
            values[setting], sources[setting] = env[variable], f"environment {variable}"
        else:
            values[setting], sources[setting] = default, "default"
    # get_config() (server.py L81-128): OPTILLM_API_KEY in the *environment* switches on local
    # inference, whatever the base URL says; a --optillm-api-key flag only protects the API.
    settings = OptiLLMSettings(values, sources, env, choose_client(env))
    _load_proxy_config(facts, service, settings)
    return settings


def _load_proxy_config(facts: HostFacts, service: Service, settings: OptiLLMSettings) -> None:
    """The proxy plugin's providers (plugins/proxy/config.py:ProxyConfig.load L21-76).

    The plugin ships with every 0.3.20 install and any request can select it (a ``proxy-``
    model prefix, ``optillm_approach``), so its providers are read whatever ``--approach`` is.
    """
    home = service_home(facts, service, settings.env)
    by_path = {fact.path: fact for fact in facts.files.values() if fact.path}

    def read(path: str) -> str | None:
        fact = by_path.get(path)
        if fact is None or not fact.exists:
            return None  # not declared (so not gathered) or absent: OptiLLM looks further
        if fact.content is None:
            raise OSError(fact.error or "unreadable")
        return fact.content

    if home is None:
        user = _service_user(facts, service) or "root"
        settings.proxy_config_error = (
            f"home directory of {user!r} (the service user) is unknown: {facts.account_unknown(user)}"
        )
        return
    apply_proxy_plugin(settings, resolve_proxy_plugin(home, read, settings.env))


def apply_proxy_plugin(settings: OptiLLMSettings, plugin: ProxyPluginConfig) -> None:
    settings.proxy_plugin = plugin
    settings.proxy_config_path = plugin.path or PACKAGED_PROXY_CONFIG
    settings.proxy_config_error = plugin.problem
    for provider in plugin.providers:
        settings.providers.append(
            {
                "name": provider.name,
                "base_url": strip_userinfo(provider.base_url) if provider.base_url else provider.base_url,
                "fallback_only": provider.fallback_only,
            }
        )
