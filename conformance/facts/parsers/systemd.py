"""systemd facts: ``systemctl show`` output, its ExecStart/Environment encodings, unit files.

Facts about ``systemctl show`` that shape these parsers (systemd ``bus-print-properties.c``
and ``systemctl-show.c``):

* a property listed once per entry is printed once per entry: several ``ExecStartPre=`` or
  ``EnvironmentFiles=`` lines for one unit are normal. ``parse_systemctl_show`` joins repeated
  keys with ``"\\n"`` (values never contain a newline), and the property parsers accept that.
* ``ExecStart=`` prints ``argv[]=`` as the arguments joined by single spaces WITHOUT quoting,
  so an argument containing a space cannot be recovered; split on single spaces it yields one
  argument per space-separated word. Compare against the unit file when that matters.
* string lists (``Environment=``) are printed space-separated; current systemd quotes an entry
  that needs it with ``shell_maybe_quote`` (``"B=two words"``), older releases print
  ``[unprintable]`` instead, which is refused here because the value is lost.
"""

from __future__ import annotations

import re

from conformance.facts.parsers.envfile import is_valid_env_name
from conformance.facts.parsers.errors import ParseError

__all__ = [
    "parse_environment_files_property",
    "parse_environment_property",
    "parse_exec_commands",
    "parse_exec_start",
    "parse_systemctl_show",
    "parse_systemctl_show_many",
    "parse_unit_file",
]

