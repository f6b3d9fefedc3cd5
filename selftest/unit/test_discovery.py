"""What the host says about a service's user, repo root and venv, on real unit shapes.

The systemd shapes are the lab's own ``systemctl show`` output (selftest/recorded/lab-*), the
launchd shape is the Studio's ``launchctl print`` and plist (selftest/recorded/macos-*).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conformance.facts.discovery import Discovered, discover, discovered_settings, pyvenv_key, settled_service
from conformance.facts.gather import _systemd_unit
from conformance.facts.model import FileFact, HostFacts, UnitFact
from conformance.facts.parsers import parse_launchctl_print, parse_plist, parse_systemctl_show_many
from conformance.inventory.loader import load_inventory
from conformance.inventory.model import Inventory, Service, Unit
from selftest.conftest import INVENTORY_DIR

RECORDED = Path(__file__).resolve().parents[1] / "recorded"
MINI_UNITS = ("litellm-orch.service", "optillm-proxy.service")
STUDIO_UNITS = ("optillm-local-high.service", "optillm-local-balanced.service")


def _bare(inventory: Inventory, **keep: dict[str, str | None]) -> Inventory:
    """The lab inventory with no user, repo_root or venv for any service (as a new site has)."""
    services = tuple(
        service.model_copy(update={"user": None, "repo_root": None, "venv": None, **keep.get(service.name, {})})
        if service.host in {"mini", "studio"}
        else service
        for service in inventory.services
    )
    return inventory.model_copy(update={"services": services})


@pytest.fixture(scope="module")
def lab() -> Inventory:
    return load_inventory(INVENTORY_DIR / "lab.yaml", environ={})


@pytest.fixture(scope="module")
def seed_venv() -> str:
    """The seed's own (repo-relative) venv of optillm-local, which the lab site keeps."""
    base = load_inventory(INVENTORY_DIR / "gateway.yaml", environ={})
    venv = base.service("optillm-local").venv
    assert venv is not None
    return venv


def _systemd_facts(host: str, recording: str, names: tuple[str, ...]) -> HostFacts:
    facts = HostFacts(host)
    blocks = parse_systemctl_show_many((RECORDED / recording).read_text())
    for name, block in zip(names, blocks, strict=True):
        facts.units[name] = _systemd_unit(name, block)
    facts.user_homes = {"root": "/root", "litellm": "/srv/gateway", "optillm": "/var/lib/optillm"}
    facts.user_homes["thestudio"] = "/Users/thestudio"
    return facts


def _mini() -> HostFacts:
    return _systemd_facts("mini", "lab-mini-systemctl-show-two-units.txt", MINI_UNITS)


def _studio() -> HostFacts:
    return _systemd_facts("studio", "lab-studio-systemctl-show-instances.txt", STUDIO_UNITS)


def _venv_marker(facts: HostFacts, venv: str, present: bool = True) -> None:
    path = f"{venv}/pyvenv.cfg"
    facts.files[pyvenv_key(venv)] = (
        FileFact(path, path, True, "home = /usr/bin\nversion = 3.11.2\n", None)
        if present
        else FileFact(path, path, False, None, f"cat: {path}: No such file or directory")
    )


def _by_key(items: list[Discovered]) -> dict[tuple[str, str], Discovered]:
    return {(item.service, item.field): item for item in items}


def test_the_lab_mini_says_its_users_and_repo_root(lab: Inventory) -> None:
    facts = _mini()
    _venv_marker(facts, "/opt/litellm/venv")
    _venv_marker(facts, "/opt/optillm-proxy/venv")
    found = _by_key(discovered_settings(_bare(lab), "mini", facts))

    assert found["litellm-orch", "user"] == Discovered(
        "litellm-orch", "user", "litellm", "the unit's User= (litellm-orch.service)"
    )
    assert found["optillm-proxy", "user"].value == "optillm"
    root = found["litellm-orch", "repo_root"]
    assert root.value == "/srv/gateway"
    assert root.source == (
        "ExecStart --config /srv/gateway/layer-gateway/litellm-orch/config/router.yaml (litellm-orch.service)"
    )
    assert found["litellm-orch", "venv"].value == "/opt/litellm/venv"
    assert "pyvenv.cfg" in found["litellm-orch", "venv"].source
    assert found["optillm-proxy", "venv"].value == "/opt/optillm-proxy/venv"
    # optillm-proxy declares no repo-relative path: it needs no repo root, so none is guessed
    # from its WorkingDirectory (/var/lib/optillm) and nothing is reported missing.
    assert ("optillm-proxy", "repo_root") not in found
    assert discover(_bare(lab), "mini", facts).why_unknown("optillm-proxy", "repo_root") is None


