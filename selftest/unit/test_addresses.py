"""Host spellings are compared by what they reach, never by text or a first label."""

from __future__ import annotations

import pytest

from conformance.facts.addresses import HostIdentity, connect_address

MINI = HostIdentity.of(["mini", "mini.lab.example", "gw"], ["198.51.100.10"])


@pytest.mark.parametrize(
    ("spelling", "stays"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        ("127.0.0.2", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", True),
        ("[::]", True),
        ("mini", True),
        ("Mini.Lab.Example.", True),
        ("gw", True),  # a declared alias
        ("198.51.100.10", True),
        ("::ffff:198.51.100.10", True),
        ("mini.attacker.example", False),
        ("minix", False),
        ("198.51.100.11", False),
    ],
)
def test_which_spellings_stay_on_the_host(spelling, stays):
    assert MINI.reached_from_itself(spelling) is stays


def test_from_elsewhere_only_whole_names_aliases_and_addresses_name_the_host():
    assert MINI.named_by("mini.lab.example") and MINI.named_by("gw") and MINI.named_by("198.51.100.10")
    assert not MINI.named_by("mini.attacker.example")
    assert not MINI.named_by("localhost")


def test_connect_address():
    assert connect_address("localhost", MINI) == "127.0.0.1"
    assert connect_address("[::ffff:127.0.0.1]", MINI) == "127.0.0.1"
    assert connect_address("mini", MINI) == "198.51.100.10"
    assert connect_address("0.0.0.0", MINI) is None  # lands on an OS-specific local address
    assert connect_address("mini.attacker.example", MINI) is None
