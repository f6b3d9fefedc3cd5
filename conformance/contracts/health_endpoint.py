"""Each declared health endpoint answers as expected (GET only, with a timeout), from its vantage.

A probe that never got an answer (refused, timed out) means the endpoint could not be
checked: broken, with the cause. A wrong answer is a violation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.derived import litellm_service, router_graph
from conformance.inventory.model import HealthCheck, Port
from conformance.outcomes import stopped_service
from conformance.probes import LanRequest, ProbeResult
from conformance.redact import redact
from conformance.results import Outcome, Result, broken, listener_cause, passed, skipped, violated


def judge_answer(check: HealthCheck, port: Port, probe: ProbeResult) -> Result:
    evidence = {"request": f"GET {probe.target}", "response": probe.describe()}
    if not probe.answered or probe.status is None:
        result = broken(
            f"{check.path} on port {check.port} did not answer: {probe.error_kind}: {probe.error}", **evidence
        )
        if probe.error_kind == "refused":  # nothing listens where it is asked: the listener is the cause
            result = result.caused_by(listener_cause(port.host, port.port))
        return _with_latency(result, probe)
    problems = []
    if probe.truncated:
        problems.append(f"the answer is not a health answer: {probe.error}")
    if probe.status not in check.expect_status:
        problems.append(f"status {probe.status}, expected {' or '.join(map(str, check.expect_status))}")
    body = probe.json
    if check.expect_json is not None and body != check.expect_json:
        problems.append(f"body {redact(probe.body[:120])!r}, expected {check.expect_json!r}")
    if check.expect_status_field:
        status = body.get("status") if isinstance(body, dict) else None
        if status not in check.expect_status_field:
            problems.append(f"status field {status!r}, expected one of {', '.join(check.expect_status_field)}")
    if check.expect_models:
        ids = (
            [item.get("id") for item in body.get("data", [])]
            if isinstance(body, dict) and isinstance(body.get("data"), list)
            else []
        )
        if port.model and port.model not in ids:
            problems.append(f"/v1/models lists {ids or 'nothing'}, not the instance's model {port.model}")
    if check.calls_models and isinstance(body, dict) and body.get("unhealthy_count"):
        unhealthy = [str(item.get("model")) for item in body.get("unhealthy_endpoints", []) if isinstance(item, dict)]
        problems.append(f"{body.get('unhealthy_count')} unhealthy deployment(s): {', '.join(unhealthy)}")
    if problems:
        # whatever listens on the port gave this answer: an incident with the port's listener
        result = violated(f"{check.path} on port {check.port} is unhealthy", *problems, **evidence)
        return _with_latency(result.caused_by(listener_cause(port.host, port.port)), probe)
    return _with_latency(
        passed(f"{check.path} answered {probe.status} in {probe.milliseconds:.0f} ms", **evidence), probe
    )


def _with_latency(result: Result, probe: ProbeResult) -> Result:
    return replace(result, latency_ms=round(probe.milliseconds, 1))


def secret_of(check: HealthCheck) -> str | None:
    """The inventory secret a health check authenticates with (None: anonymous)."""
    return {"none": None, "master_key": "litellm-master-key", "client_key": "optillm-local-key"}[check.auth]


def _request(case: Case, path: str) -> LanRequest:
    assert case.health is not None
    return LanRequest(case.address(), case.health.port, path, secret_of(case.health), case.health.timeout)


def lan_probes(case: Case) -> Sequence[LanRequest]:
    check = case.health
    if check is None or check.vantage != "lan" or check.per_model or not case.host_record.address:
        return ()
    if check.calls_models and not case.bound.options.model_health:
        return ()
    secret = secret_of(check)
    if secret is not None and case.bound.secret(secret) is None:
        return ()
    return (_request(case, check.path),)


def judge(case: Case) -> Result:
    check, port = case.health, case.port
    assert check is not None and port is not None
    if check.calls_models and not case.bound.options.model_health:
        return skipped(f"{check.path} makes real model calls; run with --model-health to include it")
    secret = secret_of(check)
    if secret is not None and case.bound.secret(secret) is None:
        return broken(f"{check.path} needs the {secret} secret: {case.bound.secret_hint(secret)}")
    if check.per_model and case.service is not None and case.service.kind == "litellm":
        return _per_model(case)
    if check.vantage == "loopback":
        probe = case.facts().probe(f"http://127.0.0.1:{check.port}{check.path}").to_probe_result()
    else:
        probe = case.lan(_request(case, check.path))
    result = judge_answer(check, port, probe)
    if result.outcome is Outcome.BROKEN and case.service is not None:
        return stopped_service(case, case.service, case.port) or result
    return result


def _per_model(case: Case) -> Result:
    """LiteLLM's /health?model=<handle> per handle: a usable status code per deployment
    (the global /health answers 200 even when every deployment is down)."""
    check, port = case.health, case.port
    assert check is not None and port is not None
    litellm = litellm_service(case.inventory, case.service)
    graph = router_graph(case.inventory, case.facts, litellm)
    results = [
        (handle, judge_answer(check, port, case.lan(_request(case, f"{check.path}?model={handle}"))))
        for handle in graph.handles()
    ]
    if not results:
        return broken(f"{litellm.name} has no model handles to check")
    bad = [(handle, result) for handle, result in results if result.outcome is not Outcome.PASSED]
    evidence = {handle: result.summary for handle, result in results}
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


CONTRACT = ContractSpec(
    id="health-endpoint",
    suite="health",
    scope=Scope.HEALTH_CHECK,
    judge=judge,
    lan_probes=lan_probes,
    statement="Each health endpoint answers as the inventory expects: LiteLLM /health/liveliness and "
    "/health/readiness (and /health, which calls models, on request), the OptiLLM proxy's /health from inside "
    "the Mini, the local instances' /v1/models.",
    rule="GET only, with the check's timeout; expected status, JSON body or status field, the instance's model "
    "listed. No answer is 'could not check' (blocked by the unit when it is down), a wrong answer a violation.",
)