_SHOW_SOURCE = "systemctl show"
_PROPERTY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def parse_systemctl_show_many(text: str) -> list[dict[str, str]]:
    """``systemctl show -p A -p B unit1 unit2`` -> one dict per unit (blank-line separated)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            current = None
            continue
        key, sep, value = line.partition("=")
        if not sep or not _PROPERTY_NAME.match(key):
            raise ParseError(_SHOW_SOURCE, "expected 'Property=value'", line_no=line_no, line=line)
        if current is None:
            current = {}
            blocks.append(current)
        current[key] = f"{current[key]}\n{value}" if key in current else value
    return blocks


def parse_systemctl_show(text: str) -> dict[str, str]:
    """``systemctl show -p A -p B unit`` -> ``{property: value}`` for exactly one unit."""
    blocks = parse_systemctl_show_many(text)
    if len(blocks) != 1:
        raise ParseError(
            _SHOW_SOURCE,
            f"expected the properties of one unit, found "
            f"{len(blocks)} blocks (use parse_systemctl_show_many)",
        )
    return blocks[0]


_EXEC_SHOWN = re.compile(
    r"^\{ path=(?P<path>.*?) ; argv\[\]=(?P<argv>.*?) ; (?:ignore_errors|flags)=.*\}$"
)


def parse_exec_commands(value: str) -> list[tuple[str, ...]]:
    """Every command of an ``Exec*=`` property (one ``{ ... }`` per line) or unit-file value.

    Each command is returned as ``(executable, arg1, arg2, ...)``: argv with argv[0]
    replaced by the executable path, so that the ``@`` prefix (a custom argv[0]) does not
    hide which binary runs. For the ``systemctl show`` form, see the module docstring on
    arguments that contain spaces.
    """
    stripped = value.strip()
    if not stripped:
        return []
    if not stripped.startswith("{"):
        return [_parse_unit_exec(stripped)]
    commands: list[tuple[str, ...]] = []
    for entry in stripped.split("\n"):
        entry = entry.strip()
        match = _EXEC_SHOWN.match(entry)
        if match is None:
            raise ParseError(_SHOW_SOURCE, "expected '{ path=... ; argv[]=... ; ... }'", line=entry)
        path, argv_text = match["path"], match["argv"]
        argv = [] if argv_text == "n/a" else argv_text.split(" ")
        if path == "n/a" and not argv:
            raise ParseError(_SHOW_SOURCE, "command without path and argv", line=entry)
        executable = argv[0] if path == "n/a" else path
        commands.append((executable, *argv[1:]))
    return commands


def parse_exec_start(value: str) -> tuple[str, ...]:
    """One ``ExecStart=`` command (show form or unit-file form) -> ``(executable, *args)``.

    Empty value -> ``()``. Several commands raise ParseError (use ``parse_exec_commands``).
    """
    commands = parse_exec_commands(value)
    if not commands:
        return ()
    if len(commands) > 1:
        raise ParseError(
            _SHOW_SOURCE, f"{len(commands)} commands where one was expected", line=value
        )
    return commands[0]


_EXEC_PREFIXES = "-@:+!|"
_C_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "s": " ",
    "\\": "\\",
    '"': '"',
    "'": "'",
    ";": ";",
}


def _parse_unit_exec(text: str) -> tuple[str, ...]:
    """A unit-file command line: systemd prefixes, quoting and C escapes.

    Prefixes (``-`` ignore failure, ``@`` custom argv[0], ``:`` no variable expansion,
    ``+``/``!``/``!!`` privileges, ``|`` login shell) are dropped. Words split like systemd's
    ``extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)``. ``%`` specifiers and
    ``$VAR`` references are kept literally: they are resolved by systemd at run time.
    A lone ``;`` (the removed multi-command syntax) is refused.
    """
    source = "ExecStart"
    at = False
    index = 0
    while index < len(text) and text[index] in _EXEC_PREFIXES:
        at = at or text[index] == "@"
        index += 1
    marked = _split_marked(text[index:], source=source, c_escapes=True)
    words = [word for word, _ in marked]
    if any(word == ";" and plain for word, plain in marked):
        raise ParseError(source, "';' separates several commands; not supported", line=text)
    if not words:
        raise ParseError(source, "no command", line=text)
    if at:
        if len(words) < 2:
            raise ParseError(source, "'@' prefix needs an argv[0] after the path", line=text)
        return (words[0], *words[2:])
    return tuple(words)


def _split_words(text: str, *, source: str, c_escapes: bool) -> list[str]:
    """Split shell-like words (see ``_split_marked``)."""
    return [word for word, _ in _split_marked(text, source=source, c_escapes=c_escapes)]


def _split_marked(text: str, *, source: str, c_escapes: bool) -> list[tuple[str, bool]]:
    """Split shell-like words: quotes anywhere in a word; backslash escapes.

    ``c_escapes`` (unit files): ``\\n``, ``\\t``, ``\\xHH``, octal, ``\\uXXXX`` ... everywhere.
    Otherwise (``shell_maybe_quote`` output): inside double quotes a backslash escapes only
    ``" \\ ` $``; outside quotes it escapes the next character.
    """
    words: list[tuple[str, bool]] = []
    word: list[str] = []
    in_word = False
    plain = True  # no quote or escape in the current word
    quote: str | None = None
    index = 0
    while index < len(text):
        char = text[index]
        if quote is None and char.isspace():
            if in_word:
                words.append(("".join(word), plain))
                word, in_word, plain = [], False, True
            index += 1
            continue
        in_word = True
        if char == quote:
            quote, plain = None, False
            index += 1
            continue
        if quote is None and char in "'\"":
            quote, plain = char, False
            index += 1
            continue
        if char == "\\" and (c_escapes or quote != "'"):
            if index + 1 >= len(text):
                raise ParseError(source, "trailing backslash", line=text)
            nxt = text[index + 1]
            plain = False
            if c_escapes:
                decoded, used = _c_unescape(text, index + 1, source)
                word.append(decoded)
                index += 1 + used
                continue
            if quote == '"' and nxt not in '"\\`$':
                word.append("\\")
                index += 1
                continue
            word.append(nxt)
            index += 2
            continue
        word.append(char)
        index += 1
    if quote is not None:
        raise ParseError(source, f"unterminated {quote} quote", line=text)
    if in_word:
        words.append(("".join(word), plain))
    return words


def _c_unescape(text: str, index: int, source: str) -> tuple[str, int]:
    """Decode the escape starting after a backslash at ``text[index]``; return (char, used)."""
    char = text[index]
    if char in _C_ESCAPES:
        return _C_ESCAPES[char], 1
    lengths = {"x": 2, "u": 4, "U": 8}
    if char in lengths:
        digits = text[index + 1 : index + 1 + lengths[char]]
        if len(digits) == lengths[char] and all(c in "0123456789abcdefABCDEF" for c in digits):
            return chr(int(digits, 16)), 1 + lengths[char]
    elif char in "01234567":
        digits = text[index : index + 3]
        if len(digits) == 3 and all(c in "01234567" for c in digits):
            return chr(int(digits, 8)), 3
    raise ParseError(source, f"invalid escape '\\{char}'", line=text)


def parse_environment_property(value: str) -> dict[str, str]:
    """``Environment=`` as printed by ``systemctl show`` -> ``{name: value}`` (later wins)."""
    source = "systemctl show -p Environment"
    result: dict[str, str] = {}
    for line in value.split("\n"):
        if "[unprintable]" in line.split():
            raise ParseError(
                source,
                "an entry was printed as [unprintable] by an old systemd "
                "(it contains a space); read the unit file instead",
                line=line,
            )
        for word in _split_words(line, source=source, c_escapes=False):
            name, sep, item = word.partition("=")
            if not sep or not is_valid_env_name(name):
                raise ParseError(source, f"invalid assignment {word!r}", line=line)
            result[name] = item
    return result


_ENV_FILE_ENTRY = re.compile(r"\s*(?P<path>\S.*?) \(ignore_errors=(?P<ignore>yes|no)\)")


def parse_environment_files_property(value: str) -> list[tuple[str, bool]]:
    """``EnvironmentFiles=/etc/x/env (ignore_errors=no)`` (one per line) -> [(path, optional)].

    ``optional`` is True for ``EnvironmentFile=-/path`` (systemd shows ignore_errors=yes).
    """
    source = "systemctl show -p EnvironmentFiles"
    entries: list[tuple[str, bool]] = []
    for line in value.split("\n"):
        position = 0
        while position < len(line.rstrip()):
            match = _ENV_FILE_ENTRY.match(line, position)
            if match is None:
                raise ParseError(source, "expected '/path (ignore_errors=yes|no)'", line=line)
            entries.append((match["path"], match["ignore"] == "yes"))
            position = match.end()
    return entries


_SECTION = re.compile(r"^\[(?P<name>[^\[\]]+)\]$")


def parse_unit_file(text: str, source: str) -> dict[str, dict[str, list[str]]]:
    """A unit file (or drop-in) -> ``{section: {key: [values in order]}}``.

    As systemd.syntax(7): ``#``/``;`` comment lines; a trailing backslash joins the next line
    with the backslash replaced by a space, and comment lines inside such a continuation are
    skipped; whitespace around keys and values is dropped. Values stay raw (no unquoting);
    an empty assignment is kept as ``""`` because its meaning (reset a list, or the default)
    depends on the key.
    """
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    lines = text.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        line_no = index + 1
        logical = lines[index].strip()
        index += 1
        if not logical or logical[0] in "#;":
            continue
        while logical.endswith("\\"):
            logical = logical[:-1] + " "
            while index < len(lines) and lines[index].strip()[:1] in ("#", ";"):
                index += 1
            if index >= len(lines):
                break
            logical += lines[index].strip()
            index += 1
        logical = logical.strip()
        section = _SECTION.match(logical)
        if section is not None:
            current = sections.setdefault(section["name"], {})
            continue
        key, sep, item = logical.partition("=")
        if not sep or not key.strip():
            raise ParseError(
                source,
                "expected 'Key=value' or '[Section]'",
                line_no=line_no,
                line=lines[line_no - 1],
            )
        if current is None:
            raise ParseError(
                source, "assignment before any [Section]", line_no=line_no, line=lines[line_no - 1]
            )
        current.setdefault(key.strip(), []).append(item.strip())
    return sections
