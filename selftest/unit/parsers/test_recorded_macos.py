"""Real macOS outputs published by others (see selftest/recorded/README.md for each source)."""

from __future__ import annotations

import pytest

from conformance.contracts._listeners import describe
from conformance.facts.macos_listeners import combine
from conformance.facts.parsers import ParseError, parse_launchctl_print, parse_lsof, parse_netstat_macos
from conformance.facts.parsers.listeners import read_netstat_macos
from selftest.unit.parsers._recorded import text


def by_endpoint(listeners):
    return {(item.family, item.address, item.port): item for item in listeners}


def test_macos_26_names_with_spaces_and_cut_names_are_read_whole():
    found = by_endpoint(parse_netstat_macos(text("macos-26-netstat-anv-names-with-spaces.txt")))
    assert len(found) == 14  # the ESTABLISHED mysqld row is not a listener
    assert found[("ipv6", "::1", 7679)].processes == (("Google Drive", 1341),)
    assert found[("ipv4", "127.0.0.1", 58400)].processes == (("ASOctaneSupportX", 57295),)
    assert found[("ipv6", "::", 43257)].processes == (("io.tailscale.ipn", 1233),)
    assert found[("ipv4", "127.0.0.1", 8021)].processes == (("launchd", 1),)
    wildcard = found[("ipv6", "::", 38123)]
    assert wildcard.dual_stack and wildcard.bind_text() == "*"  # tcp46
    assert not found[("ipv6", "::", 5000)].dual_stack  # tcp6: v6-only
    assert found[("ipv4", "0.0.0.0", 5000)].processes == (("ControlCenter", 724),)


def test_macos_26_established_rows_with_spaced_names_are_no_listeners():
    assert parse_netstat_macos(text("macos-26-netstat-anv-tahoe-established.txt")) == []


def test_macos_10_14_pid_column_rows_without_listeners():
    assert parse_netstat_macos(text("macos-10.14-netstat-vnp-tcp.txt")) == []


def test_macos_26_truncated_link_local_row_is_skipped_not_fatal():
    sample = text("macos-26-netstat-anv-linklocal.txt")
    with pytest.raises(ParseError, match="may be truncated"):
        parse_netstat_macos(sample)  # the strict parser still refuses to guess
    reading = read_netstat_macos(sample)
    assert [(row.line_no, row.port) for row in reading.skipped] == [(7, 62503)]
    found = by_endpoint(reading.listeners)
    assert set(found) == {
        ("ipv4", "0.0.0.0", 65193),
        ("ipv4", "127.0.0.1", 5173),
        ("ipv6", "::1", 3000),
        ("ipv4", "192.168.1.147", 8080),
    }
    assert found[("ipv4", "192.168.1.147", 8080)].processes == (("Google Chrome H", 777),)
    assert found[("ipv4", "0.0.0.0", 65193)].processes == (("Python", 27328),)


# lsof as the primary source, enriched by the recorded macOS 26 netstat. These lsof lines are
# written for the test (the publishers of the netstat captures did not publish lsof alongside):
# same pids and ports as the recording, in the lsof format of the recordings below.
_LSOF_FOR_LINKLOCAL = (
    "COMMAND     PID USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME\n"
    "remoted     368 root    5u  IPv6 0x5b1e4a0c83b3f1a1      0t0  TCP [fe80::c4c8:5ff:fe1d:10a%anpi0]:62503 (LISTEN)\n"
    "remoted     368 root    6u  IPv6 0x5b1e4a0c83b3f1a2      0t0  TCP *:62503 (LISTEN)\n"
    "Python    27328 me      3u  IPv4 0x5b1e4a0c83b3f1a3      0t0  TCP *:65193 (LISTEN)\n"
    "node      13950 me     20u  IPv6 0x5b1e4a0c83b3f1a4      0t0  TCP [::1]:3000 (LISTEN)\n"
)
_LSOF_FOR_TCP46 = (
    "COMMAND     PID USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME\n"
    "node      59043 me     21u  IPv6 0x5b1e4a0c83b3f1b1      0t0  TCP *:38123 (LISTEN)\n"
    "io.tails   1233 me      9u  IPv6 0x5b1e4a0c83b3f1b2      0t0  TCP *:43257 (LISTEN)\n"
)