def test_the_lab_studio_says_its_repo_root_and_relative_venv(lab: Inventory, seed_venv: str) -> None:
    facts = _studio()
    inventory = _bare(lab, **{"optillm-local": {"venv": seed_venv}})
    found = _by_key(discovered_settings(inventory, "studio", facts))

    assert found["optillm-local", "user"].value == "thestudio"
    assert found["optillm-local", "repo_root"].value == "/Users/thestudio/gateway"
    venv = found["optillm-local", "venv"]
    assert venv.value == "/Users/thestudio/gateway/layer-gateway/optillm-local/.venv"
    assert venv.source.startswith("the site file (layer-gateway/optillm-local/.venv), under repo_root from ")
    settled = settled_service(inventory, inventory.service("optillm-local"), facts)
    assert (settled.user, settled.repo_root, settled.venv) == ("thestudio", "/Users/thestudio/gateway", venv.value)


def test_the_site_wins_over_the_host(lab: Inventory) -> None:
    facts = _mini()
    found = _by_key(discovered_settings(lab, "mini", facts))
    assert found["litellm-orch", "user"] == Discovered("litellm-orch", "user", "litellm", "the site file")
    assert found["litellm-orch", "repo_root"] == Discovered(
        "litellm-orch", "repo_root", "/srv/gateway", "the site file"
    )
    assert found["litellm-orch", "venv"] == Discovered("litellm-orch", "venv", "/opt/litellm/venv", "the site file")

    site_says_other = _bare(lab, **{"litellm-orch": {"user": "gateway", "repo_root": "/opt/repo"}})
    found = _by_key(discovered_settings(site_says_other, "mini", facts))
    assert (found["litellm-orch", "user"].value, found["litellm-orch", "user"].source) == ("gateway", "the site file")
    assert found["litellm-orch", "repo_root"].value == "/opt/repo"


def test_working_directory_alone_counts_only_as_a_declared_directory(lab: Inventory) -> None:
    """optillm-local's requirements live in layer-gateway/optillm-local/, which is its WorkingDirectory."""
    facts = _studio()
    for name in STUDIO_UNITS:  # only the working directory is left to go by
        facts.units[name] = replace(facts.units[name], argv=("/usr/local/bin/optillm",), environment_files=())
    inventory = _bare(lab)
    found = _by_key(discovered_settings(inventory, "studio", facts))
    root = found["optillm-local", "repo_root"]
    assert root.value == "/Users/thestudio/gateway"
    assert (
        root.source
        == "WorkingDirectory /Users/thestudio/gateway/layer-gateway/optillm-local (optillm-local-high.service)"
    )

    # "-" in the unit file, "!" as systemctl show prints it: the directory may be missing, the path is the same.
    for prefix in ("!", "-"):
        for name in STUDIO_UNITS:
            facts.units[name] = replace(
                facts.units[name], working_directory=f"{prefix}/Users/thestudio/gateway/layer-gateway/optillm-local"
            )
        assert _by_key(discovered_settings(inventory, "studio", facts))["optillm-local", "repo_root"].value == (
            "/Users/thestudio/gateway"
        )


def test_a_working_directory_that_matches_nothing_proves_nothing(lab: Inventory) -> None:
    facts = _mini()
    unit = facts.units["litellm-orch.service"]
    # The real unit, minus the two paths that name the config: the WorkingDirectory
    # /srv/gateway/layer-gateway/litellm-orch is a parent of the declared config directory,
    # not its directory part, so it is no evidence of where the repository starts.
    facts.units["litellm-orch.service"] = replace(
        unit, argv=("/opt/litellm/venv/bin/litellm", "--port", "4000"), environment_files=()
    )
    discovery = discover(_bare(lab), "mini", facts)
    assert discovery.get("litellm-orch", "repo_root") is None
    why = discovery.why_unknown("litellm-orch", "repo_root")
    assert why is not None
    assert "no repo_root is given for this site" in why
    assert "layer-gateway/litellm-orch/config/router.yaml" in why  # what it looked for
    assert "WorkingDirectory /srv/gateway/layer-gateway/litellm-orch (litellm-orch.service)" in why  # what it saw
    bare = _bare(lab)
    assert settled_service(bare, bare.service("litellm-orch"), facts).repo_root is None


