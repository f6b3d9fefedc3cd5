"""Each host answers over SSH and is the host the inventory declares (hostname, OS).

This is also the root cause of a host's outage: when the host cannot be reached, this
check is the one broken result, and every other check of the host is blocked by it.
"""

from __future__ import annotations

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.model import HostFacts
from conformance.inventory.model import Host
from conformance.results import Result, passed, violated

_OS_NAMES = {"linux": "Linux", "macos": "Darwin"}


def judge_identity(host: Host, facts: HostFacts) -> Result:
    problems = []
    expected_os = _OS_NAMES[host.os]
    if facts.os_name != expected_os:
        problems.append(f"OS is {facts.os_name!r}, inventory says {host.os} ({expected_os})")
    if host.hostname and (facts.hostname or "").split(".")[0] != host.hostname.split(".")[0]:
        problems.append(f"hostname is {facts.hostname!r}, inventory says {host.hostname!r}")
    evidence = {"hostname": facts.hostname or "?", "uname -s": facts.os_name or "?"}
    if problems:
        return violated(f"{host.name} is not the host the inventory describes", *problems, **evidence)
    return passed(f"{host.name} answers over SSH as {facts.hostname} ({facts.os_name})", **evidence)


def judge(case: Case) -> Result:
    return judge_identity(case.host_record, case.facts())


CONTRACT = ContractSpec(
    id="host-identity",
    suite="hosts",
    scope=Scope.HOST,
    judge=judge,
    statement="Each host answers over SSH and is the declared host.",
    rule="The hostname's first label and the OS (uname -s) match the inventory's host record.",
)
