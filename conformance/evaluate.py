"""Wiring between a case and its pure check: fetch the facts and probes the check needs,
call it, and attribute "could not check" to its root cause.

Each function here is what one suite test runs. They gather inputs from the Runtime (which
caches per host), never decide pass/fail themselves, and translate a missing fact into a
broken Result that names the cause and, when known, the root cause it is blocked by.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from conformance.cases import Case, host_root_subject, unit_subject
from conformance.checks import contracts, health, hosts
from conformance.facts.environment import (
    hf_cache_of,
    instance_environment,
    optillm_settings,
    service_environment,
)
from conformance.facts.gather import file_key, unit_of, venv_path
from conformance.facts.model import FactUnavailable, HostFacts
from conformance.facts.routing import ModelGraph, graph_from_router_text, optillm_routes
from conformance.inventory.model import HealthCheck, Inventory, Service
from conformance.probes import ProbeResult, url_for
from conformance.results import Outcome, Result, broken, passed, skipped, violated
from conformance.runtime import Runtime
from conformance.transport.connection import HostUnavailable

Evaluator = Callable[[Case], Result]


def run(case: Case, evaluator: Evaluator, needs_running: bool = False) -> Result:
    """Evaluate a case: skip what is not live, attribute unreachable hosts to one cause."""
    inventory = case.inventory
    subject = case.subject(inventory)
    if case.service is not None and not case.service.is_live and case.check != "reserved-port-free":
        return skipped(f"{case.service.name} is {case.service.state}: {case.service.state_reason or 'not live'}").about(
            subject
        )
    try:
        if needs_running:
            blocker = _stopped_service(case)
            if blocker is not None:
                return blocker.about(subject)
        result = evaluator(case)
    except HostUnavailable as exc:
        root = host_root_subject(inventory, exc.host)
        is_root = case.check == "host-reachable" and case.host == exc.host
        result = broken(
            f"{exc.host} could not be checked: {exc.cause}", blocked_by=None if is_root else root.fingerprint
        )
    except FactUnavailable as exc:
        result = broken(f"could not check: {exc}")
    return result.about(subject)


def _stopped_service(case: Case) -> Result | None:
    """A broken result when the case's service is known to be down (its unit check owns it)."""
    service = case.service
    if service is None:
        return None
    unit_ref = unit_of(service, case.port)
    if unit_ref is None:
        return None
    facts = case.runtime.facts(service.host) if case.runtime else None
    if facts is None or unit_ref[1] not in facts.units:
        return None
    unit = facts.units[unit_ref[1]]
    if unit.active:
        return None
    unit_record = case.port.unit if case.port and case.port.unit else service.unit
    assert unit_record is not None
    root = unit_subject(case.inventory, service, case.port if case.port and case.port.unit else None, unit_record)
    return broken(
        f"{service.name} is down ({unit.name}: {unit.state_text}), so this cannot be checked",
        blocked_by=root.fingerprint,
    )


def _facts(case: Case, host: str | None = None) -> HostFacts:
    assert case.runtime is not None
    return case.runtime.facts(host or case.host)


# --- tests_hosts -----------------------------------------------------------------------


def host_identity(case: Case) -> Result:
    return hosts.host_identity(case.host_record, _facts(case))


def unit_state(case: Case) -> Result:
    assert case.unit is not None
    return hosts.unit_installed_enabled_active(case.unit, _facts(case))


def service_user(case: Case) -> Result:
    assert case.service is not None
    facts = _facts(case)
    units: list[tuple[str, int | None]] = []
    for port in [None, *case.inventory.ports_of(case.service.name)]:
        unit_ref = unit_of(case.service, port)
        if unit_ref and (port is None or port.state == "active") and unit_ref[1] not in [name for name, _ in units]:
            units.append((unit_ref[1], facts.unit(unit_ref[1]).main_pid))
    if not units:
        raise FactUnavailable(f"{case.service.name} declares no unit")
    return hosts.service_runs_as_declared_user(case.service, units, facts)


def port_served_by_unit(case: Case) -> Result:
    assert case.port is not None and case.unit is not None
    return hosts.listener_belongs_to_unit(case.port, case.unit, _facts(case))


def port_binding(case: Case) -> Result:
    assert case.port is not None
    return hosts.port_bound_as_declared(case.port, _facts(case))


def reserved_port(case: Case) -> Result:
    assert case.port is not None
    return hosts.reserved_port_free(case.port, _facts(case))


def no_unexpected_listeners(case: Case) -> Result:
    return hosts.unexpected_listeners(case.host_record, case.inventory, _facts(case))


