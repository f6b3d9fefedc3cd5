"""macOS launchd facts: ``launchctl print <domain>/<label>`` and LaunchAgent/Daemon plists.

``launchctl print`` is meant for humans and Apple documents it as unstable, so the parser is
strict about the few things it reads and ignores the rest: the header target must match the
expected label exactly (InSpec/specinfra's ``launchctl list | grep`` substring match is the
bug class being avoided), only lines at exactly one tab of depth are top-level properties
(nested blocks such as ``resource coalition`` repeat ``state =`` at two tabs), and the
environment comes only from the block whose header is exactly ``\\tenvironment = {``
(``inherited environment`` and ``default environment`` are launchd's, not the job's).
"""

from __future__ import annotations

import plistlib
import re
import xml.parsers.expat
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from conformance.facts.parsers.errors import ParseError

__all__ = [
    "LaunchdJob",
    "LaunchdPlist",
    "LaunchdServiceNotFound",
    "UnreadableBlock",
    "is_not_found",
    "label_from_target",
    "parse_launchctl_print",
    "parse_plist",
]

_NOT_FOUND_TEXT = "Could not find service"
# launchctl's exit status for "Could not find specified service" (seen with `print`/`kill`).
NOT_FOUND_EXIT_CODE = 113


class LaunchdServiceNotFound(Exception):
    """launchctl says the label is not loaded in that domain (exit 113)."""

    def __init__(self, target: str, message: str) -> None:
        self.target = target
        self.message = message
        super().__init__(f"{target}: {message}")


def is_not_found(stderr: str, exit_code: int) -> bool:
    """True when a ``launchctl print`` result means "no such service in that domain".

    launchctl prints ``Could not find service "x" in domain for user gui: 501`` (after
    ``Bad request.``) and exits 113. Either signal suffices: the text has changed wording
    across releases more than the exit code has.
    """
    return exit_code == NOT_FOUND_EXIT_CODE or _NOT_FOUND_TEXT in stderr


@dataclass(frozen=True)
class UnreadableBlock:
    """A block of ``launchctl print`` output the parser could not place; the rest was read."""

    block: str  # the block's path, outermost first ("event triggers > x > descriptor"), or "(top level)"
    opened_at: int | None  # line number of the block's opening line (None: the top level)
    line_no: int  # the first line that could not be placed
    line: str
    reason: str

    def describe(self) -> str:
        where = f"opened at line {self.opened_at}" if self.opened_at is not None else "outside any block"
        return f"block '{self.block}' ({where}) not read from line {self.line_no}: {self.reason}"


@dataclass(frozen=True)
class LaunchdJob:
    """What ``launchctl print`` says about one loaded job."""

    target: str
    label: str
    state: str
    pid: int | None
    last_exit_code: str | None
    path: str | None
    program: str | None
    arguments: tuple[str, ...]
    environment: dict[str, str]
    working_directory: str | None
    properties: dict[str, str] = field(default_factory=dict)
    # Blocks that could not be read (the fields above were read around them).
    unreadable: tuple[UnreadableBlock, ...] = ()

    def notes(self) -> list[str]:
        """One line per unreadable block, for evidence ("partial read: ...")."""
        return [f"partial read of launchctl print {self.target}: {item.describe()}" for item in self.unreadable]

    @property
    def running(self) -> bool:
        return self.state == "running" and self.pid is not None


# Domains whose target is "<kind>/<id>/<label>"; "system/<label>" has no id.
_TWO_PART_DOMAINS = frozenset({"gui", "user", "login", "pid", "session"})


def label_from_target(target: str) -> str:
    """``gui/501/com.x.y`` -> ``com.x.y``; ``system/com.x.y`` -> ``com.x.y``.

    The label is what follows the domain, not the last ``/`` component, so a label that
    itself contains ``/`` survives.
    """
    parts = target.split("/")
    if parts[0] == "system" and len(parts) >= 2:
        return "/".join(parts[1:])
    if parts[0] in _TWO_PART_DOMAINS and len(parts) >= 3:
        return "/".join(parts[2:])
    return parts[-1]


