"""Each active port listens on exactly its declared address (IPv4, IPv6 and dual-stack exact)."""

from __future__ import annotations

from conformance.contracts._listeners import declared_endpoints, describe, endpoints
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.model import HostFacts
from conformance.inventory.model import Port
from conformance.results import Result, broken, listener_cause, passed, violated


def judge_binding(port: Port, facts: HostFacts) -> Result:
    listeners = [item for item in facts.require_listeners() if item.port == port.port]
    want = declared_endpoints(port.bind)
    have: set[tuple[str, str]] = set()
    for listener in listeners:
        have |= endpoints(listener)
    evidence = {"declared": f"{port.bind}:{port.port}", "listening": describe(listeners)}
    if not listeners:
        return violated(f"nothing listens on port {port.port} (declared {port.bind}:{port.port})", **evidence)
    # An IPv6 wildcard whose IPV6_V6ONLY is not known may also accept IPv4: a verdict that
    # hangs on it is not given.
    open_question = [item for item in listeners if not item.dual_stack_known and item.family == "ipv6"]
    wider = have | ({("ipv4", "0.0.0.0")} if open_question else set())
    if (have == want) != (wider == want):
        return broken(
            f"could not check: whether {', '.join(item.endpoint_text() for item in open_question)} also accepts "
            f"IPv4 is not known (declared {port.bind}:{port.port})",
            **evidence,
        )
    extra = sorted(have - want)
    missing = sorted(want - have)
    if extra or missing:
        details = []
        if missing:
            details.append("not listening on " + ", ".join(f"{address} ({family})" for family, address in missing))
        if extra:
            details.append(
                "also/instead listening on " + ", ".join(f"{address} ({family})" for family, address in extra)
            )
        return violated(
            f"port {port.port} is bound to {', '.join(item.bind_text() for item in listeners)}, "
            f"declared {port.bind} only",
            *details,
            **evidence,
        ).caused_by(listener_cause(port.host, port.port))
    return passed(f"port {port.port} listens on exactly {port.bind}", **evidence)


def judge(case: Case) -> Result:
    assert case.port is not None
    return judge_binding(case.port, case.facts())


CONTRACT = ContractSpec(
    id="port-bound",
    suite="hosts",
    scope=Scope.PORT,
    judge=judge,
    needs_running=True,
    statement="Each port is bound to exactly the declared interface (LiteLLM 0.0.0.0:4000, OptiLLM 127.0.0.1:4020, "
    "the Studio's instances 0.0.0.0:4040-4041).",
    rule="The set of (family, address) the port's sockets accept equals the declared bind: '*' and [::] with "
    "dual-stack accept IPv4 too, ::ffff:127.0.0.1 is IPv4 loopback.",
)
