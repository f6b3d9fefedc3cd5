"""Waivers: declared in the site file with an expiry, applied to exactly the violation they
name, reported as skipped with the justification, never escalated, and reported themselves
when expired or naming no check."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from conformance.bulletin import events
from conformance.bulletin.store import open_problems, read_entries, update_bulletin
from conformance.errors import InventoryError
from conformance.inventory.loader import load_inventory
from conformance.inventory.model import Inventory
from conformance.results import Outcome, Result, Subject
from conformance.waivers import apply_waiver
from selftest.conftest import EXPOSED, INVENTORY_DIR

BOUND = Subject(
    check="port-bound", host="mini", service="optillm-proxy", port=4020, owner="optillm-proxy", layer="gateway"
)
TODAY = date(2026, 3, 2)

WAIVER = """\
waivers:
  - contract: {contract}
    subject: {subject}
    owner: optillm-proxy
    justification: Bound to 0.0.0.0 behind the host firewall until the move (ticket GW-12).
    expires: {expires}
    {extra}
"""


def site_text(
    expires: str = "2026-04-01", extra: str = "", contract: str = "port-bound", subject: str = "mini/optillm-proxy/4020"
) -> str:
    return WAIVER.format(expires=expires, extra=extra, contract=contract, subject=subject)


def inventory_with(tmp_path: Path, **kwargs: str) -> Inventory:
    site = tmp_path / "site.yaml"
    site.write_text(site_text(**kwargs), encoding="utf-8")
    return load_inventory(INVENTORY_DIR / "gateway.yaml", site, environ={})


def bound_to(address: str, subject: Subject = BOUND) -> Result:
    return Result(Outcome.VIOLATED, f"port 4020 is bound to {address}:4020, declared 127.0.0.1 only", subject=subject)


def test_a_current_waiver_waives_exactly_its_contract_and_subject(tmp_path: Path) -> None:
    inventory = inventory_with(tmp_path)
    waived = apply_waiver(bound_to("0.0.0.0"), inventory, TODAY)
    assert waived.outcome is Outcome.WAIVED
    assert "waived until 2026-04-01 by optillm-proxy: Bound to 0.0.0.0 behind the host firewall" in waived.details[-1]
    # another contract on the same subject is a new problem, not waived
    assert apply_waiver(bound_to("0.0.0.0", EXPOSED), inventory, TODAY).outcome is Outcome.VIOLATED
    # another port is another subject
    other = Subject(check="port-bound", host="mini", service="litellm-orch", port=4000, layer="gateway")
    assert apply_waiver(bound_to("127.0.0.1", other), inventory, TODAY).outcome is Outcome.VIOLATED
    # a broken check is never turned into "waived": could not check is not the accepted deviation
    broken = Result(Outcome.BROKEN, "cannot read the sockets", subject=BOUND)
    assert apply_waiver(broken, inventory, TODAY).outcome is Outcome.BROKEN


def test_a_waiver_with_match_does_not_hide_another_failure_on_its_subject(tmp_path: Path) -> None:
    inventory = inventory_with(tmp_path, extra="match: bound to 0.0.0.0")
    assert apply_waiver(bound_to("0.0.0.0"), inventory, TODAY).outcome is Outcome.WAIVED
    other = apply_waiver(bound_to("198.51.100.10"), inventory, TODAY)
    assert other.outcome is Outcome.VIOLATED
    assert "covers only a failure mentioning 'bound to 0.0.0.0'" in other.details[-1]


def test_an_expired_waiver_counts_again(tmp_path: Path) -> None:
    inventory = inventory_with(tmp_path, expires="2026-03-02")  # expires today: no longer applies
    result = apply_waiver(bound_to("0.0.0.0"), inventory, TODAY)
    assert result.outcome is Outcome.VIOLATED
    assert "expired on 2026-03-02: this counts again" in result.details[-1]


def test_a_waiver_without_expiry_or_with_an_unknown_owner_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "waivers:\n  - contract: port-bound\n    subject: mini/optillm-proxy/4020\n"
        "    owner: optillm-proxy\n    justification: firewall in front until the move\n",
        encoding="utf-8",
    )
    with pytest.raises(InventoryError, match="expires"):
        load_inventory(INVENTORY_DIR / "gateway.yaml", site, environ={})
    site.write_text(site_text().replace("owner: optillm-proxy", "owner: nobody"), encoding="utf-8")
    with pytest.raises(InventoryError, match="no owner named 'nobody'"):
        load_inventory(INVENTORY_DIR / "gateway.yaml", site, environ={})


def test_the_bulletin_closes_a_waived_entry_and_reopens_it_when_the_waiver_expires(tmp_path: Path) -> None:
    path = tmp_path / "bulletin.jsonl"
    inventory = inventory_with(tmp_path, expires="2026-03-10")
    update_bulletin(path, [bound_to("0.0.0.0")], "r1", 24)  # before the waiver: opened
    waived = apply_waiver(bound_to("0.0.0.0"), inventory, TODAY)
    update = update_bulletin(path, [waived], "r2", 24)
    assert update.waived == [BOUND.fingerprint] and update.still_open == 0
    assert read_entries(path)[-1]["event"] == events.WAIVED
    # while waived: nothing is escalated, run after run
    assert update_bulletin(path, [waived], "r3", 24).opened == []
    expired = apply_waiver(bound_to("0.0.0.0"), inventory, date(2026, 3, 10))
    assert update_bulletin(path, [expired], "r4", 24).opened == [BOUND.fingerprint]
    assert list(open_problems(read_entries(path))) == [BOUND.fingerprint]


# A site's own contract (contracts/ next to inventory/) that finds every port bound wide open:
# a real run through the plugin, with no host needed.
WIDE_OPEN = """
from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.results import Result, violated