_HEADER = re.compile(r"^(?P<target>\S.*?) = \{$")
_PROPERTY = re.compile(r"^(?P<key>[^\s=][^=]*?) = (?P<value>.*)$")
# A block opens with "key = {" (launchd's own dictionaries), "key => {" / '"key" => {' (an XPC
# dictionary, e.g. an event trigger's descriptor) or '"key" => [' (an XPC array, whose elements
# print as "N = value"); "(" is accepted alike. "key = {}" / '"k" => []' (an empty container on
# one line) opens nothing: it is an entry like any other.
_OPENING = re.compile(r"^(?P<key>\S.*?) (?:=|=>) (?P<opener>[{\[(])$")
_ENV_LINE = re.compile(r"^(?P<key>\S.*?) =>(?: (?P<value>.*))?$")
# An element whose value printed nothing (or no newline, e.g. empty data in an XPC array) is
# followed on the same line by the indentation and closer of its block: '0 = \t\t\t\t]'.
_GLUED_CLOSER = re.compile(r"^(?P<entry>.*?)(?P<tabs>\t+)(?P<closer>[}\])])$")
_CLOSERS = {"}": "{", "]": "[", ")": "("}

# Top-level blocks whose entries are launchd's own strings, read line by line as printed (an
# argument may itself end in " {"); only their closer at one tab ends them.
_STRING_BLOCKS = frozenset({"arguments", "environment", "inherited environment", "default environment"})
# The blocks the checks read: one that cannot be read refuses the job (a partial argv or
# environment would be judged as if it were whole).
_REQUIRED_BLOCKS = frozenset({"arguments", "environment"})
_TOP_LEVEL = "(top level)"


@dataclass
class _Open:
    key: str
    opener: str
    line_no: int