def test_two_roots_that_disagree_leave_it_unknown_naming_both(lab: Inventory) -> None:
    facts = _mini()
    unit = facts.units["litellm-orch.service"]
    facts.units["litellm-orch.service"] = replace(
        unit, environment_files=(("/opt/other/layer-gateway/litellm-orch/config/env.local", False),)
    )
    discovery = discover(_bare(lab), "mini", facts)
    assert discovery.get("litellm-orch", "repo_root") is None
    why = discovery.why_unknown("litellm-orch", "repo_root") or ""
    assert "/srv/gateway (from ExecStart --config" in why
    assert "/opt/other (from EnvironmentFile /opt/other/layer-gateway/litellm-orch/config/env.local" in why


def test_a_suffix_counts_only_at_a_path_component_boundary(lab: Inventory) -> None:
    facts = _mini()
    unit = facts.units["litellm-orch.service"]
    facts.units["litellm-orch.service"] = replace(
        unit,
        argv=("/opt/litellm/venv/bin/litellm", "--config=/srv/xlayer-gateway/litellm-orch/config/router.yaml"),
        environment_files=(),
        working_directory=None,
    )
    assert discover(_bare(lab), "mini", facts).get("litellm-orch", "repo_root") is None
    facts.units["litellm-orch.service"] = replace(
        unit,
        argv=("/opt/litellm/venv/bin/litellm", "--config=/srv/gw/./layer-gateway/litellm-orch/config/router.yaml"),
        environment_files=(),
    )
    root = discover(_bare(lab), "mini", facts).get("litellm-orch", "repo_root")
    assert root is not None and root.value == "/srv/gw"
    assert root.source.startswith("ExecStart --config=/srv/gw/./layer-gateway")


def test_systemd_without_user_runs_as_root(lab: Inventory) -> None:
    facts = _mini()
    facts.units["optillm-proxy.service"] = replace(facts.units["optillm-proxy.service"], user=None)
    user = discover(_bare(lab), "mini", facts).get("optillm-proxy", "user")
    assert user is not None and user.value == "root"
    assert "no User=" in user.source


def test_units_of_one_service_that_disagree_on_the_user(lab: Inventory) -> None:
    facts = _studio()
    facts.units["optillm-local-balanced.service"] = replace(facts.units["optillm-local-balanced.service"], user="other")
    discovery = discover(_bare(lab), "studio", facts)
    assert discovery.get("optillm-local", "user") is None
    why = discovery.why_unknown("optillm-local", "user") or ""
    assert "thestudio (the unit's User= (optillm-local-high.service))" in why
    assert "other (the unit's User= (optillm-local-balanced.service))" in why


def test_a_program_outside_a_venv_is_not_taken_for_one(lab: Inventory) -> None:
    facts = _mini()
    _venv_marker(facts, "/opt/litellm/venv", present=False)
    discovery = discover(_bare(lab), "mini", facts)
    assert discovery.get("litellm-orch", "venv") is None
    assert "/opt/litellm/venv is not a venv" in (discovery.why_unknown("litellm-orch", "venv") or "")
    # Not asked at all (e.g. facts from before): unknown too, never assumed.
    assert discover(_bare(lab), "mini", _mini()).get("litellm-orch", "venv") is None


def _studio_launchd_inventory(lab: Inventory, seed_venv: str) -> Inventory:
    """The seed's Studio (launchd) with the recorded job as the high instance's unit."""
    inventory = _bare(lab, **{"optillm-local": {"venv": seed_venv}})
    hosts = tuple(
        host.model_copy(update={"os": "macos", "service_manager": "launchd"}) if host.name == "studio" else host
        for host in inventory.hosts
    )
    unit = Unit(
        manager="launchd",
        name="com.example.optillm.local-high",
        path="/Users/tester/Library/LaunchAgents/com.example.optillm.local-high.plist",
        domain="gui/501",
    )
    ports = tuple(
        port.model_copy(update={"unit": unit})
        if port.port == 4040
        else port.model_copy(update={"unit": None})
        if port.host == "studio"
        else port
        for port in inventory.ports
    )
    return inventory.model_copy(update={"hosts": hosts, "ports": ports})


