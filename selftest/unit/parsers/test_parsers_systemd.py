import pytest

from conformance.facts.parsers import (
    ParseError,
    parse_environment_files_property,
    parse_environment_property,
    parse_exec_commands,
    parse_exec_start,
    parse_systemctl_show,
    parse_systemctl_show_many,
    parse_unit_file,
)

from ._recorded import text


def test_show_two_units_recorded():
    litellm, proxy = parse_systemctl_show_many(text("lab-mini-systemctl-show-two-units.txt"))
    assert litellm["Id"] == "litellm-orch.service" and litellm["SubState"] == "running"
    assert litellm["MainPID"] == "34" and litellm["User"] == "litellm"
    assert litellm["Environment"] == ""
    assert parse_exec_start(litellm["ExecStart"]) == (
        "/opt/litellm/venv/bin/litellm",
        "--config",
        "/srv/gateway/layer-gateway/litellm-orch/config/router.yaml",
        "--host",
        "0.0.0.0",
        "--port",
        "4000",
    )
    assert parse_environment_files_property(litellm["EnvironmentFiles"]) == [
        ("/srv/gateway/layer-gateway/litellm-orch/config/env.local", False)
    ]
    assert parse_exec_start(proxy["ExecStart"]) == ("/opt/optillm-proxy/venv/bin/optillm",)
    assert proxy["WorkingDirectory"] == "/var/lib/optillm"
    assert parse_environment_property(proxy["Environment"]) == {}


def test_show_single_unit_and_not_found_recorded():
    shown = parse_systemctl_show(text("lab-mini-systemctl-show-not-found.txt"))
    assert shown == {"Id": "nosuch.service", "LoadState": "not-found", "ActiveState": "inactive"}
    with pytest.raises(ParseError, match="2 blocks"):
        parse_systemctl_show(text("lab-mini-systemctl-show-two-units.txt"))
    with pytest.raises(ParseError, match="0 blocks"):
        parse_systemctl_show("\n")


def test_show_repeated_keys_and_equals_in_values():
    sample = (
        "ExecStartPre={ path=/bin/a ; argv[]=/bin/a -x ; ignore_errors=no ; start_time=[n/a] }\n"
        "ExecStartPre={ path=/bin/b ; argv[]=/bin/b ; ignore_errors=yes ; start_time=[n/a] }\n"
        "EnvironmentFiles=/etc/a (ignore_errors=no)\n"
        "EnvironmentFiles=/etc/with space (ignore_errors=yes)\n"
        "Environment=A=1 B=x=y\n"
    )
    shown = parse_systemctl_show(sample)
    assert parse_exec_commands(shown["ExecStartPre"]) == [("/bin/a", "-x"), ("/bin/b",)]
    with pytest.raises(ParseError, match="2 commands"):
        parse_exec_start(shown["ExecStartPre"])
    assert parse_environment_files_property(shown["EnvironmentFiles"]) == [
        ("/etc/a", False),
        ("/etc/with space", True),
    ]
    assert parse_environment_property(shown["Environment"]) == {"A": "1", "B": "x=y"}


@pytest.mark.parametrize(
    ("sample", "line_no"),
    [("Id=x\nnot a property\n", 2), ("Id=x\n=value\n", 2), ("Id=x\nBad Key=1\n", 2)],
)
def test_show_odd_lines(sample, line_no):
    with pytest.raises(ParseError, match="Property=value") as info:
        parse_systemctl_show(sample)
    assert info.value.line_no == line_no


def test_exec_start_ex_and_argv0_override():
    ex = (
        "{ path=/usr/bin/python3 ; argv[]=myname -m app ; flags=ignore-failure ; "
        "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
    )
    assert parse_exec_start(ex) == ("/usr/bin/python3", "-m", "app")


