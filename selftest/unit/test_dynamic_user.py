"""systemd DynamicUser=yes units: the service account is the dynamic user, not root.

On the lab's systemd 252 a transient ``DynamicUser=yes`` unit was recorded
(selftest/recorded/lab-mini-systemctl-show-dynamic-user.txt): ``User=`` names the unit, the
process ran as uid 65332, and the container's account database did not know the name.
"""

from __future__ import annotations

import pytest

from conformance.contracts.service_account import judge_account
from conformance.facts.gather import SYSTEMD_PROPERTIES, _systemd_unit
from conformance.facts.model import HostFacts, Process
from conformance.facts.parsers import parse_systemctl_show_many
from conformance.inventory.loader import load_inventory
from conformance.results import Outcome
from selftest.conftest import INVENTORY_DIR
from selftest.unit.parsers._recorded import text

UNIT = "gc-record-dynuser.service"


def _facts(show: str, uid: int) -> HostFacts:
    facts = HostFacts("mini")
    [block] = parse_systemctl_show_many(show)
    facts.units[UNIT] = _systemd_unit(UNIT, block)
    facts.processes[165] = Process(165, 1, uid, "sleep")
    facts.user_ids = {"root": 0}
    facts.account_names = {0: "root"}
    return facts


def _judge(facts: HostFacts):  # type: ignore[no-untyped-def]
    service = load_inventory(INVENTORY_DIR / "lab.yaml", environ={}).service("litellm-orch")
    unit = facts.units[UNIT]
    account = service.model_copy(update={"user": unit.user})
    return judge_account(account, [(UNIT, unit.main_pid)], facts, f"the unit's User= ({UNIT})")


def test_gathering_asks_for_dynamic_user() -> None:
    assert "DynamicUser" in SYSTEMD_PROPERTIES


def test_a_dynamic_user_unit_is_judged_as_its_dynamic_user() -> None:
    facts = _facts(text("lab-mini-systemctl-show-dynamic-user.txt"), 65332)
    unit = facts.units[UNIT]
    assert (unit.user, unit.dynamic_user, unit.main_pid) == ("gc-record-dynuser", True, 165)
    result = _judge(facts)
    assert result.outcome is Outcome.PASSED, result.summary
    assert "dynamic user" in result.evidence[UNIT] and "uid 65332" in result.evidence[UNIT]


def test_empty_user_with_dynamic_user_is_named_after_the_unit() -> None:
    show = text("lab-mini-systemctl-show-dynamic-user.txt").replace("User=gc-record-dynuser\n", "User=\n")
    facts = _facts(show, 65332)
    assert facts.units[UNIT].user == "gc-record-dynuser"
    assert _judge(facts).outcome is Outcome.PASSED


@pytest.mark.parametrize("uid", [0, 1500])
def test_a_uid_outside_the_dynamic_range_is_not_the_dynamic_user(uid: int) -> None:
    result = _judge(_facts(text("lab-mini-systemctl-show-dynamic-user.txt"), uid))
    assert result.outcome is Outcome.VIOLATED
    assert "outside systemd's dynamic range" in " ".join(result.details)


def test_a_static_account_of_that_name_wins() -> None:
    # systemd.exec(5): an existing static user of the configured name is used instead.
    facts = _facts(text("lab-mini-systemctl-show-dynamic-user.txt"), 990)
    facts.user_ids["gc-record-dynuser"] = 990
    assert _judge(facts).outcome is Outcome.PASSED