def parse_launchctl_print(text: str, expected_label: str) -> LaunchdJob:
    """Parse ``launchctl print gui/<uid>/<label>`` (or ``system/<label>``, ``user/<uid>/...``).

    The output is modelled as launchctl prints it: one tab per level, ``key = value`` and
    ``key => value`` entries, blocks opened by ``... = {`` / ``... => {`` / ``... => [`` and
    closed by ``}`` / ``]`` one level out, array elements ``N = value``. A line that cannot be
    placed in that structure degrades only the top-level block it is in: the block is listed in
    ``LaunchdJob.unreadable`` (with its path and line numbers) and reading resumes at the next
    top-level line. Only the fields read at the top level (state, pid, program, path, domain,
    last exit code ...) and the ``arguments``/``environment`` blocks are used.

    Raises LaunchdServiceNotFound when handed the "Could not find service" text, and
    ParseError when the header names another label, the top-level lines are not tab-indented,
    the ``arguments`` or ``environment`` block cannot be read, the output ends before the
    job's closing ``}`` (truncated), or ``state`` is missing.
    """
    source = f"launchctl print .../{expected_label}"
    lines = text.splitlines()
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index == len(lines):
        raise ParseError(source, "empty output")
    header = _HEADER.match(lines[index])
    if header is None and _NOT_FOUND_TEXT in text:
        raise LaunchdServiceNotFound(expected_label, text.strip())
    if header is None:
        raise ParseError(source, "expected a '<domain>/<label> = {' header", line_no=index + 1, line=lines[index])
    target = header["target"]
    label = label_from_target(target)
    if label != expected_label:
        raise ParseError(
            source,
            f"header names label {label!r}, expected exactly {expected_label!r}",
            line_no=index + 1,
            line=lines[index],
        )

    scalars: dict[str, str] = {}
    blocks: dict[str, list[tuple[int, str]]] = {}
    unreadable: list[UnreadableBlock] = []
    stack = [_Open(target, "{", index + 1)]  # the open blocks; a line inside belongs at len(stack) tabs
    skipping = False  # after an unplaceable line: skip to the next line at one tab (or less)
    closed_at: int | None = None
    pending: deque[tuple[int, str]] = deque(enumerate(lines[index + 1 :], start=index + 2))

    def give_up(line_no: int, line: str, reason: str) -> None:
        """Record that the top-level block holding this line cannot be read (or refuse the job)."""
        nonlocal skipping
        if len(stack) >= 2 and stack[1].key in _REQUIRED_BLOCKS:
            raise ParseError(source, f"the '{stack[1].key}' block cannot be read: {reason}", line_no=line_no, line=line)
        path = " > ".join(item.key for item in stack[1:]) or _TOP_LEVEL
        opened_at = stack[-1].line_no if len(stack) >= 2 else None
        unreadable.append(UnreadableBlock(path, opened_at, line_no, line, reason))
        skipping = True

    while pending:
        line_no, line = pending.popleft()
        depth = len(stack)
        in_strings = depth == 2 and stack[1].key in _STRING_BLOCKS
        if in_strings and stack[1].key == "arguments" and line == "\t\t":
            blocks["arguments"].append((line_no, ""))  # an empty argument prints as its indentation
            continue
        if not line.strip():
            continue
        if closed_at is not None:
            raise ParseError(source, "text after the closing '}'", line_no=line_no, line=line)
        tabs = len(line) - len(line.lstrip("\t"))
        content = line[tabs:]
        if skipping:
            if tabs >= 2:
                continue
            # Back at the top level: the unreadable block ends here (at its closer, if this is it).
            skipping = False
            if depth >= 2:
                del stack[1:]
                if tabs == 1 and content == "}":
                    continue
                depth, in_strings = 1, False
        if content[:1].isspace():
            if tabs <= 1:
                raise ParseError(
                    source,
                    "indentation is not tabs (was the output re-formatted?)",
                    line_no=line_no,
                    line=line,
                )
            give_up(line_no, line, "indentation is not tabs")
            continue
        if content in _CLOSERS and tabs < depth:
            if tabs < depth - 1:
                # The blocks inside the one this closes were left open.
                give_up(line_no, line, f"'{content}' at depth {tabs} while blocks at depth {tabs + 1}+ are open")
                skipping = False
                del stack[tabs + 1 :]
            closing = stack[-1]
            if _CLOSERS[content] != closing.opener:
                give_up(line_no, line, f"'{content}' closes the '{closing.opener}' opened at line {closing.line_no}")
                skipping = False
            stack.pop()
            if not stack:
                closed_at = line_no
            continue
        if tabs < depth:
            give_up(line_no, line, f"the block ends without its closer (line at depth {tabs})")
            if tabs >= 1:
                # Read the line again where it belongs.
                skipping = False
                del stack[tabs:]
                pending.appendleft((line_no, line))
            continue
        if tabs > depth:
            give_up(line_no, line, f"line at depth {tabs} inside a block at depth {depth}")
            continue
        if in_strings:
            blocks[stack[1].key].append((line_no, content))
            continue
        glued = _GLUED_CLOSER.match(content)
        if glued is not None and depth >= 2 and len(glued["tabs"]) == depth - 1:
            pending.appendleft((line_no, glued["tabs"] + glued["closer"]))
            pending.appendleft((line_no, "\t" * depth + glued["entry"]))
            continue
        opening = _OPENING.match(content)
        if opening is not None:
            stack.append(_Open(opening["key"], opening["opener"], line_no))
            if depth == 1:
                blocks.setdefault(opening["key"], [])
            continue
        if depth == 1:
            prop = _PROPERTY.match(content)
            if prop is None:
                give_up(line_no, line, "expected 'key = value' at the top level")
                skipping = False
                continue
            scalars.setdefault(prop["key"], prop["value"])
    if closed_at is None:
        raise ParseError(source, "output ends inside a block (truncated?)")

    if "state" not in scalars:
        raise ParseError(source, "no top-level 'state = ...' line")
    pid_text = scalars.get("pid")
    if pid_text is not None and not pid_text.isdigit():
        raise ParseError(source, f"pid {pid_text!r} is not a number")
    environment: dict[str, str] = {}
    for line_no, content in blocks.get("environment", []):
        match = _ENV_LINE.match(content)
        if match is None:
            raise ParseError(
                source,
                "expected 'KEY => value' in the environment block",
                line_no=line_no,
                line=content,
            )
        environment[match["key"]] = match["value"] or ""
    return LaunchdJob(
        target=target,
        label=label,
        state=scalars["state"],
        pid=int(pid_text) if pid_text is not None else None,
        last_exit_code=scalars.get("last exit code"),
        path=scalars.get("path"),
        program=scalars.get("program"),
        arguments=tuple(content for _, content in blocks.get("arguments", [])),
        environment=environment,
        working_directory=scalars.get("working directory"),
        properties=scalars,
        unreadable=tuple(unreadable),
    )


