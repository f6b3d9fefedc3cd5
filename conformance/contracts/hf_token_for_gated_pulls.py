"""An HF token is configured for gated pulls (its presence only; the value is never read into a report)."""

from __future__ import annotations

from collections.abc import Mapping

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.environment import instance_environment
from conformance.inventory.model import Port, Service
from conformance.redact import MASK
from conformance.results import Result, env_cause, passed, violated


def judge_token(service: Service, port: Port, env: Mapping[str, str]) -> Result:
    names = [name for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") if env.get(name)]
    if names:
        return passed(
            f"an HF token is configured for {port.instance or port.port} ({names[0]}: {MASK})",
            **{names[0]: f"set ({MASK})"},
        )
    return violated(
        f"no HF token for gated pulls on {service.name} {port.instance or port.port}",
        "set HF_TOKEN in the instance's environment (its value is never shown)",
    ).caused_by(env_cause(service.host, service.name, "HF_TOKEN"))


def judge(case: Case) -> Result:
    assert case.service is not None and case.port is not None
    return judge_token(case.service, case.port, instance_environment(case.facts(), case.service, case.port))


CONTRACT = ContractSpec(
    id="hf-token-for-gated-pulls",
    suite="contracts",
    scope=Scope.CONTRACT_PORT,
    judge=judge,
    statement="HF token required for gated pulls.",
    rule="HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) is set, non-empty, in the instance's effective environment.",
)
