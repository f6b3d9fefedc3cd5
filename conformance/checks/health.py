"""Health endpoints: judge one GET against what the inventory expects of it.

A probe that never got an answer (refused, timed out) means the endpoint could not be
checked: broken, with the cause. A wrong answer is a violation.
"""

from __future__ import annotations

from conformance.inventory.model import HealthCheck, Port
from conformance.probes import ProbeResult
from conformance.redact import redact
from conformance.results import Result, broken, passed, violated


def evaluate(check: HealthCheck, port: Port, probe: ProbeResult) -> Result:
    evidence = {"request": f"GET {probe.target}", "response": probe.describe()}
    if not probe.answered or probe.status is None:
        result = broken(
            f"{check.path} on port {check.port} did not answer: {probe.error_kind}: {probe.error}", **evidence
        )
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
        return _with_latency(violated(f"{check.path} on port {check.port} is unhealthy", *problems, **evidence), probe)
    return _with_latency(
        passed(f"{check.path} answered {probe.status} in {probe.milliseconds:.0f} ms", **evidence), probe
    )


def _with_latency(result: Result, probe: ProbeResult) -> Result:
    from dataclasses import replace

    return replace(result, latency_ms=round(probe.milliseconds, 1))
