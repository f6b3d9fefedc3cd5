import plistlib

import pytest

from conformance.facts.parsers import (
    LaunchdServiceNotFound,
    ParseError,
    is_not_found,
    label_from_target,
    parse_launchctl_print,
    parse_plist,
)

from ._recorded import data, text

LABEL = "com.example.optillm.local-high"


def test_print_running():
    job = parse_launchctl_print(text("macos-launchctl-print-gui.txt"), LABEL)
    assert job.target == f"gui/501/{LABEL}" and job.label == LABEL
    assert job.state == "running" and job.pid == 5150 and job.running
    assert job.last_exit_code == "0"
    assert job.path == f"/Users/tester/Library/LaunchAgents/{LABEL}.plist"
    assert job.program == "/Users/tester/venvs/optillm-local/bin/optillm"
    assert job.arguments[1:] == ("--model", "mlx-community/Qwen2.5-0.5B-Instruct-4bit",
                                 "--port", "4040")  # fmt: skip
    assert job.working_directory == "/Users/tester/.optillm"
    # only the job's own block: not inherited/default environment
    assert job.environment == {
        "OPTILLM_API_KEY": "optillm",
        "HF_HOME": "/Users/tester/.cache/huggingface",
        "OSLogRateLimit": "64",
        "XPC_SERVICE_NAME": LABEL,
    }
    assert "SSH_AUTH_SOCK" not in job.environment and "PATH" not in job.environment
    assert job.properties["properties"] == "keepalive | runatload | inferred program"


def test_print_not_running():
    job = parse_launchctl_print(text("macos-launchctl-print-gui-not-running.txt"), "com.example.optillm.local-low")
    assert job.state == "not running" and job.pid is None and not job.running
    assert job.last_exit_code == "(never exited)"
    assert job.working_directory is None


def test_nested_state_is_not_the_job_state():
    sample = text("macos-launchctl-print-gui.txt").replace("\tstate = running\n", "")
    with pytest.raises(ParseError, match="no top-level 'state"):
        parse_launchctl_print(sample, LABEL)


@pytest.mark.parametrize("expected", ["com.example.optillm", "optillm.local-high", "high",
                                      LABEL + ".x"])  # fmt: skip
def test_label_must_match_exactly(expected):
    with pytest.raises(ParseError, match="expected exactly") as info:
        parse_launchctl_print(text("macos-launchctl-print-gui.txt"), expected)
    assert info.value.line_no == 1


def test_not_found():
    stderr = text("macos-launchctl-print-not-found.txt")
    assert is_not_found(stderr, 113)
    assert is_not_found("", 113)
    assert is_not_found(stderr, 1)
    assert not is_not_found("", 0)
    with pytest.raises(LaunchdServiceNotFound):
        parse_launchctl_print(stderr, LABEL)


@pytest.mark.parametrize(
    ("mutate", "reason", "line_no"),
    [
        (lambda s: s.replace("\tstate = running", "    state = running"), "not tabs", 5),
        (lambda s: s.replace("\t\tHF_HOME => ", "\t\tHF_HOME = "), "KEY => value", 30),
        (lambda s: s.rsplit("}", 1)[0], "truncated", None),
        (lambda s: s + "trailing\n", "after the closing", 88),
        (lambda s: s.replace("\tpid = 5150", "\tpid = abc"), "pid 'abc'", None),
        (lambda s: "garbage\n" + s, "header", 1),
        (lambda s: "", "empty output", None),
        (lambda s: s.replace("\t\t--model\n", "\t\t\t--model\n"), "depth 3", 10),
    ],
)
def test_print_odd_output(mutate, reason, line_no):
    with pytest.raises(ParseError, match=reason) as info:
        parse_launchctl_print(mutate(text("macos-launchctl-print-gui.txt")), LABEL)
    assert info.value.line_no == line_no


@pytest.mark.parametrize(
    ("target", "label"),
    [
        ("gui/501/com.x.y", "com.x.y"),
        ("user/501/com.x.y", "com.x.y"),
        ("system/com.x.y", "com.x.y"),
        ("gui/501/com.x/with/slash", "com.x/with/slash"),
    ],
)
def test_label_from_target(target, label):
    assert label_from_target(target) == label


