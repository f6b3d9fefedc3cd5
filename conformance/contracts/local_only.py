"""A local-only service is reachable only on localhost: bound to loopback, answering there, refused from the LAN.

The seed's "Local only" exposure as a contract of its own, for services other than OptiLLM
(whose "never expose OptiLLM directly" is ``optillm-never-exposed``): the System monitor's
status page, metrics and API. The rule is the same one, judged by the same function.
"""

from __future__ import annotations

from conformance.contracts.base import ContractSpec, Scope
from conformance.contracts.optillm_never_exposed import judge, lan_probes

CONTRACT = ContractSpec(
    id="local-only",
    suite="contracts",
    scope=Scope.CONTRACT_PORT,
    judge=judge,
    lan_probes=lan_probes,
    needs_running=True,
    statement="A local-only service (the System monitor) is reachable only on localhost.",
    rule="Every socket on the port is loopback-only, a GET of its loopback health check from inside the host "
    "answers, and a TCP connect from the LAN is refused.",
)