def file_parses(case: Case) -> Result:
    assert case.file is not None and case.service is not None
    declared, file_format, key = case.file
    return hosts.declared_file_parses(case.service, declared, file_format, _facts(case), key)


# --- tests_contracts -------------------------------------------------------------------


def _litellm_for(case: Case) -> Service:
    inventory = case.inventory
    if case.service is not None and case.service.kind == "litellm":
        return case.service
    return next(service for service in inventory.services if service.kind == "litellm")


def model_graph(case: Case) -> tuple[ModelGraph, HostFacts]:
    litellm = _litellm_for(case)
    facts = _facts(case, litellm.host)
    router_file = next((file for file in litellm.files if file.role == "router_config"), None)
    if router_file is None:
        raise FactUnavailable(f"{litellm.name} declares no router_config file")
    fact = facts.file(file_key(litellm.name, router_file.path))
    env = service_environment(facts, litellm)
    # issue 10: LiteLLM's own resolution (includes, os.environ/, aliases, fallbacks, defaults)
    # and each OptiLLM proxy's approach prefix and proxy-plugin model_map.
    approaches, plugins = optillm_routes(case.inventory, lambda host: _facts(case, host))
    graph = graph_from_router_text(
        fact.require(), fact.path or router_file.path, facts, env, case.inventory, litellm.name, approaches, plugins
    )
    return graph, facts


def clients_call_litellm_only(case: Case) -> Result:
    assert case.runtime is not None and case.service is not None
    inventory = case.inventory
    host = case.host_record
    if not host.address:
        raise FactUnavailable(f"no address for {host.name}")
    litellm_port = next(port for port in inventory.ports_of(case.service.name) if port.state == "active")
    litellm_probe = case.runtime.lan_get(url_for(host.address, litellm_port.port, "/health/liveliness"))
    local = [
        (port, case.runtime.lan_connect(host.address, port.port))
        for port in inventory.ports
        if port.host == host.name and port.exposure == "local"
    ]
    facts = _facts(case)
    declared = {port.port for port in inventory.ports if port.host == host.name}
    allowed = {rule.port for rule in host.allowed_listeners}
    strays: list[tuple[str, ProbeResult]] = []
    for listener in facts.require_listeners():
        if listener.port in declared or listener.port in allowed or hosts._is_loopback(listener):
            continue
        label = f"undeclared {listener.process or 'listener'} on port {listener.port}"
        if not any(existing == label for existing, _ in strays):
            strays.append((label, case.runtime.lan_connect(host.address, listener.port)))
    return contracts.clients_call_litellm_only(host, litellm_probe, local, strays, facts)


def optillm_local_only(case: Case) -> Result:
    assert case.runtime is not None and case.port is not None
    host = case.host_record
    facts = _facts(case)
    check = next(
        (item for item in case.inventory.health_checks if item.port == case.port.port and item.vantage == "loopback"),
        None,
    )
    path = check.path if check else "/health"
    in_host = facts.probes.get(f"http://127.0.0.1:{case.port.port}{path}")
    loopback = (
        ProbeResult(
            in_host.target,
            in_host.ok,
            in_host.status,
            in_host.body,
            None,
            in_host.error,
            None if in_host.ok else "unreachable",
            in_host.milliseconds,
        )
        if in_host
        else None
    )
    if not host.address:
        raise FactUnavailable(f"no address for {host.name}")
    lan = case.runtime.lan_connect(host.address, case.port.port)
    return contracts.optillm_local_only(case.port, facts, loopback, lan)


def optillm_upstream(case: Case) -> Result:
    assert case.service is not None
    facts = _facts(case)
    return contracts.optillm_upstream_is_litellm(
        case.service, optillm_settings(facts, case.service), case.inventory, facts
    )


def no_routing_loop(case: Case) -> Result:
    graph, _ = model_graph(case)
    return contracts.no_routing_loop(graph)


def gateway_never_runs_inference(case: Case) -> Result:
    assert case.service is not None
    if case.service.kind == "optillm-proxy":
        return contracts.gateway_never_runs_inference(
            case.service, optillm_settings(_facts(case), case.service), None, _facts(case)
        )
    graph, facts = model_graph(case)
    return contracts.gateway_never_runs_inference(case.service, None, graph, facts)


