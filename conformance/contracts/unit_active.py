"""Each unit (systemd unit or launchd job) is installed at its declared path, enabled and running."""

from __future__ import annotations

import posixpath

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.errors import FactUnavailable
from conformance.facts.model import HostFacts
from conformance.inventory.model import Unit
from conformance.results import Result, broken, passed, unit_cause, violated


def judge_unit(unit: Unit, facts: HostFacts, host: str = "") -> Result:
    try:
        fact = facts.unit(unit.name)
    except FactUnavailable as exc:
        return broken(f"cannot read the state of {unit.name}", str(exc))
    unit_file = facts.files.get(f"unit:{unit.path}")
    evidence = {
        "state": fact.state_text,
        "enabled": fact.unit_file_state or "n/a",
        "definition": fact.definition_path or "(none)",
    }
    if fact.notes:
        evidence["partial read"] = "; ".join(fact.notes)
    problems = []
    if not fact.loaded:
        problems.append(f"{unit.name} is not loaded ({fact.raw_state.get('LoadState') or fact.state_text})")
    if unit_file is not None and not unit_file.exists:
        problems.append(f"unit file {unit.path} does not exist")
    if (
        fact.loaded
        and fact.definition_path
        and posixpath.normpath(fact.definition_path) != posixpath.normpath(unit.path)
    ):
        problems.append(f"{unit.name} is loaded from {fact.definition_path}, not from the declared {unit.path}")
    if fact.loaded and fact.enabled is False:
        problems.append(f"{unit.name} is not enabled ({fact.unit_file_state}): it will not start at boot")
    if fact.loaded and not fact.active:
        problems.append(f"{unit.name} is not running ({fact.state_text})")
    if problems:
        result = violated(f"{unit.name} is not installed, enabled and running as declared", *problems, **evidence)
        return result.caused_by(unit_cause(host, unit.name))
    if fact.definition_error and fact.enabled is None:
        # launchd: whether the job starts at boot is in its plist, which could not be read.
        return broken(f"cannot tell whether {unit.name} starts at boot", fact.definition_error, **evidence)
    return passed(f"{unit.name} is installed at {unit.path}, enabled and {fact.state_text}", **evidence)


def judge(case: Case) -> Result:
    assert case.unit is not None
    return judge_unit(case.unit, case.facts(), case.host)


CONTRACT = ContractSpec(
    id="unit-active",
    suite="hosts",
    scope=Scope.UNIT,
    judge=judge,
    statement="Each service's unit exists at its declared path, is enabled and is running.",
    rule="systemd: LoadState, UnitFileState, FragmentPath, ActiveState; launchd: the job's plist path and state. "
    "A stopped unit is the root cause its service's other checks are blocked by.",
)
