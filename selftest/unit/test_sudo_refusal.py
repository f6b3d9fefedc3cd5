"""Telling sudo's own refusal (the monitor lacks a rule) from a command failing under sudo."""

from __future__ import annotations

import pytest

from conformance.facts.gather import _file_fact, sudo_refused
from conformance.transport.connection import CommandResult
from selftest.conftest import PROJECT_ROOT

RECORDED = PROJECT_ROOT / "selftest" / "recorded"


def _result(argv: tuple[str, ...], code: int, stderr: str) -> CommandResult:
    return CommandResult(argv, code, "", stderr)


@pytest.mark.parametrize(
    "stderr",
    [
        (RECORDED / "lab-mini-sudo-n-l-revoked.stderr.txt").read_text(),  # the lab, rule removed
        (RECORDED / "sudo-l" / "none.err").read_text(),
        (RECORDED / "sudo-l" / "requiretty.err").read_text(),
        "Sorry, user monitor is not allowed to execute '/usr/bin/cat /etc/shadow' as root on mini.\n",
    ],
)
def test_sudo_refusals_are_recognised(stderr: str) -> None:
    assert sudo_refused(_result(("sudo", "-n", "cat", "/etc/optillm-proxy/env"), 1, stderr))


def test_a_command_failing_under_sudo_is_not_a_refusal() -> None:
    missing = _result(("sudo", "-n", "cat", "/etc/x"), 1, "cat: /etc/x: No such file or directory\n")
    assert not sudo_refused(missing)
    # the same words from a command run without sudo are not sudo's
    assert not sudo_refused(_result(("cat", "/etc/x"), 1, "sudo: a password is required\n"))


def test_a_refused_file_names_the_host_and_a_missing_one_does_not() -> None:
    read = ("sudo", "-n", "cat", "/etc/x")
    refused = _file_fact("mini", "/etc/x", "/etc/x", _result(read, 1, "sudo: a password is required"), True)
    assert refused.refused_on == "mini" and "sudo refused to read it" in (refused.error or "")
    missing = _file_fact("mini", "/etc/x", "/etc/x", _result(read, 1, "cat: /etc/x: No such file or directory"), True)
    assert missing.refused_on is None and not missing.exists
