"""Environment files (systemd ``EnvironmentFile=`` and shell-style ``.env``) and ``${VAR}``.

``parse_env_file`` follows systemd's own reader (``src/basic/env-file.c``,
``parse_env_file_internal``) character for character, because that is what decides the
environment a unit really gets:

* ``#`` or ``;`` start a comment only as the first non-blank character of a line; an inline
  ``#`` is part of the value (``A=b # c`` gives ``b # c``, unlike a shell).
* whitespace around the key and before the value is dropped; trailing whitespace of an
  unquoted value is dropped.
* unquoted: ``\\x`` gives ``x``; a backslash before a newline joins the next line (nothing is
  inserted).
* ``'...'`` is literal (may span lines); ``"..."`` unescapes only ``\\"``, ``\\\\``, ``\\```,
  ``\\$`` and backslash-newline, and keeps the backslash before anything else, as the shell
  does. After a closing quote the value continues (``A="x"y`` is ``xy``).
* later assignments win.

Errors name the line number and the reason, never the line's text or the variable name: an
env file's lines hold secrets, and a wrapped line can be a key on its own.

Where systemd is silently lenient this parser is loud, because a line systemd drops is almost
always a deployment bug: a line without ``=`` and an invalid name raise ParseError (systemd
ignores them), as does an unterminated quote. ``export KEY=value`` is accepted as in shell
``.env`` files, but systemd does NOT accept it (the name ``export KEY`` is invalid, so the
line is ignored); pass ``systemd_strict=True`` when checking a file used as
``EnvironmentFile=`` to have it refused instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum, auto

from conformance.facts.parsers.errors import ParseError

__all__ = ["is_valid_env_name", "parse_env_file", "substitute_vars"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXPORT = re.compile(r"^export\s+(?P<name>\S+)$")
_SHELL_NEED_ESCAPE = '"\\`$'


def is_valid_env_name(name: str) -> bool:
    """A portable environment variable name (what systemd's ``env_name_is_valid`` accepts)."""
    return bool(_NAME.match(name))


class _State(Enum):
    PRE_KEY = auto()
    KEY = auto()
    PRE_VALUE = auto()
    VALUE = auto()
    VALUE_ESCAPE = auto()
    SINGLE = auto()
    DOUBLE = auto()
    DOUBLE_ESCAPE = auto()
    COMMENT = auto()


def parse_env_file(text: str, source: str, *, systemd_strict: bool = False) -> dict[str, str]:
    """Parse an environment file into ``{name: value}`` (see the module docstring)."""
    text = text.replace("\r\n", "\n")  # systemd treats CR as a newline too
    result: dict[str, str] = {}
    state = _State.PRE_KEY
    key: list[str] = []
    value: list[str] = []
    value_trim: int | None = None  # index where trailing unquoted whitespace starts
    line_no = 1
    start_line = 1
    quote_line = 1

    def push() -> None:
        name = "".join(key).rstrip()
        exported = _EXPORT.match(name)
        if exported is not None:
            if systemd_strict:
                raise ParseError(
                    source,
                    "'export NAME=' is not understood by systemd (it ignores the line)",
                    line_no=start_line,
                )
            name = exported["name"]
        if not is_valid_env_name(name):
            raise ParseError(
                source,
                "invalid variable name (not shown: an env file line may hold a secret)",
                line_no=start_line,
            )
        chars = value if value_trim is None else value[:value_trim]
        result[name] = "".join(chars)

    for char in text:
        if state is _State.PRE_KEY:
            if char in "#;":
                state = _State.COMMENT
            elif not char.isspace():
                state = _State.KEY
                key, value, value_trim = [char], [], None
                start_line = line_no
        elif state is _State.KEY:
            if char == "\n":
                raise ParseError(source, "no '=' in assignment", line_no=line_no)
            if char == "=":
                state = _State.PRE_VALUE
            else:
                key.append(char)
        elif state is _State.PRE_VALUE:
            if char == "\n":
                push()
                state = _State.PRE_KEY
            elif char == "'":
                state, quote_line = _State.SINGLE, line_no
            elif char == '"':
                state, quote_line = _State.DOUBLE, line_no
            elif char == "\\":
                state = _State.VALUE_ESCAPE
            elif not char.isspace():
                state = _State.VALUE
                value.append(char)
        elif state is _State.VALUE:
            if char == "\n":
                push()
                state = _State.PRE_KEY
            elif char == "\\":
                state = _State.VALUE_ESCAPE
                value_trim = None
            else:
                if not char.isspace():
                    value_trim = None
                elif value_trim is None:
                    value_trim = len(value)
                value.append(char)
        elif state is _State.VALUE_ESCAPE:
            state = _State.VALUE
            if char != "\n":
                value.append(char)  # an escaped newline is eaten: a continuation line
        elif state is _State.SINGLE:
            if char == "'":
                state = _State.PRE_VALUE
            else:
                value.append(char)
        elif state is _State.DOUBLE:
            if char == '"':
                state = _State.PRE_VALUE
            elif char == "\\":
                state = _State.DOUBLE_ESCAPE
            else:
                value.append(char)
        elif state is _State.DOUBLE_ESCAPE:
            state = _State.DOUBLE
            if char in _SHELL_NEED_ESCAPE:
                value.append(char)
            elif char != "\n":
                value.extend(("\\", char))
        elif state is _State.COMMENT and char == "\n":
            state = _State.PRE_KEY
        if char == "\n":
            line_no += 1

    if state in (_State.SINGLE, _State.DOUBLE, _State.DOUBLE_ESCAPE):
        raise ParseError(source, "unterminated quote", line_no=quote_line)
    if state is _State.KEY:
        raise ParseError(source, "no '=' in assignment", line_no=line_no)
    if state in (_State.PRE_VALUE, _State.VALUE, _State.VALUE_ESCAPE):
        push()
    return result


# OptiLLM 0.3.20, optillm/plugins/proxy/config.py, ProxyConfig._interpolate_env_vars
# (read from the released wheel): pattern r'\$\{([^}]+)\}' applied to every string VALUE of
# the parsed YAML (not to keys), one pass, results not rescanned. For "NAME:-default" (split
# at the first ':-') the name is stripped and os.environ.get(name, default) is used, so a
# variable that is set but EMPTY yields "" (unlike the shell's ':-'), and the default is
# taken verbatim (not stripped). Without ':-' the stripped name is looked up and, when unset,
# the whole original "${...}" text is left in place (with a warning). "${}" and "$VAR" are
# never substituted; there is no escape syntax.
_OPTILLM_VAR = re.compile(r"\$\{([^}]+)\}")


def substitute_vars(template: str, env: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` / ``${VAR:-default}`` exactly as OptiLLM 0.3.20's proxy config does."""

    def replace(match: re.Match[str]) -> str:
        expression = match.group(1)
        if ":-" in expression:
            name, default = expression.split(":-", 1)
            return env.get(name.strip(), default)
        found = env.get(expression.strip())
        return match.group(0) if found is None else found

    return _OPTILLM_VAR.sub(replace, template)
