"""Listener parsers on recorded output, plus the address-semantics truth table."""

import pickle

import pytest

from conformance.facts.parsers import (
    OLD_SS_V6ONLY,
    KernelTables,
    Listener,
    ParseError,
    parse_lsof,
    parse_lsof_fields,
    parse_netstat_linux,
    parse_netstat_macos,
    parse_proc_net_tcp,
    parse_ss,
)

from ._recorded import text


def by_port(listeners: list[Listener]) -> dict[int, Listener]:
    ports = [item.port for item in listeners]
    assert len(ports) == len(set(ports)), ports
    return {item.port: item for item in listeners}


# What each throwaway listener really was (see selftest/recorded/README.md).
EXPECTED_LINUX = {
    47101: ("127.0.0.1", "ipv4", False, None),
    47102: ("::1", "ipv6", False, None),
    47103: ("0.0.0.0", "ipv4", False, None),
    47104: ("::", "ipv6", False, None),
    47105: ("::", "ipv6", True, None),
    47106: ("::ffff:127.0.0.1", "ipv6", False, None),
    47107: ("127.0.0.53", "ipv4", False, None),
    47108: ("127.0.0.54", "ipv4", False, "lo"),
    47109: ("fe80::fc:ff:fe00:1", "ipv6", False, "eth0"),
    47110: ("192.0.2.2", "ipv4", False, None),
}


@pytest.mark.parametrize("sample", ["linux-ss-Htlnp-lab.txt", "linux-ss-Htln-lab.txt", "linux-ss-tlnp-header-lab.txt"])
def test_ss_recorded(sample):
    found = by_port(parse_ss(text(sample)))
    for port, (address, family, dual, iface) in EXPECTED_LINUX.items():
        item = found[port]
        assert (item.address, item.family, item.dual_stack, item.interface) == (
            address,
            family,
            dual,
            iface,
        ), item.raw
        assert item.dual_stack_known
    assert found[2024].process is None and found[2024].pid is None


def test_ss_processes_all_kept():
    found = by_port(parse_ss(text("linux-ss-Htlnp-lab.txt")))
    assert found[47101].processes == (("python3", 4745),)
    assert found[47110].processes == (("python3", 6393), ("python3", 6351))
    assert (found[47110].process, found[47110].pid) == ("python3", 6393)
    assert found[47110].raw.startswith("LISTEN 0      5                      192.0.2.2:47110")
    assert by_port(parse_ss(text("linux-ss-Htln-lab.txt")))[47101].processes == ()


def test_ss_lab_mini():
    found = {x.port: x for x in parse_ss(text("lab-mini-ss-Htlnp.txt")) if x.port != 22}
    assert found[4000].bind_text() == "0.0.0.0" and found[4000].process == "litellm"
    assert found[4020].is_loopback_only() and found[4020].pid == 35
    sshd = [x for x in parse_ss(text("lab-mini-ss-Htlnp.txt")) if x.port == 22]
    assert sorted(x.bind_text() for x in sshd) == ["0.0.0.0", "[::]"]


def test_ss_netid_column_and_other_states():
    sample = (
        "Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        "udp   UNCONN 0      0          0.0.0.0:68        0.0.0.0:*\n"
        'tcp   LISTEN 0      5        127.0.0.1:9 0.0.0.0:* users:(("a b",pid=7,fd=3))\n'
        "tcp   ESTAB  0      0        127.0.0.1:9 127.0.0.1:5000\n"
    )
    [item] = parse_ss(sample)
    assert item.processes == (("a b", 7),)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("LISTEN 0 5 foo 0.0.0.0:*", "cannot parse local address 'foo'"),
        ("LISTEN 0 5 127.0.0.1:http 0.0.0.0:*", "port 'http'"),
        ("LISTEN 0 5 :::22 :::*", "legacy ss"),
        ("LISTEN 0 5 [127.0.0.1]:22 0.0.0.0:*", "not IPv6"),
        ("LISTEN 0 5 300.1.1.1:22 0.0.0.0:*", "'300.1.1.1'"),
        ("LISTEN 0 5 127.0.0.1:22 0.0.0.0:* users:(garbage)", "users:"),
        ("WEIRD 0 5 127.0.0.1:22 0.0.0.0:*", "unknown socket state"),
        ("LISTEN zero", "expected"),
    ],
)
def test_ss_odd_lines_raise_with_line_number(line, reason):
    sample = "LISTEN 0 5 127.0.0.1:1 0.0.0.0:*\n\n" + line + "\n"
    with pytest.raises(ParseError) as info:
        parse_ss(sample)
    assert info.value.line_no == 3
    assert info.value.line == line
    assert reason in str(info.value)
    assert str(info.value).startswith("ss -Htlnp, line 3: ")


