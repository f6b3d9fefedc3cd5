"""The owners' document against the inventory: the project's copy of the seed agrees with
inventory/gateway.yaml, and each kind of edit on either side is a finding that names the
document's row and the inventory's record."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main as cli_main
from conformance.inventory.diff import NOT_IN_DOCUMENT, NOT_IN_INVENTORY, Finding, diff_document
from conformance.inventory.document import DocumentError, parse_document
from conformance.inventory.loader import load_located_inventory
from selftest.conftest import INVENTORY_DIR, PROJECT_ROOT

DOC_PATH = PROJECT_ROOT / "docs" / "gateway-layer.md"
SEED = DOC_PATH.read_text(encoding="utf-8")


def findings_for(document_text: str, site: Path | None = None) -> list[Finding]:
    inventory, source = load_located_inventory(INVENTORY_DIR / "gateway.yaml", site, environ={})
    return diff_document(parse_document(document_text, "gateway-layer.md"), inventory, source)


def edited(old: str, new: str) -> str:
    assert SEED.count(old) == 1, old
    return SEED.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_the_unmodified_seed_agrees_with_the_inventory() -> None:
    assert findings_for(SEED) == []


def test_the_project_copy_is_the_seed_as_parsed() -> None:
    document = parse_document(SEED)
    assert [s.title for s in document.services] == [
        "LiteLLM (litellm-orch)",
        "OptiLLM proxy",
        "OptiLLM local (Studio)",
        "System monitor",
    ]
    local = document.services[2]
    assert local.ports == (4040, 4041, 4042)
    assert (local.exposure_kind, local.exposure_host, local.unit_manager) == ("lan", "Studio", "launchd")
    assert document.services[1].notes == ("Must point upstream to LiteLLM", "avoid routing loops")
    assert [(p.port, p.qualifiers) for p in document.ports][-2:] == [
        (4042, ("Studio", "fast", "reserved")),
        (4090, ("localhost only",)),
    ]
    monitor = document.services[3]
    assert (monitor.bind, monitor.ports, monitor.exposure_kind, monitor.health_paths) == (
        "127.0.0.1",
        (4090,),
        "local",
        ("/healthz",),
    )
    assert [(h.port, h.path) for h in document.health_checks] == [
        (4000, "/health"),
        (4000, "/health/readiness"),
        (4000, "/health/liveliness"),
    ]
    assert document.planned_tables[3].names == ("alerts", "bulletin")
    assert document.owners is not None and document.owners.service_owners == ("litellm-orch", "optillm-proxy")
    assert document.escalation[0].text == "Monitor is read-only"  # the non-breaking hyphen normalized


def test_a_changed_port_is_found_in_the_table_and_in_the_ports_list() -> None:
    text = edited("| 127.0.0.1 | 4020 |", "| 127.0.0.1 | 4021 |").replace("**4020**", "**4021**")
    findings = findings_for(text)
    row = line_of(text, "| OptiLLM proxy |")
    table = [f for f in findings if f.document == f"gateway-layer.md:{row} (Services: OptiLLM proxy, Port)"]
    assert len(table) == 1 and "[4021] vs [4020]" in table[0].message
    assert table[0].inventory.endswith("services[optillm-proxy]")
    listed = [f for f in findings if "(Ports: 4021)" in f.document]
    assert listed and listed[0].inventory == NOT_IN_INVENTORY
    missing = [f for f in findings if f.document == NOT_IN_DOCUMENT and "ports[mini:4020]" in f.inventory]
    assert missing and missing[0].inventory.startswith("inventory/gateway.yaml:")


def test_an_added_service_is_a_row_without_a_record() -> None:
    row = "| Tools proxy | Tools gateway | 127.0.0.1 | 4050 | Local only | `/health` | (planned) | (planned) | New. |\n"
    text = edited("| System monitor |", row + "| System monitor |")
    findings = findings_for(text)
    added = [f for f in findings if "Services: Tools proxy" in f.document]
    assert len(added) == 1
    assert added[0].inventory == NOT_IN_INVENTORY
    assert added[0].document == f"gateway-layer.md:{line_of(text, '| Tools proxy |')} (Services: Tools proxy)"
    # its note is new free text, which is a finding of its own
    assert any("'New' is not mapped" in f.message for f in findings)


def test_a_changed_bind_names_the_port_record() -> None:
    text = edited(
        "| Optimization proxy behind LiteLLM | 127.0.0.1 |", "| Optimization proxy behind LiteLLM | 0.0.0.0 |"
    )
    findings = findings_for(text)
    assert len(findings) == 1
    finding = findings[0]
    assert finding.document == f"gateway-layer.md:{line_of(text, '| OptiLLM proxy |')} (Services: OptiLLM proxy, Bind)"
    assert finding.inventory.endswith("ports[mini:4020].bind")
    assert "'0.0.0.0' vs '127.0.0.1'" in finding.message


def test_a_removed_contract_leaves_the_inventory_contract_without_a_source() -> None:
    text = edited("- Gateway never runs inference.\n", "")
    findings = findings_for(text)
    assert {f.document for f in findings} == {NOT_IN_DOCUMENT}
    assert any(
        "contracts[gateway-never-runs-inference]" in f.inventory and "no statement" in f.message for f in findings
    )
    assert any("'Gateway never runs inference' is no longer in the document" in f.message for f in findings)


def test_a_changed_note_is_a_finding_not_noise() -> None:
    text = edited("avoid routing loops.", "routing loops are fine.")
    findings = findings_for(text)
    row = line_of(text, "| OptiLLM proxy |")
    assert any(
        f.document == f"gateway-layer.md:{row} (OptiLLM proxy / Notes)"
        and "'routing loops are fine' is not mapped" in f.message
        for f in findings
    )
    # the contract that note was the source of has lost it
    assert any("contracts[no-routing-loop]" in f.inventory for f in findings)


def test_reordered_rows_and_bullets_are_no_finding() -> None:
    lines = SEED.splitlines(keepends=True)
    litellm = line_of(SEED, "| LiteLLM (litellm-orch) |") - 1
    monitor = line_of(SEED, "| System monitor |") - 1
    lines[litellm], lines[monitor] = lines[monitor], lines[litellm]
    first_port = line_of(SEED, "**4000**") - 1
    lines[first_port], lines[first_port + 4] = lines[first_port + 4], lines[first_port]
    contract = line_of(SEED, "- Gateway never runs inference.") - 1
    lines[contract], lines[contract + 1] = lines[contract + 1], lines[contract]
    text = "".join(lines)
    assert text != SEED
    assert findings_for(text) == []


def test_a_changed_qualifier_and_reserved_state_are_findings() -> None:
    text = edited("(Studio, fast, reserved)", "(Studio, fast)")
    findings = findings_for(text)
    assert len(findings) == 1
    assert findings[0].inventory.endswith("ports[studio:4042].state")


def test_a_health_path_only_the_inventory_has_must_be_explained(tmp_path: Path) -> None:
    # The seed says "none documented" for the proxy; the inventory's check says why it exists.
    site = tmp_path / "site.yaml"
    site.write_text("health_checks:\n  - id: optillm-proxy-health\n    not_in_document: null\n", encoding="utf-8")
    findings = findings_for(SEED, site)
    assert len(findings) == 1
    assert findings[0].inventory.endswith("health_checks[optillm-proxy-health].path")
    # once the document lists it, the explanation is stale
    text = edited("| none documented |", "| `/health` |")
    stale = findings_for(text)
    assert len(stale) == 1 and "drop not_in_document" in stale[0].message


def test_an_inventory_only_service_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "services:\n  - name: tools\n    title: Tools\n    kind: generic\n"
        "    host: mini\n    tier: tools\n    role: Tools\n",
        encoding="utf-8",
    )
    findings = findings_for(SEED, site)
    assert len(findings) == 1
    assert findings[0].document == NOT_IN_DOCUMENT
    assert findings[0].inventory == f"{site}:3 services[tools].title"


def test_changed_owners_are_findings() -> None:
    text = edited("`litellm-orch`, `optillm-proxy`", "`litellm-orch`, `optillm-team`")
    messages = sorted(f.message for f in findings_for(text))
    assert messages == [
        "no owner 'optillm-team' of kind service",
        "service owner 'optillm-proxy' is not in the document's Ownership",
    ]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("| Service | Role |", "| Name | Role |", "services table columns"),
        ("**4041** — OptiLLM", "4041 — OptiLLM", "a port bullet reads"),
        ("## Contracts", "## Promises", "section 'Promises'"),
    ],
)
def test_a_layout_the_reader_does_not_know_is_an_error_naming_the_line(old: str, new: str, message: str) -> None:
    text = edited(old, new)
    with pytest.raises(DocumentError, match=message) as caught:
        parse_document(text)
    assert caught.value.line == line_of(text, new)


def test_the_command_exits_non_zero_on_any_disagreement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gateway = str(INVENTORY_DIR / "gateway.yaml")
    assert cli_main(["inventory", "diff", str(DOC_PATH), "--inventory", gateway]) == 0
    changed = tmp_path / "gateway-layer.md"
    changed.write_text(edited("| 127.0.0.1 | 4020 |", "| 127.0.0.1 | 4021 |"), encoding="utf-8")
    capsys.readouterr()
    assert cli_main(["inventory", "diff", str(changed), "--inventory", gateway]) == 1
    out = capsys.readouterr().out
    assert "Services: OptiLLM proxy, Port" in out and "disagreement(s)" in out
    broken = tmp_path / "broken.md"
    broken.write_text(edited("## Contracts", "## Promises"), encoding="utf-8")
    assert cli_main(["inventory", "diff", str(broken), "--inventory", gateway]) == 2


PLANNED_MONITOR_ROW = (
    "| System monitor | Health/telemetry aggregator | (planned) | (planned) | Local only | N/A | (planned) | (planned) "
    "| Read\u2011only monitor; escalates via DB bulletin. |"  # the seed writes a non-breaking hyphen
)


def test_the_owners_planned_monitor_row_names_each_field_the_built_monitor_changed() -> None:
    """The owners' original row plans the monitor; against the inventory of the built monitor the diff
    names every field the owners must now write down (bind and port, health, unit, config, the port)."""
    row = next(line for line in SEED.splitlines() if line.startswith("| System monitor |"))
    text = SEED.replace(row, PLANNED_MONITOR_ROW).replace("- **4090** — System monitor (localhost only)\n", "")
    findings = findings_for(text)
    assert findings, "a planned row against a live monitor must be a disagreement"
    assert all("system-monitor" in f.inventory or "4090" in f.inventory for f in findings), findings
    columns = {f.document.rsplit(", ", 1)[-1].rstrip(")") for f in findings if "Services: System monitor" in f.document}
    assert columns >= {"Bind/Port", "Health/Status", "Systemd Unit", "Env/Config"}, findings