def showroom(case: Case) -> Result:
    assert case.runtime is not None
    inventory = case.inventory
    graph, _ = model_graph(case)
    litellm = _litellm_for(case)
    live_handles: list[str] | None = None
    key = case.runtime.secret("litellm-master-key")
    litellm_host = inventory.host(litellm.host)
    litellm_port = next(port for port in inventory.ports_of(litellm.name) if port.state == "active")
    if key and litellm_host.address:
        probe = case.runtime.lan_get(
            url_for(litellm_host.address, litellm_port.port, "/v1/models"), {"Authorization": f"Bearer {key}"}
        )
        if probe.status == 200 and isinstance(probe.json, dict):
            live_handles = sorted(str(item.get("id")) for item in probe.json.get("data", []) if isinstance(item, dict))
            live_note = f"{len(live_handles)} handles: {', '.join(live_handles)}"
        else:
            live_note = f"not available ({probe.describe()})"
    else:
        live_note = "skipped: master key not in the environment (LITELLM_MASTER_KEY)"
    present: dict[str, set[str]] = {}
    for service in inventory.services:
        if service.kind != "optillm-local" or not service.is_live:
            continue
        facts = _facts(case, service.host)
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
    return contracts.showroom_models_present(graph, live_handles, live_note, present)


def transformers_pin(case: Case) -> Result:
    assert case.service is not None
    requirements = next((file.path for file in case.service.files if file.role == "requirements"), None)
    return contracts.transformers_pin(
        case.service,
        _facts(case),
        venv_path(case.service),
        file_key(case.service.name, requirements) if requirements else None,
    )


def hf_cache(case: Case) -> Result:
    assert case.service is not None and case.port is not None
    facts = _facts(case)
    env = instance_environment(facts, case.service, case.port)
    return contracts.hf_cache_path(case.service, case.port, hf_cache_of(env, facts, case.service), facts)


def hf_token(case: Case) -> Result:
    assert case.service is not None and case.port is not None
    facts = _facts(case)
    env = instance_environment(facts, case.service, case.port)
    return contracts.hf_token_present(case.service, case.port, env, token_file=False)


def dependency(case: Case) -> Result:
    assert case.dependency is not None
    inventory = case.inventory
    source = inventory.service(case.dependency.source)
    target = inventory.service(case.dependency.target)
    if not (source.is_live and target.is_live):
        down = source if not source.is_live else target
        return skipped(f"{down.name} is {down.state}: the edge {source.name} -> {target.name} is not in use")
    facts = _facts(case, source.host)
    probes = []
    from conformance.facts.gather import dependency_targets

    wanted = {f"{port.port}" for port in inventory.ports_of(target.name) if port.state == "active"}
    for target_text in dependency_targets(inventory, source.host):
        if target_text.rsplit(":", 1)[1] in wanted and _target_host_matches(
            inventory, target, source.host, target_text
        ):
            fact = facts.probe(target_text)
            probes.append(
                ProbeResult(
                    target_text,
                    fact.ok,
                    None,
                    "",
                    None,
                    fact.error,
                    None if fact.ok else "unreachable",
                    fact.milliseconds,
                )
            )
    if any(not probe.answered for probe in probes):
        blocker = _target_down(case, target)
        if blocker is not None:
            return blocker
    return contracts.dependency_reachable(source, target, probes)


def _target_down(case: Case, target: Service) -> Result | None:
    """An unreachable target whose host or service is down is that outage, not a new one."""
    assert case.runtime is not None
    try:
        facts = case.runtime.facts(target.host)
    except HostUnavailable as exc:
        root = host_root_subject(case.inventory, exc.host)
        return broken(
            f"{target.name} cannot be reached because {exc.host} is down: {exc.cause}", blocked_by=root.fingerprint
        )
    for port in [None, *case.inventory.ports_of(target.name)]:
        unit_ref = unit_of(target, port)
        if unit_ref is None or (port is not None and port.state != "active"):
            continue
        unit = facts.units.get(unit_ref[1])
        if unit is not None and not unit.active:
            unit_record = port.unit if port is not None and port.unit else target.unit
            assert unit_record is not None
            root = unit_subject(case.inventory, target, port if port is not None and port.unit else None, unit_record)
            return broken(f"{target.name} is down ({unit.name}: {unit.state_text})", blocked_by=root.fingerprint)
    return None


def _target_host_matches(inventory: Inventory, target: Service, source_host: str, target_text: str) -> bool:
    address = target_text.rsplit(":", 1)[0].strip("[]")
    if target.host == source_host:
        return address == "127.0.0.1"
    return address == inventory.host(target.host).address


# --- tests_health ----------------------------------------------------------------------