def test_parse_error_pickles():
    err = ParseError("ss -Htlnp", "boom", line_no=2, line="x")
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert (copy.source, copy.reason, copy.line_no, copy.line) == ("ss -Htlnp", "boom", 2, "x")
    assert str(copy) == "ss -Htlnp, line 2: boom in 'x'"


def test_lsof_recorded_linux():
    found = by_port(parse_lsof(text("linux-lsof-listen-lab.txt")))
    for port, (address, family, _dual, _iface) in EXPECTED_LINUX.items():
        item = found[port]
        # lsof cannot see V6ONLY: both IPv6 wildcards come out as '::', dual-stack unknown.
        assert (item.address, item.family) == (address, family), item.raw
        assert item.dual_stack is False
        assert item.dual_stack_known is (address != "::")
    # one socket shared by parent and child: one Listener, both processes, both lines
    assert found[47110].processes == (("python3", 6351), ("python3", 6393))
    assert len(found[47110].raw.split("\n")) == 2


@pytest.mark.parametrize(
    "parse_sample",
    [
        lambda: parse_lsof_fields(text("linux-lsof-Fpcnt-lab.txt")),
        lambda: parse_lsof_fields(text("linux-lsof-Fpcnt-lab.txt").replace("\n", "\0")),
    ],
)
def test_lsof_fields_recorded(parse_sample):
    found = by_port(parse_sample())
    assert set(found) == set(EXPECTED_LINUX)
    for port, (address, family, _dual, _iface) in EXPECTED_LINUX.items():
        assert (found[port].address, found[port].family) == (address, family)
    assert found[47108].processes == (("python3", 6351), ("python3", 6393))


def test_lsof_fields_without_type_refuses_star():
    with pytest.raises(ParseError, match="without the type field") as info:
        parse_lsof_fields(text("linux-lsof-Fpcn-lab.txt"))
    assert info.value.line == "n*:47103"


def test_lsof_fields_odd():
    with pytest.raises(ParseError, match="before any p"):
        parse_lsof_fields("tIPv4\nn127.0.0.1:80\n")
    with pytest.raises(ParseError, match="unknown field identifier") as info:
        parse_lsof_fields("p1\ncx\n?what\n")
    assert info.value.line_no == 3
    with pytest.raises(ParseError, match="pid 'x1'"):
        parse_lsof_fields("px1\n")
    states = "p1\ncx\nf3\ntIPv4\nPTCP\nn127.0.0.1:80->127.0.0.1:5000\nTST=ESTABLISHED\n"
    assert parse_lsof_fields(states) == []


def test_lsof_macos_transcribed():
    found = parse_lsof(text("macos-lsof-studio.txt"))
    keys = {(x.bind_text(), x.port) for x in found}
    assert ("0.0.0.0", 22) in keys and ("[::]", 22) in keys
    [high] = [x for x in found if x.port == 4040]
    assert high.is_loopback_only() and high.process == "python3.1" and high.pid == 5150
    [link] = [x for x in found if x.port == 4043]
    assert (link.address, link.interface, link.bind_text()) == ("fe80::1", "lo0", "[fe80::1%lo0]")
    [chrome] = [x for x in found if x.port == 9222]
    assert chrome.process == "Google "


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "httpd 123 _www 4u IPv6 0xc27b87c7b8c7b8c7 0t0 TCP *:http (LISTEN)",
            "port 'http'",
        ),
        ("python3 1 root 3u IPv4 8015 0t0 TCP 127.0.0.1:47101", "no TCP state"),
        ("python3 1 root 3u unix 0x1 0t0 8015 /tmp/sock", "expected 'COMMAND"),
        ("python3 1 root 3u IPv4 8015 0t0 TCP [::1]:5 (LISTEN)", "non-IPv6"),
        ("python3 1 root 3u IPv6 8015 0t0 TCP ::1:5 (LISTEN)", "unbracketed"),
    ],
)
def test_lsof_odd_lines(line, reason):
    header = "COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME\n"
    with pytest.raises(ParseError, match=reason) as info:
        parse_lsof(header + line + "\n")
    assert info.value.line_no == 2


def test_netstat_linux_wide():
    found = by_port(parse_netstat_linux(text("linux-netstat-tlnpW-lab.txt")))
    for port, (address, family, _dual, _iface) in EXPECTED_LINUX.items():
        assert (found[port].address, found[port].family) == (address, family)
    assert found[47105].dual_stack is False and found[47105].dual_stack_known is False
    assert found[2024].pid is None and found[47101].processes == (("python3", 4745),)