def judge(case: Case) -> Result:
    return violated(f"port {case.port.port} is bound to 0.0.0.0:{case.port.port}")


CONTRACT = ContractSpec(
    id="port-wide-open", suite="contracts", scope=Scope.PORT, judge=judge, statement="Ports are bound wide open."
)
"""


def run_with_waiver(harness_project: pytest.Pytester, text: str) -> tuple[pytest.RunResult, Path]:
    (harness_project.path / "contracts").mkdir()
    (harness_project.path / "contracts" / "port_wide_open.py").write_text(WIDE_OPEN, encoding="utf-8")
    site = harness_project.path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    bulletin = harness_project.path / "bulletin.jsonl"
    result = harness_project.runpytest(
        "-p",
        "no:randomly",
        "-rs",
        f"--site={site}",
        f"--bulletin={bulletin}",
        "--conformance-host=mini",
        "-k",
        "port_wide_open or waiver_valid",
    )
    return result, bulletin


def test_a_waived_check_runs_and_is_skipped_with_its_justification(harness_project: pytest.Pytester) -> None:
    text = site_text(expires="2099-01-01", contract="port-wide-open")
    result, bulletin = run_with_waiver(harness_project, text)
    # mini's three ports: 4000 and 4090 violated, 4020 waived (skipped); the waiver case (no host)
    # is deselected by --conformance-host, as every check of the other hosts is
    outcomes = result.parseoutcomes()
    assert (outcomes.get("failed"), outcomes.get("skipped")) == (2, 1), result.stdout.str()
    out = result.stdout.str()
    assert "waived until 2099-01-01 by optillm-proxy: Bound to 0.0.0.0 behind the host firewall" in out
    assert "0 passed, 2 failed, 0 broken, 0 skipped, 1 waived" in out
    junit = (harness_project.path / "reports" / "junit.xml").read_text()
    assert "<skipped" in junit and "until the move (ticket GW-12)" in junit
    opened = [entry["fingerprint"] for entry in read_entries(bulletin) if entry["event"] == "opened"]
    assert opened == [
        "gateway/port-wide-open/mini/litellm-orch/4000",
        "gateway/port-wide-open/mini/system-monitor/4090",
    ]


def test_expired_and_unknown_waivers_are_reported(harness_project: pytest.Pytester) -> None:
    text = site_text(expires="2020-01-01", contract="port-wide-open") + site_text(
        expires="2099-01-01", contract="port-wide-open", subject="mini/optillm-proxy/4021"
    ).replace("waivers:\n", "")
    (harness_project.path / "contracts").mkdir()
    (harness_project.path / "contracts" / "port_wide_open.py").write_text(WIDE_OPEN, encoding="utf-8")
    site = harness_project.path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    result = harness_project.runpytest("-p", "no:randomly", f"--site={site}", "-k", "waiver_valid")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "expired on 2020-01-01: renew or remove it" in out
    assert "the waiver of port-wide-open on mini/optillm-proxy/4021 names no check of this inventory" in out