def health_endpoint(case: Case) -> Result:
    assert case.runtime is not None and case.health is not None and case.port is not None
    check = case.health
    if check.calls_models and not case.runtime.options.model_health:
        return skipped(f"{check.path} makes real model calls; run with --model-health to include it")
    headers = _auth_headers(case.runtime, check)
    if headers is None:
        secret_name = _secret_for(check)
        record = case.inventory.secret_env(secret_name)
        variable = record.env if record else secret_name
        return broken(f"{check.path} needs the {secret_name} secret: set {variable} in the environment")
    if check.per_model and case.service is not None and case.service.kind == "litellm":
        return _health_per_model(case, headers)
    if check.vantage == "loopback":
        facts = _facts(case)
        fact = facts.probe(f"http://127.0.0.1:{check.port}{check.path}")
        probe = ProbeResult(
            fact.target,
            fact.ok,
            fact.status,
            fact.body,
            _json_or_none(fact.body),
            fact.error,
            None if fact.ok else "unreachable",
            fact.milliseconds,
        )
    else:
        host = case.host_record
        if not host.address:
            raise FactUnavailable(f"no address for {host.name}")
        probe = case.runtime.lan_get(url_for(host.address, check.port, check.path), headers or None, check.timeout)
    result = health.evaluate(check, case.port, probe)
    if result.outcome is Outcome.BROKEN and case.service is not None:
        blocker = _stopped_service(case)
        if blocker is not None:
            return blocker
    return result


def _health_per_model(case: Case, headers: dict[str, str]) -> Result:
    """LiteLLM's /health?model=<handle> per handle: a usable status code per deployment
    (the global /health answers 200 even when every deployment is down)."""
    assert case.runtime is not None and case.health is not None and case.port is not None
    check = case.health
    host = case.host_record
    if not host.address:
        raise FactUnavailable(f"no address for {host.name}")
    graph, _ = model_graph(case)
    results = []
    for handle in graph.handles():
        url = url_for(host.address, check.port, f"{check.path}?model={handle}")
        results.append((handle, health.evaluate(check, case.port, case.runtime.lan_get(url, headers, check.timeout))))
    bad = [(handle, result) for handle, result in results if result.outcome is not Outcome.PASSED]
    evidence = {handle: result.summary for handle, result in results}
    if not results:
        return broken(f"{case.service.name if case.service else '?'} has no model handles to check")
    if any(result.outcome is Outcome.VIOLATED for _, result in bad):
        return violated(
            f"{len(bad)} of {len(results)} model deployments are unhealthy",
            *(f"{handle}: {result.summary}" for handle, result in bad),
            **evidence,
        )
    if bad:
        return broken(
            f"{len(bad)} model health probes did not answer",
            *(f"{handle}: {result.summary}" for handle, result in bad),
            **evidence,
        )
    return passed(f"all {len(results)} model deployments answer {check.path} healthy", **evidence)


def _secret_for(check: HealthCheck) -> str:
    return "litellm-master-key" if check.auth == "master_key" else "optillm-local-key"


def _auth_headers(runtime: Runtime, check: HealthCheck) -> dict[str, str] | None:
    """The request headers of a health check; None when its secret is missing."""
    if check.auth == "none":
        return {}
    key = runtime.secret(_secret_for(check))
    return {"Authorization": f"Bearer {key}"} if key else None


def prefetch_plan(runtime: Runtime, services: set[str]) -> list[Callable[[], object]]:
    """The LAN probes the checks will make, to run ahead of them in parallel.

    Each thunk makes exactly the call its check makes (same URL, headers and timeout), so
    the check then finds the answer in the runtime's cache.
    """
    inventory = runtime.inventory
    plan: list[Callable[[], object]] = []
    for check in inventory.health_checks:
        service = inventory.service(check.service)
        address = inventory.host(service.host).address
        headers = _auth_headers(runtime, check)
        if (
            service.name not in services
            or not service.is_live
            or check.vantage != "lan"
            or not address
            or headers is None
            or check.per_model
            or (check.calls_models and not runtime.options.model_health)
        ):
            continue
        plan.append(partial(runtime.lan_get, url_for(address, check.port, check.path), headers or None, check.timeout))
    for service in inventory.services:
        address = inventory.host(service.host).address
        if service.name not in services or service.kind != "litellm" or not service.is_live or not address:
            continue
        port = next(port for port in inventory.ports_of(service.name) if port.state == "active")
        plan.append(partial(runtime.lan_get, url_for(address, port.port, "/health/liveliness")))
        key = runtime.secret("litellm-master-key")
        if key:
            plan.append(
                partial(runtime.lan_get, url_for(address, port.port, "/v1/models"), {"Authorization": f"Bearer {key}"})
            )
        for local in inventory.ports:
            if local.host == service.host and local.exposure == "local":
                plan.append(partial(runtime.lan_connect, address, local.port))
    return plan


def _json_or_none(text: str) -> object:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return None