def test_exec_start_show_form_loses_spaces_in_arguments():
    # systemctl joins argv with single spaces, unquoted: "/a b" comes back as two words.
    shown = "{ path=/x ; argv[]=/x --config /a b ; ignore_errors=no ; start_time=[n/a] }"
    assert parse_exec_start(shown) == ("/x", "--config", "/a", "b")


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ("/usr/bin/foo --a 'b c'", ("/usr/bin/foo", "--a", "b c")),
        ("-/usr/bin/foo --a", ("/usr/bin/foo", "--a")),
        ("+!/usr/bin/foo", ("/usr/bin/foo",)),
        ("!!/usr/bin/foo", ("/usr/bin/foo",)),
        (":/usr/bin/foo $HOME %h", ("/usr/bin/foo", "$HOME", "%h")),
        ("@/usr/bin/foo fake-name --x", ("/usr/bin/foo", "--x")),
        ('/bin/echo "a \\"b\\"" x\\ty \\x41 \\;', ("/bin/echo", 'a "b"', "x\ty", "A", ";")),
        ("/bin/echo pre'mid dle'post", ("/bin/echo", "premid dlepost")),
        ("/bin/echo ';' 'a ; b'", ("/bin/echo", ";", "a ; b")),
        ("", ()),
    ],
)
def test_exec_start_unit_file_form(line, argv):
    assert parse_exec_start(line) == argv


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("/bin/a 'open", "unterminated"),
        ("/bin/a ; /bin/b", "several commands"),
        ("/bin/a \\q", "invalid escape"),
        ("/bin/a \\", "trailing backslash"),
        ("@/bin/a", "argv\\[0\\]"),
        ("{ nonsense }", "path="),
    ],
)
def test_exec_start_errors(line, reason):
    with pytest.raises(ParseError, match=reason):
        parse_exec_start(line)


def test_environment_property_quoting():
    value = 'A=1 "B=two words" "C=\\"q\\" \\$x" D='
    assert parse_environment_property(value) == {
        "A": "1",
        "B": "two words",
        "C": '"q" $x',
        "D": "",
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("A=1 [unprintable]", "unprintable"),
        ("A=1 NOEQ", "invalid assignment"),
        ("1A=1", "invalid assignment"),
        ('A="open', "unterminated"),
    ],
)
def test_environment_property_errors(value, reason):
    with pytest.raises(ParseError, match=reason):
        parse_environment_property(value)


@pytest.mark.parametrize("value", ["/etc/a", "/etc/a (ignore_errors=maybe)", "(ignore_errors=no)"])
def test_environment_files_errors(value):
    with pytest.raises(ParseError, match="ignore_errors"):
        parse_environment_files_property(value)


def test_unit_file_recorded():
    unit = parse_unit_file(text("lab-mini-optillm-proxy.service.txt"), "optillm-proxy.service")
    assert unit["Service"]["ExecStart"] == ["/opt/optillm-proxy/venv/bin/optillm"]
    assert unit["Service"]["EnvironmentFile"] == ["/etc/optillm-proxy/env"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_file_continuations_repeats_and_comments():
    sample = (
        "# head\n"
        "[Service]\n"
        "ExecStart=/bin/a \\\n"
        "  --one \\\n"
        "# a comment inside the continuation\n"
        "  --two\n"
        "Environment=A=1\n"
        "Environment=\n"
        "Environment=B=2\n"
        "  Key  =  spaced  \n"
        "[Service]\n"
        "Extra=1\n"
    )
    unit = parse_unit_file(sample, "x.service")
    assert unit["Service"]["ExecStart"] == ["/bin/a  --one  --two"]
    assert parse_exec_start(unit["Service"]["ExecStart"][0]) == ("/bin/a", "--one", "--two")
    assert unit["Service"]["Environment"] == ["A=1", "", "B=2"]
    assert unit["Service"]["Key"] == ["spaced"]
    assert unit["Service"]["Extra"] == ["1"]


@pytest.mark.parametrize(
    ("sample", "reason", "line_no"),
    [
        ("Key=1\n", "before any", 1),
        ("[Unit]\nDescription=x\njunk line\n", "Key=value", 3),
        ("[Unit]\n=x\n", "Key=value", 2),
    ],
)
def test_unit_file_errors(sample, reason, line_no):
    with pytest.raises(ParseError, match=reason) as info:
        parse_unit_file(sample, "x.service")
    assert info.value.line_no == line_no and info.value.source == "x.service"