def test_netstat_linux_truncated_address_is_an_error():
    with pytest.raises(ParseError, match="-W") as info:
        parse_netstat_linux(text("linux-netstat-tlnp-truncated-lab.txt"))
    assert "fe80::fc:ff:fe00::47109" in (info.value.line or "")


def test_netstat_linux_possible_truncation_detected():
    # 17-char IPv6 + 5-digit port = exactly the 22-char cut: may be a cut-down address.
    row = "tcp6       0      0 fd00::1234:5678:9:47109 :::*                    LISTEN      1/x"
    with pytest.raises(ParseError, match="may be truncated"):
        parse_netstat_linux(row)
    assert parse_netstat_linux(row, wide=True)[0].address == "fd00::1234:5678:9"


def test_netstat_macos_monterey():
    found = by_port(parse_netstat_macos(text("macos-netstat-anv-monterey.txt")))
    assert set(found) == {4040, 4041, 4042, 4043, 4044, 4045}  # ESTABLISHED/TIME_WAIT dropped
    assert (found[4040].address, found[4040].pid, found[4040].process) == ("127.0.0.1", 5150, None)
    assert found[4041].dual_stack and found[4041].bind_text() == "*"
    assert found[4044].bind_text() == "[::]" and not found[4044].accepts_ipv4()
    assert found[4045].bind_text() == "0.0.0.0"
    assert (found[4043].address, found[4043].interface) == ("fe80::1", "lo0")


def test_netstat_macos_sonoma_process_column():
    found = by_port(parse_netstat_macos(text("macos-netstat-anv-sonoma.txt")))
    assert set(found) == {4040, 4041, 4042, 4043}
    assert found[4040].processes == (("optillm", 5150),)
    assert found[4041].processes == (("java", 88104),)


@pytest.mark.parametrize(
    ("sample", "reason", "line_no"),
    [
        ("tcp4 0 0 127.0.0.1.4040 *.* LISTEN 1 1 5150", "before the 'Proto", 1),
        ("Proto Recv-Q Send-Q Local Address Foreign Address (state) a b pid\n"
         "tcp4 0 0 127.0.0.1.4040 *.* LISTEN 1 1 x", "pid column", 2),
        ("Proto Recv-Q Send-Q Local Address Foreign Address (state)\n"
         "tcp4 0 0 127.0.0.1:4040 *.* LISTEN", "'127.0.0.1:4040'", 2),
        ("Proto Recv-Q Send-Q Local Address Foreign Address (state)\n"
         "tcp4 0 0 ::1.4040 *.* LISTEN", "on a tcp4 row", 2),
        ("Proto Recv-Q Send-Q Local Address Foreign Address (state)\n"
         "sctp 0 0 ::1.4040 *.* LISTEN", "tcp4/tcp6/tcp46", 2),
        ("Proto Recv-Q Send-Q Local Address Foreign Address (state)\n"
         "tcp6 0 0 fe80::aede:48ff:.5353 *.* LISTEN", "truncated", 2),
    ],
)  # fmt: skip
def test_netstat_macos_odd(sample, reason, line_no):
    with pytest.raises(ParseError, match=reason) as info:
        parse_netstat_macos(sample)
    assert info.value.line_no == line_no


# -- semantics truth table -------------------------------------------------------------------


def make(address, family, dual=False, interface=None):
    return Listener(
        address=address,
        port=4000,
        family=family,
        dual_stack=dual,
        process=None,
        pid=None,
        raw="",
        interface=interface,
    )


V4_ANY = make("0.0.0.0", "ipv4")
V6_ANY = make("::", "ipv6")
DUAL = make("::", "ipv6", dual=True)
V4_LO = make("127.0.0.1", "ipv4")
V4_LO53 = make("127.0.0.53", "ipv4", interface="lo")
V6_LO = make("::1", "ipv6")
MAPPED_LO = make("::ffff:127.0.0.1", "ipv6")
V4_LAN = make("198.51.100.10", "ipv4")
V6_LAN = make("2001:db8::10", "ipv6")
LINK = make("fe80::1", "ipv6", interface="eth0")
MAPPED_ANY = make("::ffff:0.0.0.0", "ipv6")

TARGETS = [
    "127.0.0.1", "127.0.0.53", "198.51.100.10", "::1", "2001:db8::10",
    "::ffff:127.0.0.1", "::ffff:198.51.100.10", "[fe80::1%eth0]", "fe80::1%eth1",
]  # fmt: skip