@dataclass(frozen=True)
class LaunchdPlist:
    """The launchd-relevant keys of a job plist.

    ``program_arguments`` is ``ProgramArguments``, or ``(Program,)`` when only ``Program`` is
    given (launchd then uses it as argv[0]); ``program`` is the ``Program`` key itself.
    """

    label: str
    program_arguments: tuple[str, ...]
    environment: dict[str, str]
    run_at_load: bool
    keep_alive: bool | dict[str, Any]
    working_directory: str | None
    program: str | None = None
    standard_out_path: str | None = None
    standard_error_path: str | None = None
    user_name: str | None = None  # UserName: the account a system-domain job runs as


def parse_plist(data: bytes, source: str) -> LaunchdPlist:
    """Parse a launchd plist (XML or binary) with ``plistlib``.

    Mirrors launchd: ``EnvironmentVariables`` entries whose value is not a string are ignored
    (launchd skips them); there is no ``$VAR`` expansion. Wrong types for the keys launchd
    requires (``Label``, ``ProgramArguments``) raise ParseError naming ``source``.
    """
    try:
        loaded = plistlib.loads(data)
    except (
        plistlib.InvalidFileException,
        xml.parsers.expat.ExpatError,
        ValueError,
        TypeError,
        OverflowError,
        # plistlib's XML reader lets these through on damaged input: an unknown encoding in
        # the XML declaration (LookupError), a closing tag with no container open (IndexError).
        LookupError,
        AttributeError,
        RecursionError,
    ) as exc:
        raise ParseError(source, f"not a valid plist: {type(exc).__name__}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ParseError(source, f"top level is {type(loaded).__name__}, expected a dict")
    doc: dict[str, Any] = loaded

    def optional_str(key: str) -> str | None:
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            raise ParseError(source, f"{key} is {type(value).__name__}, expected a string")
        return value

    def optional_bool(key: str) -> bool:
        value = doc.get(key, False)
        if not isinstance(value, bool):
            raise ParseError(source, f"{key} is {type(value).__name__}, expected a boolean")
        return value

    label = optional_str("Label")
    if not label:
        raise ParseError(source, "no Label")
    program = optional_str("Program")
    raw_args = doc.get("ProgramArguments")
    if raw_args is None:
        if program is None:
            raise ParseError(source, "neither ProgramArguments nor Program")
        arguments: tuple[str, ...] = (program,)
    elif isinstance(raw_args, list) and all(isinstance(a, str) for a in raw_args):
        arguments = tuple(raw_args)
    else:
        raise ParseError(source, "ProgramArguments must be an array of strings")
    raw_env = doc.get("EnvironmentVariables", {})
    if not isinstance(raw_env, dict):
        raise ParseError(source, "EnvironmentVariables must be a dict")
    environment = {k: v for k, v in raw_env.items() if isinstance(v, str)}
    keep_alive = doc.get("KeepAlive", False)
    if not isinstance(keep_alive, bool | dict):
        raise ParseError(source, "KeepAlive must be a boolean or a dict")
    return LaunchdPlist(
        label=label,
        program_arguments=arguments,
        environment=environment,
        run_at_load=optional_bool("RunAtLoad"),
        keep_alive=keep_alive,
        working_directory=optional_str("WorkingDirectory"),
        program=program,
        standard_out_path=optional_str("StandardOutPath"),
        standard_error_path=optional_str("StandardErrorPath"),
        user_name=optional_str("UserName"),
    )
