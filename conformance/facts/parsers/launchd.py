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
from dataclasses import dataclass, field
from typing import Any

from conformance.facts.parsers.errors import ParseError

__all__ = [
    "LaunchdJob",
    "LaunchdPlist",
    "LaunchdServiceNotFound",
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
_BLOCK = re.compile(r"^(?P<key>\S.*?) (?:=|=>) \{$")
_ENV_LINE = re.compile(r"^(?P<key>\S.*?) =>(?: (?P<value>.*))?$")


def parse_launchctl_print(text: str, expected_label: str) -> LaunchdJob:
    """Parse ``launchctl print gui/<uid>/<label>`` (or ``system/<label>``, ``user/<uid>/...``).

    Raises LaunchdServiceNotFound when handed the "Could not find service" text, and
    ParseError when the header names another label, the indentation is not the tab structure
    launchctl prints, a block is left open (truncated output), or ``state`` is missing.
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
    depth = 1
    top_block: str | None = None
    closed_at: int | None = None
    for line_no, line in enumerate(lines[index + 1 :], start=index + 2):
        if not line.strip():
            continue
        if closed_at is not None:
            raise ParseError(source, "text after the closing '}'", line_no=line_no, line=line)
        tabs = len(line) - len(line.lstrip("\t"))
        content = line[tabs:]
        if content[:1].isspace():
            raise ParseError(
                source,
                "indentation is not tabs (was the output re-formatted?)",
                line_no=line_no,
                line=line,
            )
        if content == "}":
            if tabs != depth - 1:
                raise ParseError(
                    source,
                    f"'}}' at depth {tabs}, expected {depth - 1}",
                    line_no=line_no,
                    line=line,
                )
            depth -= 1
            if depth == 1:
                top_block = None
            if depth == 0:
                closed_at = line_no
            continue
        if tabs != depth:
            raise ParseError(
                source,
                f"line at depth {tabs} inside a block at depth {depth}",
                line_no=line_no,
                line=line,
            )
        opening = _BLOCK.match(content)
        if opening is not None:
            if depth == 1:
                top_block = opening["key"]
                blocks.setdefault(top_block, [])
            depth += 1
            continue
        if depth == 1:
            prop = _PROPERTY.match(content)
            if prop is not None:
                scalars.setdefault(prop["key"], prop["value"])
        elif depth == 2 and top_block is not None:
            blocks[top_block].append((line_no, content))
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
    ) as exc:
        raise ParseError(source, f"not a valid plist: {exc}") from None
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