# Listener -> (wildcard, loopback_only, accepts_ipv4, accepts_ipv6, bind_text, reachable targets)
TABLE = {
    "v4-any": (V4_ANY, True, False, True, False, "0.0.0.0",
               {"127.0.0.1", "127.0.0.53", "198.51.100.10", "::ffff:127.0.0.1",
                "::ffff:198.51.100.10"}),
    "v6only-any": (V6_ANY, True, False, False, True, "[::]",
                   {"::1", "2001:db8::10", "[fe80::1%eth0]", "fe80::1%eth1"}),
    "dual-any": (DUAL, True, False, True, True, "*", set(TARGETS)),
    "v4-loopback": (V4_LO, False, True, True, False, "127.0.0.1",
                    {"127.0.0.1", "::ffff:127.0.0.1"}),
    "v4-loopback-53-lo": (V4_LO53, False, True, True, False, "127.0.0.53%lo", {"127.0.0.53"}),
    "v6-loopback": (V6_LO, False, True, False, True, "[::1]", {"::1"}),
    "mapped-loopback": (MAPPED_LO, False, True, True, False, "[::ffff:127.0.0.1]",
                        {"127.0.0.1", "::ffff:127.0.0.1"}),
    "v4-lan": (V4_LAN, False, False, True, False, "198.51.100.10",
               {"198.51.100.10", "::ffff:198.51.100.10"}),
    "v6-lan": (V6_LAN, False, False, False, True, "[2001:db8::10]", {"2001:db8::10"}),
    "link-local": (LINK, False, False, False, True, "[fe80::1%eth0]", {"[fe80::1%eth0]"}),
    "mapped-any": (MAPPED_ANY, True, False, True, False, "[::ffff:0.0.0.0]",
                   {"127.0.0.1", "127.0.0.53", "198.51.100.10", "::ffff:127.0.0.1",
                    "::ffff:198.51.100.10"}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TABLE))
def test_predicates(name):
    listener, wildcard, loopback_only, v4, v6, bind, _ = TABLE[name]
    assert listener.is_wildcard() is wildcard
    assert listener.is_loopback_only() is loopback_only
    assert listener.accepts_ipv4() is v4
    assert listener.accepts_ipv6() is v6
    assert listener.bind_text() == bind


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(TABLE))
def test_reachable_at(name, target):
    listener, *_, reachable = TABLE[name]
    assert listener.reachable_at(target) is (target in reachable)


@pytest.mark.parametrize("target", ["0.0.0.0", "::", "*", "localhost", "::ffff:0.0.0.0"])
def test_reachable_at_refuses_non_concrete_targets(target):
    with pytest.raises(ValueError):
        V4_ANY.reachable_at(target)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"address": "::ffff:7f00:1", "family": "ipv6"}, "not normalized"),
        ({"address": "127.0.0.1", "family": "ipv6"}, "not ipv6"),
        ({"address": "127.0.0.1", "family": "ipv4", "dual_stack": True}, "dual_stack"),
        ({"address": "::1", "family": "ipv6", "dual_stack": True}, "dual_stack"),
        ({"address": "nope", "family": "ipv4"}, "not an IP"),
    ],
)
def test_listener_rejects_inconsistent_values(kwargs, reason):
    base = {"port": 1, "dual_stack": False, "process": None, "pid": None, "raw": ""}
    with pytest.raises(ValueError, match=reason):
        Listener(**{**base, **kwargs})


def test_recorded_semantics_end_to_end():
    """The trap cases, straight from real ss output."""
    found = by_port(parse_ss(text("linux-ss-Htlnp-lab.txt")))
    assert found[47106].is_loopback_only() and found[47106].reachable_at("127.0.0.1")
    assert not found[47106].reachable_at("192.0.2.2")
    assert found[47105].reachable_at("192.0.2.2") and found[47105].bind_text() == "*"
    assert not found[47104].reachable_at("192.0.2.2") and found[47104].reachable_at("fd00::2")
    assert found[47107].is_loopback_only() and not found[47103].is_loopback_only()
    assert found[47108].is_loopback_only() and found[47108].endpoint_text() == "127.0.0.54%lo:47108"


# -- ss's '*' settled by the kernel's tables (/proc/net/tcp, /proc/net/tcp6) --------------------


def _kernel(tcp: str, tcp6: str | None) -> KernelTables:
    return KernelTables.read(text(tcp), text(tcp6) if tcp6 else None)


