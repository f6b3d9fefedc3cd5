"""What a run gathers up front, and when it can know that.

A run's I/O is every selected host's facts and the LAN probes its contracts declare
(``ContractSpec.lan_probes``). When nothing but the harness's own host and service options
narrows the run, the plan is known from the inventory and the registry alone, at
configure time, and gathering starts then, overlapping with collection and with xdist
spawning workers. Keyword, marker, path or deselect selection is only known once pytest
has collected, so such runs plan from the collected cases instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from conformance.contracts import cases_of
from conformance.probes import LanRequest

if TYPE_CHECKING:
    import pytest

    from conformance.contracts import Case, Registry
    from conformance.runtime import Runtime

# Options that only show information: such a run checks nothing.
INFORMATION_OPTIONS = ("help", "version", "showfixtures", "show_fixtures_per_test", "markers", "collectonly")


def checks_nothing(config: pytest.Config) -> bool:
    return checks_nothing_in(config.option)


def checks_nothing_in(options: object) -> bool:
    """``checks_nothing`` for parsed options (pytest's early, partly parsed ones too)."""
    return any(getattr(options, name, False) for name in INFORMATION_OPTIONS) or bool(
        getattr(options, "setupplan", False)
    )


def selection_known_at_configure(config: pytest.Config) -> bool:
    """Whether the registry's cases, filtered by host and service, are the tests that will run."""
    option = config.option
    if option.keyword or option.markexpr or getattr(option, "deselect", None) or getattr(option, "lf", False):
        return False
    testpaths = config.getini("testpaths")
    args = [arg for arg in config.args if not arg.startswith("-")]
    return not args or sorted(args) == sorted(testpaths)


def selected(config: pytest.Config, case: Case) -> bool:
    """The harness's own selection (``--conformance-host``, ``--conformance-service``)."""
    hosts = set(config.getoption("--conformance-host"))
    services = set(config.getoption("--conformance-service"))
    if hosts and case.host not in hosts:
        return False
    return not services or (case.service is not None and case.service.name in services)


def plan(registry: Registry, runtime: Runtime, cases: Iterable[Case]) -> tuple[list[str], list[LanRequest]]:
    """The hosts to gather (with those their checks also read) and the LAN probes to make."""
    hosts: list[str] = []
    requests: list[LanRequest] = []
    for case in cases:
        if case.host and case.host not in hosts:  # a case about the inventory itself has no host
            hosts.append(case.host)
        case.runtime = runtime
        if case.service is None or case.service.is_live:
            try:
                requests += registry.get(case.check).lan_probes(case)
            except Exception:  # noqa: BLE001, S112 - the check itself reports what its plan could not
                continue
    return runtime.hosts_to_gather(sorted(hosts)), list(dict.fromkeys(requests))


def cases_of_node_ids(registry: Registry, runtime: Runtime, ids: Iterable[str]) -> list[Case]:
    """The cases behind collected test ids (``path::test_<contract>[<case id>]``).

    The xdist controller collects nothing itself; its workers report the ids they collected.
    """
    known = {(spec.test_name, case.id): case for spec in registry for case in cases_of(spec, runtime.inventory)}
    cases = []
    for node_id in ids:
        name, _, rest = node_id.rpartition("::")[2].partition("[")
        case = known.get((name, rest[:-1])) if rest.endswith("]") else None
        if case is not None:
            cases.append(case)
    return cases


def plan_at_configure(
    config: pytest.Config, registry: Registry, runtime: Runtime
) -> tuple[list[str], list[LanRequest]]:
    cases = [case for case in registry.cases(runtime.inventory) if selected(config, case)]
    return plan(registry, runtime, cases)
