"""OptiLLM local pins transformers<5: installed in its venv and declared in its requirements."""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.facts.discovery import discover, settled_service
from conformance.facts.model import HostFacts
from conformance.inventory.model import Service
from conformance.paths import file_key, venv_path
from conformance.results import Result, broken, passed, violated

_PROBE_VERSIONS = ("5.0.0", "5.0.0rc1", "5.0.1", "5.1", "5.99.99", "6.0", "10.0")


def judge_pin(
    service: Service,
    facts: HostFacts,
    venv: str | None,
    requirements_key: str | None,
    venv_source: str | None = None,
    why_no_venv: str | None = None,
) -> Result:
    """``venv_source``: where the venv came from (the site file, or the unit's program)."""
    spec_text = service.package_pins.get("transformers", "<5")
    spec = SpecifierSet(spec_text)
    if venv is None:
        return broken(
            f"{service.name}'s venv is unknown (give repo_root/venv for this site)",
            *([why_no_venv] if why_no_venv else []),
        )
    metadata = facts.packages.get(venv)
    if metadata is None:
        return broken(f"package metadata of {venv} was not gathered", *facts.problems)
    shown = f"{venv} (from {venv_source})" if venv_source else venv
    evidence = {"venv": shown, "site-packages": ", ".join(metadata.get("site_packages") or []) or "(none)"}
    if metadata.get("error"):
        return broken(f"cannot read the package metadata of {venv}", str(metadata["error"]), **evidence)
    if not metadata.get("site_packages"):
        return violated(f"{venv} is not a virtualenv with site-packages", **evidence)
    installed = metadata.get("packages", {}).get("transformers")
    problems = []
    if installed is None:
        problems.append(f"transformers is not installed in {venv}")
    else:
        evidence["installed"] = f"transformers {installed}"
        try:
            if Version(installed) not in spec:
                problems.append(f"installed transformers {installed} does not satisfy {spec_text}")
        except InvalidVersion:
            problems.append(f"installed transformers version {installed!r} is not a valid version")
    fact = facts.files.get(requirements_key) if requirements_key else None
    if fact is None or fact.content is None:
        return broken(
            f"cannot read {service.name}'s requirements",
            (fact.error if fact else None) or "no requirements file declared",
            **evidence,
        )
    declared = None
    for line in fact.content.splitlines():
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.name.lower() == "transformers":
            declared = requirement
    evidence["requirements"] = f"{fact.path}: {declared or '(transformers not listed)'}"
    if declared is None:
        problems.append(f"{fact.path} does not list transformers, so a reinstall is unpinned")
    else:
        allowed = [version for version in _PROBE_VERSIONS if declared.specifier.contains(version, prereleases=True)]
        if allowed:
            problems.append(
                f"{fact.path} declares {declared}, which admits transformers {', '.join(allowed)}: "
                f"a reinstall can break the {spec_text} pin"
            )
    if problems:
        return violated(f"the transformers {spec_text} pin of {service.name} does not hold", *problems, **evidence)
    return passed(f"transformers {installed} satisfies {spec_text} and {fact.path} declares {declared}", **evidence)


def judge(case: Case) -> Result:
    service = case.service
    assert service is not None
    requirements = next((file.path for file in service.files if file.role == "requirements"), None)
    facts = case.facts()
    # The site's venv, else the one the host names (conformance.facts.discovery).
    discovery = discover(case.inventory, service.host, facts)
    found = discovery.get(service.name, "venv")
    return judge_pin(
        service,
        facts,
        venv_path(settled_service(case.inventory, service, facts)),
        file_key(service.name, requirements) if requirements else None,
        found.source if found else None,
        discovery.why_unknown(service.name, "venv") or discovery.why_unknown(service.name, "repo_root"),
    )


CONTRACT = ContractSpec(
    id="transformers-pin",
    suite="contracts",
    scope=Scope.CONTRACT_SERVICE,
    judge=judge,
    statement="OptiLLM local pins transformers<5.",
    rule="The venv's installed transformers satisfies the pin (from its dist-info metadata), and the requirements "
    "file declares a specifier that admits no 5.x (probed with 5.0.0, 5.0.0rc1, 5.1, 6.0 ...).",
)