def test_unreadable_netstat_row_degrades_only_its_port_and_says_so():
    combined = combine(_LSOF_FOR_LINKLOCAL, text("macos-26-netstat-anv-linklocal.txt"))
    found = by_endpoint(combined.listeners)
    assert len(found) == 4  # nothing lsof read is lost
    scoped = found[("ipv6", "fe80::c4c8:5ff:fe1d:10a", 62503)]
    assert scoped.interface == "anpi0"  # the scope stays the interface
    assert scoped.notes == ()  # a concrete address needs nothing from netstat
    wildcard = found[("ipv6", "::", 62503)]
    assert not wildcard.dual_stack_known
    assert wildcard.notes and "netstat line 7" in wildcard.notes[0] and "truncated" in wildcard.notes[0]
    assert "note: dual-stack not known" in describe([wildcard])
    assert combined.notes == [
        "netstat line 7 unreadable (IPv6 address 'fe80::c4c8:5ff:f' may be truncated; run netstat with -W): "
        "dual-stack not known for port 62503"
    ]
    assert found[("ipv6", "::1", 3000)].notes == ()


def test_tcp46_from_newest_netstat_marks_the_lsof_wildcard_dual_stack():
    combined = combine(_LSOF_FOR_TCP46, text("macos-26-netstat-anv-names-with-spaces.txt"))
    found = by_endpoint(combined.listeners)
    node = found[("ipv6", "::", 38123)]
    assert node.dual_stack and node.dual_stack_known and node.accepts_ipv4()
    tailscale = found[("ipv6", "::", 43257)]
    assert not tailscale.dual_stack and not tailscale.accepts_ipv4()  # tcp6 there: v6-only
    assert combined.notes == []


def test_failed_netstat_keeps_lsof_and_says_why():
    combined = combine(_LSOF_FOR_TCP46, None, "netstat -anv -p tcp failed (exit 1)")
    assert len(combined.listeners) == 2
    assert combined.notes == ["dual-stack not checked: netstat -anv -p tcp failed (exit 1)"]


def test_garbled_netstat_keeps_lsof_and_notes_the_wildcards():
    combined = combine(_LSOF_FOR_TCP46, "tcp4 0 0 127.0.0.1.1 *.* LISTEN\n")
    assert len(combined.listeners) == 2
    assert all(item.notes for item in combined.listeners)
    assert "unreadable" in combined.notes[0]


def test_lsof_escaped_command_and_docker_wildcard():
    found = by_endpoint(parse_lsof(text("macos-lsof-iPn-listen-code-helper.txt")))
    assert found[("ipv4", "127.0.0.1", 6333)].processes == (("Code H", 2866),)
    docker = found[("ipv6", "::", 6333)]
    assert docker.processes == (("com.docke", 40002),) and not docker.dual_stack_known


def test_lsof_macos_14_without_n_skips_named_connections():
    found = by_endpoint(parse_lsof(text("macos-14-lsof-iP-node.txt")))
    assert set(found) == {("ipv6", "::", 4211), ("ipv6", "::", 4302), ("ipv6", "::", 4301)}


def test_launchctl_print_real_agent_not_running():
    job = parse_launchctl_print(text("macos-launchctl-print-user-not-running.txt"), "local.resticprofile.self.check")
    assert job.target == "user/503/local.resticprofile.self.check"
    assert (job.state, job.pid, job.last_exit_code) == ("not running", None, "0")
    assert job.arguments[-2:] == ("run-schedule", "check@self")
    assert job.environment["XPC_SERVICE_NAME"] == "local.resticprofile.self.check"
    assert "PATH" in job.environment and "Minute" not in job.environment  # nested blocks stay out
    assert job.properties["spawn type"] == "daemon (3)"