def test_proc_net_tcp_rows_are_read_with_their_family() -> None:
    rows = parse_proc_net_tcp(text("linux-proc-net-tcp6-families.txt"), "ipv6")
    assert {row.port for row in rows if row.wildcard} == {47204, 47205, 47207}
    assert all(row.family == "ipv6" and row.state == 0x0A for row in rows)
    lab = parse_proc_net_tcp(text("lab-mini-proc-net-tcp.txt"), "ipv4")
    assert [(row.port, row.wildcard, row.uid) for row in lab if row.state == 0x0A] == [
        (22, True, 0),
        (4020, False, 991),
        (4090, False, 1500),
    ]
    with pytest.raises(ParseError):
        parse_proc_net_tcp("   0: 0100007F:0016 garbage\n", "ipv4")


def test_newer_ss_star_is_dual_stack_because_the_kernel_lists_it_as_ipv6() -> None:
    kernel = _kernel("linux-proc-net-tcp-families.txt", "linux-proc-net-tcp6-families.txt")
    found = {(item.port, item.family): item for item in parse_ss(text("linux-ss-Htlnp-families.txt"), kernel)}
    star = found[(47205, "ipv6")]
    assert (star.address, star.dual_stack, star.dual_stack_known, star.notes) == ("::", True, True, ())
    assert found[(47204, "ipv6")].dual_stack is False and found[(47204, "ipv6")].dual_stack_known
    assert found[(47207, "ipv4")].address == "0.0.0.0" and found[(47207, "ipv6")].dual_stack is False
    assert found[(47206, "ipv6")].address == "::ffff:127.0.0.1"


def test_the_lab_reading_is_unchanged_by_the_kernel_tables() -> None:
    kernel = _kernel("lab-mini-proc-net-tcp.txt", "lab-mini-proc-net-tcp6.txt")
    sample = text("lab-mini-ss-Htlnp-with-proc.txt")
    assert parse_ss(sample, kernel) == parse_ss(sample)


def _centos_kernel(v4: list[int], v6: list[int]) -> KernelTables:
    """Kernel tables in the recorded format (lab-mini-proc-net-tcp*.txt) for wildcard ports."""
    four = text("lab-mini-proc-net-tcp.txt").splitlines()
    six = text("lab-mini-proc-net-tcp6.txt").splitlines()
    tcp = [four[0]] + [four[1].replace(":0016 ", f":{port:04X} ") for port in v4]
    tcp6 = [six[0]] + [six[1].replace(":0016 ", f":{port:04X} ") for port in v6]
    return KernelTables.read("\n".join(tcp) + "\n", "\n".join(tcp6) + "\n")


def test_old_ss_star_is_the_ipv4_wildcard_and_its_ipv6_wildcards_are_not_known() -> None:
    # CentOS 7, iproute 3.10: sshd on 0.0.0.0:22 and [::]:22, httpd on [::]:80, postfix on loopback.
    found = {
        (item.port, item.family): item
        for item in parse_ss(text("centos7-ss-ntl-legacy.txt"), _centos_kernel([22], [22, 80]))
    }
    assert set(found) == {(22, "ipv4"), (25, "ipv4"), (22, "ipv6"), (80, "ipv6"), (25, "ipv6")}
    assert found[(22, "ipv4")].address == "0.0.0.0" and found[(22, "ipv4")].accepts_ipv6() is False
    for port in (22, 80):
        wildcard = found[(port, "ipv6")]
        assert (wildcard.address, wildcard.dual_stack, wildcard.dual_stack_known) == ("::", False, False)
        assert wildcard.notes == (OLD_SS_V6ONLY,)
    assert found[(25, "ipv6")].address == "::1" and found[(25, "ipv6")].is_loopback_only()


def test_bracketed_old_ss_star_is_the_ipv4_wildcard_too() -> None:
    # CentOS 7 with brackets already, but '*' still the IPv4 wildcard.
    found = {
        (item.port, item.family): item
        for item in parse_ss(text("centos7-ss-ntl-bracketed.txt"), _centos_kernel([22], [22]))
    }
    assert found[(22, "ipv4")].address == "0.0.0.0"
    assert found[(22, "ipv6")].dual_stack_known is False


def test_a_star_the_tables_cannot_settle_is_the_widest_reading_with_a_note() -> None:
    [item] = [
        x
        for x in parse_ss(text("centos7-ss-ntl-bracketed.txt"), _centos_kernel([], []))
        if x.port == 22 and x.raw.lstrip().startswith("LISTEN") and "*:22" in x.raw
    ]
    assert (item.family, item.dual_stack, item.dual_stack_known) == ("ipv6", True, False)
    assert "family not known" in item.notes[0]


def test_without_ipv6_every_star_is_ipv4() -> None:
    kernel = KernelTables.read(_centos_kernel([22], []).tcp[0].raw + "\n", None)
    [item] = [x for x in parse_ss(text("centos7-ss-ntl-bracketed.txt"), kernel) if "*:22" in x.raw]
    assert item.family == "ipv4"
