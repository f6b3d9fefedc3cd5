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


# launchctl print of jobs with event triggers whose descriptors hold XPC arrays
# ('"WatchPaths" => [' ... '0 = "..."' ... ']'), and a running job whose LWCR block holds an
# array element that printed no value, its closer on the same line ('0 = \t\t\t\t]').
WATCHPATHS_27 = "macos-27-launchctl-print-gui-watchpaths-array.txt"
WATCHPATHS_14 = "macos-14-launchctl-print-gui-watchpaths-array.txt"
RUNNING_LWCR_27 = "macos-27-launchctl-print-gui-running-lwcr.txt"


def test_launchctl_print_macos_27_watchpaths_array_is_read_whole():
    job = parse_launchctl_print(text(WATCHPATHS_27), "com.sglavoie.sync-legacy")
    assert (job.state, job.pid, job.last_exit_code) == ("not running", None, "1")
    assert job.program == "/Users/sglavoie/.local/bin/sync-legacy.sh"
    assert job.arguments == ("/Users/sglavoie/.local/bin/sync-legacy.sh",)
    assert job.environment == {"OSLogRateLimit": "64", "XPC_SERVICE_NAME": "com.sglavoie.sync-legacy"}
    assert job.properties["domain"] == "gui/501 [100020]"
    # the fields after the event triggers are read too, and nothing was left unread
    assert job.properties["properties"] == "inferred program | managed LWCR"
    assert job.unreadable == () and job.notes() == []


def test_launchctl_print_macos_14_watchpaths_array_is_read_whole():
    job = parse_launchctl_print(text(WATCHPATHS_14), "com.teamwork-leader.auto-resume-daemon")
    assert (job.state, job.pid, job.last_exit_code) == ("spawn scheduled", None, "1")
    assert job.arguments[:2] == ("/usr/bin/env", "python3") and len(job.arguments) == 5
    assert job.working_directory == "/Users/runner/work/teamwork-leader/teamwork-leader/.teamlead-project"
    assert job.environment["TEAMLEAD_DAEMON_VERSION"] == "v0.1.7"
    assert "successful exit" not in job.environment and "SSH_AUTH_SOCK" not in job.environment
    assert job.properties["properties"] == "runatload | inferred program | system service | tle system"
    assert job.unreadable == ()


def test_launchctl_print_macos_27_running_job_with_glued_array_closer():
    job = parse_launchctl_print(text(RUNNING_LWCR_27), "com.sglavoie.ddc-brightnessd")
    assert job.running and job.pid == 1076 and job.last_exit_code == "(never exited)"
    assert job.program == "/Users/sglavoie/.local/bin/ddc-brightnessd"
    assert job.environment["DDC_DISPLAY"] == "PA27JCV"
    assert job.properties["domain"] == "gui/501 [100020]"
    assert job.properties["spawn type"] == "interactive (4)"
    assert '"vers" => 1' not in job.properties and "vers" not in job.properties  # nested entries stay out
    assert job.unreadable == ()


def test_launchctl_print_macos_26_empty_argument_is_kept():
    job = parse_launchctl_print(text("macos-26-launchctl-print-gui-empty-argument.txt"), "com.n138probe.print")
    assert job.arguments == ("/usr/bin/true", "scheduled", "run", "--job", "doctor & x", "")
    assert job.properties["properties"] == "inferred program"


def _insert_after(sample: str, anchor: str, extra: str) -> str:
    assert sample.count(anchor) == 1, anchor
    return sample.replace(anchor, anchor + extra)


# Each: a line launchctl's grammar does not place, in a nested block of a real recording; the
# path of the block the line is in; the line number of the odd line.
ODD_NESTED = [
    pytest.param(
        WATCHPATHS_27,
        lambda s: _insert_after(s, '\t\t\t\t"WatchPaths" => [\n', "\t\t\t\t\t\t\tgarbage\n"),
        'event triggers > com.apple.launchd.WatchPaths > descriptor > "WatchPaths"',
        42,
        "depth 7 inside a block at depth 5",
        id="too-deep-in-array",
    ),
    pytest.param(
        WATCHPATHS_27,
        lambda s: s.replace("\t\t\t\t]\n", ""),  # the array is never closed
        'event triggers > com.apple.launchd.WatchPaths > descriptor > "WatchPaths"',
        46,
        "blocks at depth 4+ are open",
        id="array-left-open",
    ),
    pytest.param(
        WATCHPATHS_14,
        lambda s: s.replace("\t\t\twatching = 0\n\t\t}", "\t\t\twatching = 0\n\t\t]"),
        'event channels > "com.apple.fsevents.matching"',
        68,
        "']' closes the '{' opened at line 61",
        id="wrong-closer",
    ),
    pytest.param(
        RUNNING_LWCR_27,
        lambda s: s.replace('\t\t"vers" => 1', '\t\t  "vers" => 1'),
        "LWCR",
        35,
        "not tabs",
        id="spaces-in-nested-block",
    ),
    pytest.param(
        RUNNING_LWCR_27,
        lambda s: _insert_after(s, "\tcpumon = default\n", "\t\tstray\n\t\t\tlines\n"),
        "(top level)",
        81,
        "depth 2 inside a block at depth 1",
        id="stray-lines-at-top-level",
    ),
]


@pytest.mark.parametrize(("name", "mutate", "block", "line_no", "reason"), ODD_NESTED)
def test_launchctl_print_odd_nested_line_degrades_only_its_block(name, mutate, block, line_no, reason):
    original = parse_launchctl_print(text(name), label := text(name).split(" = {", 1)[0].split("/")[-1])
    job = parse_launchctl_print(mutate(text(name)), label)
    # the fields the checks use are still read, the same as from the unmodified recording
    for field in ("state", "pid", "program", "arguments", "environment", "last_exit_code", "path"):
        assert getattr(job, field) == getattr(original, field), field
    assert job.properties["domain"] == original.properties["domain"]
    assert job.properties["properties"] == original.properties["properties"]  # read after the odd block
    [unread] = job.unreadable
    assert (unread.block, unread.line_no) == (block, line_no)
    assert reason in unread.reason
    [note] = job.notes()
    assert f"block '{block}'" in note and f"line {line_no}" in note and job.target in note


def test_launchctl_print_still_refuses_what_matters():
    sample = text(RUNNING_LWCR_27)
    label = "com.sglavoie.ddc-brightnessd"
    with pytest.raises(ParseError, match="expected exactly"):
        parse_launchctl_print(sample, "com.sglavoie.ddc")
    with pytest.raises(ParseError, match="truncated"):
        parse_launchctl_print(sample[: sample.index("\tdomain = ")], label)
    with pytest.raises(ParseError, match="'arguments' block cannot be read"):
        parse_launchctl_print(
            sample.replace("\t\t/Users/sglavoie/.local/bin/ddc", "\t\t\t/Users/sglavoie/.local/bin/ddc"), label
        )
    with pytest.raises(ParseError, match="not tabs"):
        parse_launchctl_print(sample.replace("\tstate = running", "  state = running"), label)