def test_plist_xml():
    plist = parse_plist(data("plist-optillm-local-high.plist"), "local-high.plist")
    assert plist.label == LABEL
    assert plist.program_arguments[-2:] == ("--port", "4040")
    assert plist.environment == {
        "OPTILLM_API_KEY": "optillm",
        "HF_HOME": "/Users/tester/.cache/huggingface",
    }  # the integer value is ignored, as launchd does
    assert plist.run_at_load is True
    assert plist.keep_alive == {"SuccessfulExit": False}
    assert plist.working_directory == "/Users/tester/.optillm"


def test_plist_binary_and_program_only():
    raw = plistlib.dumps({"Label": "a.b", "Program": "/bin/x"}, fmt=plistlib.FMT_BINARY)
    plist = parse_plist(raw, "a.b.plist")
    assert plist.program_arguments == ("/bin/x",) and plist.program == "/bin/x"
    assert plist.run_at_load is False and plist.keep_alive is False
    assert plist.environment == {}


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"Program": "/bin/x"}, "no Label"),
        ({"Label": "a"}, "neither ProgramArguments"),
        ({"Label": "a", "ProgramArguments": ["/bin/x", 3]}, "array of strings"),
        ({"Label": "a", "Program": "/x", "RunAtLoad": "yes"}, "RunAtLoad"),
        ({"Label": "a", "Program": "/x", "KeepAlive": 1}, "KeepAlive"),
        ({"Label": "a", "Program": "/x", "EnvironmentVariables": ["A"]}, "dict"),
        (["not", "a", "dict"], "expected a dict"),
    ],
)
def test_plist_invalid(doc, reason):
    with pytest.raises(ParseError, match=reason) as info:
        parse_plist(plistlib.dumps(doc), "bad.plist")
    assert info.value.source == "bad.plist"


@pytest.mark.parametrize("raw", [b"", b"<plist><dict><key>Label</key>", b"\x00\x01garbage"])
def test_plist_unreadable(raw):
    with pytest.raises(ParseError, match="not a valid plist") as info:
        parse_plist(raw, "broken.plist")
    assert str(info.value).startswith("broken.plist: ")


# Real plists written by macOS (selftest/recorded/README.md): two binary ones that are not
# launchd jobs, and an Apple LaunchDaemon's XML plist.
REAL_BINARY = ["macos-binary-plist-loginitems.plist", "macos-binary-plist-systemextensions-db.plist"]


@pytest.mark.parametrize("name", REAL_BINARY)
def test_real_binary_plist_is_read_as_bytes(name):
    raw = data(name)
    assert raw.startswith(b"bplist00")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert isinstance(plistlib.loads(raw), dict)  # plistlib reads the binary format itself
    with pytest.raises(ParseError, match="no Label") as info:  # not a job: refused by name, not by format
        parse_plist(raw, f"/Library/x/{name}")
    assert info.value.source == f"/Library/x/{name}"


@pytest.mark.parametrize("name", REAL_BINARY)
def test_real_binary_plist_mangled_as_text_is_a_parse_error(name):
    mangled = data(name).decode("utf-8", "replace").encode()
    with pytest.raises(ParseError, match="not a valid plist") as info:
        parse_plist(mangled, "/Library/x.plist")
    assert str(info.value).startswith("/Library/x.plist: ")


def test_real_launchd_daemon_plist():
    plist = parse_plist(data("macos-launchd-plist-mdnsresponder.plist"), "com.apple.mDNSResponder.plist")
    assert plist.label == "com.apple.mDNSResponder"
    assert plist.program_arguments == ("/usr/sbin/mDNSResponder",)
    assert plist.user_name == "_mdnsresponder"
    assert plist.run_at_load is False and plist.keep_alive is False


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ('encoding="UTF-8"', 'encoding="UTF-9"', "LookupError"),
        ('<plist version="1.0">\n<dict>', '<plist version="1.0">\n<key>Label</key>\n<dict>', "IndexError"),
    ],
)
def test_damaged_real_plist_is_a_parse_error_not_a_crash(old, new, kind):
    damaged = data("macos-launchd-plist-mdnsresponder.plist").replace(old.encode(), new.encode(), 1)
    with pytest.raises(ParseError, match=f"not a valid plist: {kind}"):
        parse_plist(damaged, "com.apple.mDNSResponder.plist")
