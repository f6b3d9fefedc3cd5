"""Each service runs as its declared account (whose home is what `~` means in its paths)."""

from __future__ import annotations

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.errors import FactUnavailable
from conformance.facts.discovery import SITE, discover
from conformance.facts.model import HostFacts
from conformance.inventory.model import Service
from conformance.paths import unit_of
from conformance.results import Result, passed, skipped, unit_cause, violated

# systemd.exec(5), DynamicUser=: "Dynamic users/groups are allocated from the UID/GID range
# 61184…65519" (DYNAMIC_UID_MIN/DYNAMIC_UID_MAX, src/basic/user-util.h, systemd 252). "If a
# statically allocated user or group of the configured name already exists, it is used and no
# dynamic user/group is allocated"; User= left empty names the user after the unit
# (unit_patch_contexts, src/core/unit.c: user_from_unit_name). A dynamic user's uid changes
# from start to start and its name is known to NSS only through nss-systemd, while it runs.
DYNAMIC_UIDS = range(61184, 65519 + 1)


def judge_account(
    service: Service, main_pids: list[tuple[str, int | None]], facts: HostFacts, user_source: str | None = None
) -> Result:
    """``user_source``: where the account came from when the site file does not name it."""
    if service.user is None:
        return skipped(f"no service account is declared for {service.name} at this site")
    evidence = {"account": f"{service.user} (from {user_source})"} if user_source else {}
    problems = []
    causes = []
    expected_uid = facts.user_ids.get(service.user)
    dynamic = [
        unit_name
        for unit_name, _ in main_pids
        if (unit := facts.units.get(unit_name)) is not None and unit.dynamic_user and unit.user == service.user
    ]
    if expected_uid is None and dynamic:
        return _judge_dynamic(service, main_pids, facts, evidence)
    if expected_uid is None:
        # getpwnam(3) finding nothing is no proof that the account does not exist: it is also
        # what an unreachable directory service answers. Its uid is not known, so nothing is judged.
        raise FactUnavailable(
            f"the uid of {service.name}'s account is not known: {facts.account_unknown(service.user)}"
        )
    names = {**facts.account_names, **{uid: name for name, uid in facts.user_ids.items()}}
    for unit_name, pid in main_pids:
        process = facts.processes.get(pid) if pid else None
        if process is None:
            problems.append(f"{unit_name} has no running process")
            causes.append(unit_cause(service.host, unit_name))
            continue
        user = names.get(process.uid, f"uid {process.uid}")
        evidence[unit_name] = f"pid {pid} {user} (uid {process.uid}, {process.command})"
        if process.uid != expected_uid:
            problems.append(f"{unit_name} runs as {user!r}, not as {service.user!r}")
    if problems:
        return violated(f"{service.name} does not run as {service.user}", *problems, **evidence).caused_by(*causes)
    return passed(f"{service.name} runs as {service.user}", **evidence)


def _judge_dynamic(
    service: Service, main_pids: list[tuple[str, int | None]], facts: HostFacts, evidence: dict[str, str]
) -> Result:
    """The account is a systemd dynamic user no account database lists: its uid is transient."""
    assert service.user is not None
    problems: list[str] = []
    causes = []
    for unit_name, pid in main_pids:
        process = facts.processes.get(pid) if pid else None
        unit = facts.units.get(unit_name)
        if process is None:
            problems.append(f"{unit_name} has no running process")
            causes.append(unit_cause(service.host, unit_name))
            continue
        evidence[unit_name] = (
            f"pid {pid} uid {process.uid} ({process.command}): dynamic user {service.user!r} (DynamicUser=yes), "
            f"a transient uid from systemd's range {DYNAMIC_UIDS.start}..{DYNAMIC_UIDS.stop - 1}"
        )
        if unit is None or not unit.dynamic_user or unit.user != service.user:
            problems.append(f"{unit_name} does not run as the dynamic user {service.user!r}")
        elif process.uid not in DYNAMIC_UIDS:
            problems.append(
                f"{unit_name} runs as uid {process.uid}, outside systemd's dynamic range: not the dynamic user "
                f"{service.user!r}"
            )
    if problems:
        return violated(
            f"{service.name} does not run as the dynamic user {service.user}", *problems, **evidence
        ).caused_by(*causes)
    return passed(f"{service.name} runs as the dynamic user {service.user}", **evidence)


def judge(case: Case) -> Result:
    service = case.service
    assert service is not None
    facts = case.facts()
    units: list[tuple[str, int | None]] = []
    for port in [None, *case.inventory.ports_of(service.name)]:
        unit_ref = unit_of(service, port)
        if unit_ref and (port is None or port.state == "active") and unit_ref[1] not in [name for name, _ in units]:
            units.append((unit_ref[1], facts.unit(unit_ref[1]).main_pid))
    if not units:
        raise FactUnavailable(f"{service.name} declares no unit")
    # The site's account, else the one the units run as (User= / UserName / root).
    user = discover(case.inventory, service.host, facts).get(service.name, "user")
    if user is not None and user.source != SITE:
        return judge_account(service.model_copy(update={"user": user.value}), units, facts, user.source)
    return judge_account(service, units, facts)


CONTRACT = ContractSpec(
    id="service-account",
    suite="hosts",
    scope=Scope.SERVICE,
    judge=judge,
    needs_running=True,
    statement="Each service runs as its declared account.",
    rule="The main process of each of the service's units runs with the uid of the declared user (the site's, "
    "else the one its units name: systemd User=, launchd UserName or domain, else root). A systemd "
    "DynamicUser=yes unit whose account no account database lists runs as its dynamic user: a transient uid in "
    "systemd's range 61184..65519. An account no account database (NSS) knows cannot be checked.",
)
