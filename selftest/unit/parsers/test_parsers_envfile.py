import pytest

from conformance.facts.parsers import ParseError, parse_env_file, substitute_vars


def test_env_file_systemd_semantics():
    sample = (
        "# comment\n"
        "; also a comment\n"
        "\n"
        "   PLAIN=value   \n"
        "SPACED = spaced value\n"
        "INLINE=a # not a comment\n"
        "SINGLE='it''s $HOME \\n'\n"
        'DOUBLE="a \\"q\\" \\$x \\n \\\\ end"\n'
        'JOINED="x"y\n'
        "CONT=first\\\n"
        "second\n"
        "ESC=a\\ b\\$\n"
        "EMPTY=\n"
        'MULTI="line1\n'
        'line2"\n'
        "export EXPORTED=1\n"
        "PLAIN=later wins\n"
    )
    assert parse_env_file(sample, "env") == {
        "PLAIN": "later wins",
        "SPACED": "spaced value",
        "INLINE": "a # not a comment",
        "SINGLE": "its $HOME \\n",
        "DOUBLE": 'a "q" $x \\n \\ end',
        "JOINED": "xy",
        "CONT": "firstsecond",
        "ESC": "a b$",
        "EMPTY": "",
        "MULTI": "line1\nline2",
        "EXPORTED": "1",
    }


def test_env_file_crlf_and_no_trailing_newline():
    assert parse_env_file("A=1\r\nB=2", "env") == {"A": "1", "B": "2"}


@pytest.mark.parametrize(
    ("sample", "reason", "line_no"),
    [
        ("A=1\nNOEQUALS\nB=2\n", "no '='", 2),
        ("A=1\n\nNOEQUALS", "no '='", 3),
        ("A=1\n1BAD=x\n", "invalid variable name", 2),
        ("A-B=x\n", "invalid variable name", 1),
        ('A=1\nB="open\nC=2\n', "unterminated quote", 2),
        ("A='open\n", "unterminated quote", 1),
    ],
)
def test_env_file_errors(sample, reason, line_no):
    with pytest.raises(ParseError, match=reason) as info:
        parse_env_file(sample, "/etc/optillm-proxy/env")
    assert info.value.line_no == line_no
    assert str(info.value).startswith(f"/etc/optillm-proxy/env, line {line_no}: ")


def test_export_refused_in_systemd_strict_mode():
    with pytest.raises(ParseError, match="export") as info:
        parse_env_file("A=1\nexport B=2\n", "env", systemd_strict=True)
    assert info.value.line_no == 2


# Behaviour of OptiLLM 0.3.20 ProxyConfig._interpolate_env_vars (see envfile.py).
@pytest.mark.parametrize(
    ("template", "env", "expected"),
    [
        ("${KEY}", {"KEY": "v"}, "v"),
        ("Bearer ${KEY}", {}, "Bearer ${KEY}"),  # unset without default: left as written
        ("${ KEY }", {"KEY": "v"}, "v"),  # the name is stripped
        ("${ MISSING }", {}, "${ MISSING }"),
        ("${KEY:-dflt}", {}, "dflt"),
        ("${KEY:-dflt}", {"KEY": ""}, ""),  # set-but-empty wins, unlike the shell
        ("${KEY:- spaced }", {}, " spaced "),  # default verbatim
        ("${KEY:-a:-b}", {}, "a:-b"),  # split at the first ':-'
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${A}", {"A": "${B}", "B": "x"}, "${B}"),  # one pass, no rescan
        ("$KEY ${} $${KEY}", {"KEY": "v"}, "$KEY ${} $v"),
        ("${KEY:-}", {}, ""),
    ],
)
def test_substitute_vars(template, env, expected):
    assert substitute_vars(template, env) == expected