def _launchd_facts(user_name: str | None = None) -> HostFacts:
    job = parse_launchctl_print(
        (RECORDED / "macos-launchctl-print-gui.txt").read_text(), "com.example.optillm.local-high"
    )
    plist = parse_plist((RECORDED / "plist-optillm-local-high.plist").read_bytes(), "plist")
    facts = HostFacts("studio")
    facts.account_names = {501: "tester"}
    facts.user_homes = {"tester": "/Users/tester", "root": "/var/root"}
    facts.units[job.label] = UnitFact(
        "launchd",
        job.label,
        True,
        True,
        job.state,
        True,
        "RunAtLoad",
        job.path,
        job.pid,
        user_name,
        job.arguments,
        dict(plist.environment),
        (),
        plist.working_directory,
        {"domain": "gui/501"},
    )
    return facts


def test_the_studio_launchd_job_names_its_user_and_venv(lab: Inventory, seed_venv: str) -> None:
    inventory = _studio_launchd_inventory(lab, seed_venv)
    facts = _launchd_facts()
    _venv_marker(facts, "/Users/tester/venvs/optillm-local")
    discovery = discover(inventory, "studio", facts)
    user = discovery.get("optillm-local", "user")
    assert user is not None and user.value == "tester"
    assert user.source == "the launchd domain gui/501 of com.example.optillm.local-high (uid 501)"
    # The recorded job runs from ~/venvs/optillm-local and works in ~/.optillm: neither ends
    # with the seed's layer-gateway/ paths, so the repo root stays unknown (no guess) ...
    assert discovery.get("optillm-local", "repo_root") is None
    why = discovery.why_unknown("optillm-local", "repo_root") or ""
    assert "ProgramArguments /Users/tester/venvs/optillm-local/bin/optillm" in why
    assert "WorkingDirectory /Users/tester/.optillm" in why
    # ... and so does the relative venv the seed declares (the site must say where it is).
    assert discovery.get("optillm-local", "venv") is None

    # Without a venv in the inventory, the job's own program names it.
    no_venv = _bare(inventory)
    venv = discover(no_venv, "studio", facts).get("optillm-local", "venv")
    assert venv is not None and venv.value == "/Users/tester/venvs/optillm-local"
    assert venv.source.startswith("ProgramArguments's program /Users/tester/venvs/optillm-local/bin/optillm")


def test_a_launchd_user_name_and_the_system_domain(lab: Inventory, seed_venv: str) -> None:
    inventory = _studio_launchd_inventory(lab, seed_venv)
    facts = _launchd_facts(user_name="thestudio")
    user = discover(inventory, "studio", facts).get("optillm-local", "user")
    assert user is not None and (user.value, user.source) == (
        "thestudio",
        "the plist's UserName (com.example.optillm.local-high)",
    )
    facts = _launchd_facts()
    name = "com.example.optillm.local-high"
    facts.units[name] = replace(facts.units[name], raw_state={"domain": "system"})
    user = discover(inventory, "studio", facts).get("optillm-local", "user")
    assert user is not None and user.value == "root"


def test_the_seed_launchd_shape_with_a_repo_layout(lab: Inventory, seed_venv: str) -> None:
    """A Studio whose job runs from the seed's layout: the program's venv gives the repo root."""
    inventory = _studio_launchd_inventory(lab, seed_venv)
    facts = _launchd_facts()
    name = "com.example.optillm.local-high"
    program = "/Users/thestudio/gateway/layer-gateway/optillm-local/.venv/bin/optillm"
    facts.units[name] = replace(facts.units[name], argv=(program, "--port", "4040"))
    discovery = discover(inventory, "studio", facts)
    root = discovery.get("optillm-local", "repo_root")
    assert root is not None and root.value == "/Users/thestudio/gateway"
    assert root.source == f"the venv of ProgramArguments's program {program} (com.example.optillm.local-high)"


def test_a_service_with_no_unit_gathered_is_left_unknown(lab: Inventory) -> None:
    discovery = discover(_bare(lab), "mini", HostFacts("mini"))
    assert discovery.found == ()
    assert "no loaded unit" in (discovery.why_unknown("litellm-orch", "repo_root") or "")


def test_services_come_back_unchanged_when_the_site_says_it_all(lab: Inventory) -> None:
    service: Service = lab.service("litellm-orch")
    assert settled_service(lab, service, _mini()) is service
