"""What ``sudo -n -l`` says a user may run, and whether one exact command is granted.

``sudo -l`` lists the invoking user's rules without running anything. This module reads its
short listing, as sudo 1.9 prints it (``display_privs`` and ``display_priv_short`` in
plugins/sudoers/parse.c, ``sudoers_format_cmndspec`` and ``sudoers_format_member_int`` in
plugins/sudoers/fmtsudoers.c, tag SUDO_1_9_13p3), and its long form (``sudo -l -l``, or a
long listing a configuration prints: ``display_priv_long`` in parse.c, one ``Sudoers entry:``
block per rule, or ``LDAP Role:`` from sudo's LDAP backend, with ``RunAsUsers:``,
``RunAsGroups:``, ``Options:`` where NOPASSWD is ``!authenticate``, and ``Commands:`` one per
line), with the same matching semantics. It models sudoers(5) matching for the
few commands the harness runs as root. The rules modelled, with their source:

- last match wins: "Where there are multiple matches, the last match is used" (sudoers(5),
  "User specification"); ``sudoers_lookup_check`` walks userspecs, privileges and commands
  in reverse and stops at the first match;
- a command with no arguments in sudoers allows any arguments; ``""`` allows none; otherwise
  the arguments, joined by single spaces, must match the sudoers pattern with fnmatch(3) and
  no flags, so ``*`` also matches ``/`` and spaces (sudoers(5), "Wildcards";
  ``command_args_match`` in match_command.c);
- a command path with wildcards is matched with fnmatch(3) and FNM_PATHNAME (``*`` never
  crosses ``/``; ``command_matches_fnmatch``); a path ending in ``/`` matches any file in
  that directory (``command_matches_dir``); ``ALL`` matches any command;
- a plain path matches when its base name is the command's and it is the same file (device
  and inode, ``command_matches_normal``): the same path, or two paths that ``stat -L``
  showed to be one file;
- ``!`` negates (a match denies); with ``sudo -n`` a rule is usable only when no password is
  needed: NOPASSWD, or ``!authenticate`` among the matching Defaults (sudoers(5), "Tag_Spec");
- the command runs as root: the Runas list must allow root (``ALL``, ``root`` or ``#0``).

Whatever this module cannot decide with certainty (a regular expression, a digest, a time
window, a Runas group or alias, a backslash or character class in a pattern, a listing in
another language) is "cannot tell", never a grant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

# Printed before each part of the listing (parse.c, display_privs); sudo translates them, so a
# listing in another language is "cannot tell".
_DEFAULTS_HEADER = re.compile(r"^Matching Defaults entries for (\S+) on (\S+):$")
_BOUND_DEFAULTS_HEADER = re.compile(r"^Runas and Command-specific defaults for (\S+):$")
_PRIVS_HEADER = re.compile(r"^User (\S+) may run the following commands on (\S+):$")
_NOT_ALLOWED = re.compile(r"^User (\S+) is not allowed to run sudo on (\S+)\.$")
# The long form (parse.c, display_priv_long): a block per rule; sudo >= 1.9.14 adds the file.
_ENTRY_HEADER = re.compile(r"^(Sudoers entry:|LDAP Role:)(\s.*)?$")
_ENTRY_FIELD = re.compile(r"^\s+([A-Za-z]+):(?:\s(.*))?$")
# Long-form fields and the short form's option each stands for; any other field is not modelled.
_LONG_OPTIONS = {"Cwd": "CWD", "Chroot": "CHROOT", "Timeout": "TIMEOUT", "NotBefore": "NOTBEFORE"}
_LONG_OPTIONS |= {"NotAfter": "NOTAFTER", "Role": "ROLE", "Type": "TYPE", "ApparmorProfile": "APPARMOR_PROFILE"}
_LONG_OPTIONS |= {"Privs": "PRIVS", "Limitprivs": "LIMITPRIVS"}
_TAG = re.compile(
    r"^(NOPASSWD|PASSWD|SETENV|NOSETENV|NOEXEC|EXEC|INTERCEPT|NOINTERCEPT|LOG_INPUT|NOLOG_INPUT|"
    r"LOG_OUTPUT|NOLOG_OUTPUT|MAIL|NOMAIL|FOLLOW|NOFOLLOW): "
)
_OPTION = re.compile(r"^(CWD|CHROOT|TIMEOUT|NOTBEFORE|NOTAFTER|ROLE|TYPE|APPARMOR_PROFILE|PRIVS|LIMITPRIVS)=(\S+) ")
_DIGEST = re.compile(r"^(sha224|sha256|sha384|sha512):\S+ ")
# Options whose effect this module does not model: a command carrying one is "cannot tell".
_UNMODELLED_OPTIONS = {"CHROOT", "NOTBEFORE", "NOTAFTER", "ROLE", "TYPE", "APPARMOR_PROFILE", "PRIVS", "LIMITPRIVS"}
_UNMODELLED_OPTIONS |= {"UNKNOWN_FIELD"}
# Characters sudo escapes with a backslash when it prints a command (parse.h SUDOERS_QUOTED_CMD)
# or its arguments (SUDOERS_QUOTED_ARG).
_QUOTED_CMD = ":,= \t#"
_QUOTED_ARG = ":,=#"
_META = set("\\?*[]")  # parse.h has_meta
_UNESCAPED_COMMA = re.compile(r"(?<!\\), ")


class Verdict(Enum):
    GRANTED = "granted"
    MISSING = "missing"
    CANNOT_TELL = "cannot tell"


@dataclass(frozen=True)
class SudoCommand:
    """One command of one listed rule, as sudo would match it."""

    runas: str  # the text inside the parentheses, e.g. "root" or "ALL : ALL"
    command: str  # a path, a pattern, "ALL", or a pseudo-command (sudoedit, list)
    args: str | None  # None: any arguments; '""': none
    negated: bool
    nopasswd: bool
    options: tuple[str, ...]  # CWD=..., TIMEOUT=..., a digest: shown as printed
    text: str  # the command as sudo printed it


@dataclass(frozen=True)
class SudoListing:
    user: str
    host: str
    defaults: tuple[str, ...]
    command_defaults: tuple[str, ...]  # "Runas and Command-specific defaults"
    commands: tuple[SudoCommand, ...]

    @property
    def authenticate_off(self) -> bool:
        return "!authenticate" in self.defaults

    @property
    def requiretty(self) -> bool:
        return "requiretty" in self.defaults

    @property
    def secure_path(self) -> tuple[str, ...] | None:
        for entry in self.defaults:
            if entry.startswith("secure_path="):
                value = entry.split("=", 1)[1].strip('"')
                return tuple(part for part in re.split(r"\\?:", value) if part)
        return None


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    rule: SudoCommand | None = None


class SudoListingError(ValueError):
    """The text is not a ``sudo -l`` listing this module can read."""


def _unescape(text: str, quoted: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in quoted:
            out.append(text[index + 1])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _logical_lines(lines: Sequence[str]) -> list[str]:
    """Lines with sudo's terminal wrapping undone: a wrapped rule continues with a deeper indent
    (the privilege buffer is set up with an indent of 8, sudo_lbuf_init in display_privs)."""
    joined: list[str] = []
    for line in lines:
        # A long-form command (tab-indented) wraps the same way.
        if line.startswith("        ") and joined and joined[-1].startswith(("    (", "\t")):
            joined[-1] = joined[-1].rstrip() + " " + line.strip()
        else:
            joined.append(line.rstrip())
    return joined


def _split_defaults(lines: list[str]) -> tuple[str, ...]:
    text = " ".join(line.strip() for line in lines)
    return tuple(part.strip() for part in _UNESCAPED_COMMA.split(text) if part.strip())


def _split_runas(line: str) -> tuple[str, str]:
    body = line.strip()
    if not body.startswith("("):
        raise SudoListingError(f"a rule does not start with its Runas list: {body[:120]!r}")
    close = body.find(") ")
    if close < 0:
        raise SudoListingError(f"a rule's Runas list is not closed: {body[:120]!r}")
    return body[1:close], body[close + 2 :]


def _parse_rule_line(line: str) -> list[SudoCommand]:
    runas, rest = _split_runas(line)
    nopasswd = False
    carried: dict[str, str] = {}
    commands: list[SudoCommand] = []
    for piece in _UNESCAPED_COMMA.split(rest):
        options: list[str] = []
        while True:
            tag = _TAG.match(piece)
            if tag:
                if tag.group(1) in {"NOPASSWD", "PASSWD"}:
                    nopasswd = tag.group(1) == "NOPASSWD"
                piece = piece[tag.end() :]
                continue
            option = _OPTION.match(piece)
            if option:
                carried[option.group(1)] = option.group(2)
                piece = piece[option.end() :]
                continue
            digest = _DIGEST.match(piece)
            if digest:
                options.append(digest.group(0).strip())
                piece = piece[digest.end() :]
                continue
            break
        negated = piece.startswith("!")
        body = piece[1:] if negated else piece
        command, args = _split_command(body)
        commands.append(
            SudoCommand(
                runas,
                command,
                args,
                negated,
                nopasswd,
                tuple(f"{key}={value}" for key, value in carried.items()) + tuple(options),
                piece,
            )
        )
    return commands


def _split_command(body: str) -> tuple[str, str | None]:
    """Split at the first space sudo did not escape: the command, then its arguments."""
    index = 0
    while index < len(body):
        if body[index] == "\\" and index + 1 < len(body):
            index += 2
            continue
        if body[index] == " ":
            return _unescape(body[:index], _QUOTED_CMD), _unescape(body[index + 1 :], _QUOTED_ARG)
        index += 1
    return _unescape(body, _QUOTED_CMD), None


class _LongEntry:
    """One ``Sudoers entry:`` (or ``LDAP Role:``) block of the long form, read field by field."""

    def __init__(self, header: str) -> None:
        self.header = header
        self.users = ""
        self.groups = ""
        self.nopasswd = False
        self.options: list[str] = []
        self.lines: list[str] = []
        self.in_commands = False

    def add(self, line: str) -> None:
        field = _ENTRY_FIELD.match(line) if not line.startswith("\t") else None
        if field is None or (self.in_commands and field.group(1) not in _KNOWN_FIELDS):
            if not self.in_commands:
                raise SudoListingError(f"a line of {self.header!r} is not a field: {line[:120]!r}")
            self.lines.append(line.strip())
            return
        name, value = field.group(1), (field.group(2) or "").strip()
        self.in_commands = name == "Commands"
        if name == "RunAsUsers":
            self.users = value
        elif name == "RunAsGroups":
            self.groups = value
        elif name == "Options":
            for option in (part.strip() for part in _UNESCAPED_COMMA.split(value)):
                if option in {"!authenticate", "authenticate"}:
                    self.nopasswd = option == "!authenticate"  # sudoers(5): NOPASSWD is !authenticate
        elif name in _LONG_OPTIONS:
            self.options.append(f"{_LONG_OPTIONS[name]}={value}")
        elif name not in {"Commands", "Matched"}:
            self.options.append(f"UNKNOWN_FIELD={name}")  # a field this module does not know: cannot tell

    def commands(self) -> list[SudoCommand]:
        if not self.users and not self.groups:
            raise SudoListingError(f"{self.header!r} has no RunAsUsers or RunAsGroups")
        runas = self.users if not self.groups else f"{self.users} : {self.groups}"
        out: list[SudoCommand] = []
        for piece in self.lines:
            options = list(self.options)
            digest = _DIGEST.match(piece)
            if digest:
                options.append(digest.group(0).strip())
                piece = piece[digest.end() :]
            negated = piece.startswith("!")
            command, args = _split_command(piece[1:] if negated else piece)
            out.append(SudoCommand(runas, command, args, negated, self.nopasswd, tuple(options), piece))
        return out


_KNOWN_FIELDS = {"RunAsUsers", "RunAsGroups", "Options", "Commands", "Matched", *_LONG_OPTIONS}


def parse_sudo_list(text: str) -> SudoListing:
    """Parse ``sudo -l`` or ``sudo -l -l`` output (sudo 1.9); SudoListingError when it is not one."""
    lines = _logical_lines(text.splitlines())
    section = ""
    user = host = ""
    defaults: list[str] = []
    bound: list[str] = []
    commands: list[SudoCommand] = []
    seen_privileges = False
    entry: _LongEntry | None = None
    for line in lines:
        if not line.strip():
            continue
        if section == "privileges" and _ENTRY_HEADER.match(line):
            if entry is not None:
                commands += entry.commands()
            entry = _LongEntry(line.strip())
            continue
        if entry is not None and not _PRIVS_HEADER.match(line) and not _DEFAULTS_HEADER.match(line):
            entry.add(line)
            continue
        if match := _DEFAULTS_HEADER.match(line):
            section, user, host = "defaults", match.group(1), match.group(2)
            continue
        if _BOUND_DEFAULTS_HEADER.match(line):
            section = "bound"
            continue
        if match := _PRIVS_HEADER.match(line):
            section, user, host = "privileges", match.group(1), match.group(2)
            seen_privileges = True
            continue
        if match := _NOT_ALLOWED.match(line):
            return SudoListing(match.group(1), match.group(2), (), (), ())
        if section == "defaults":
            defaults.append(line)
        elif section == "bound":
            bound.append(line)
        elif section == "privileges":
            commands += _parse_rule_line(line)
        else:
            raise SudoListingError(f"unexpected line before any section of the listing: {line[:120]!r}")
    if entry is not None:
        commands += entry.commands()
    if not seen_privileges:
        raise SudoListingError("no 'User ... may run the following commands' section (another language?)")
    return SudoListing(user, host, _split_defaults(defaults), tuple(line.strip() for line in bound), tuple(commands))


def _glob_regex(pattern: str, pathname: bool) -> re.Pattern[str] | None:
    """fnmatch(3) as a regular expression; None for what is not modelled (escapes, classes)."""
    out: list[str] = []
    index = 0
    star = "[^/]*" if pathname else ".*"
    one = "[^/]" if pathname else "."
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            return None
        if char == "*":
            out.append(star)
        elif char == "?":
            out.append(one)
        elif char == "[":
            end = pattern.find("]", index + 2)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                if "[:" in body or "[=" in body or "[." in body:
                    return None
                negate = body[:1] in {"!", "^"}
                body = body[1:] if negate else body
                out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("^", "\\^") + "]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out), re.DOTALL)


def _runas_root(runas: str) -> Verdict:
    users = runas.split(" : ", 1)[0]
    names = [name.strip() for name in users.split(",")]
    if any(name.startswith("!") or name.startswith("%") or name.startswith("+") for name in names):
        return Verdict.CANNOT_TELL
    if any(name in {"ALL", "root", "#0"} for name in names):
        return Verdict.GRANTED
    return Verdict.MISSING


def _same_file(a: str, b: str, identities: Mapping[str, str]) -> bool | None:
    if a == b:
        return True
    if a in identities and b in identities:
        return identities[a] == identities[b]
    return None


def _matches(rule: SudoCommand, path: str, args: str, identities: Mapping[str, str]) -> Verdict:
    """Does this one rule match the command ``path`` with ``args``? (match_command.c)"""
    command = rule.command
    if command == "ALL":
        return Verdict.GRANTED
    if command.startswith("^"):
        return Verdict.CANNOT_TELL  # a regular expression (sudo >= 1.9.10): not modelled
    if not command.startswith("/"):
        return Verdict.MISSING  # sudoedit, list: pseudo-commands
    if any(char in _META for char in command):
        regex = _glob_regex(command, pathname=True)
        if regex is None:
            return Verdict.CANNOT_TELL
        if not regex.fullmatch(path):
            return Verdict.MISSING
    elif command.endswith("/"):
        if path.rsplit("/", 1)[0] + "/" != command:
            return Verdict.MISSING
    else:
        if command.rsplit("/", 1)[-1] != path.rsplit("/", 1)[-1]:
            return Verdict.MISSING
        same = _same_file(command, path, identities)
        if same is None:
            return Verdict.CANNOT_TELL
        if not same:
            return Verdict.MISSING
    if rule.args is None:
        return Verdict.GRANTED
    if rule.args == '""':
        return Verdict.GRANTED if not args else Verdict.MISSING
    if rule.args.startswith("^") and rule.args.endswith("$"):
        return Verdict.CANNOT_TELL
    regex = _glob_regex(rule.args, pathname=False)
    if regex is None:
        return Verdict.CANNOT_TELL
    return Verdict.GRANTED if regex.fullmatch(args) else Verdict.MISSING


def decide(
    listing: SudoListing, path: str, argv: Sequence[str], identities: Mapping[str, str] | None = None
) -> Decision:
    """Whether ``sudo -n PATH ARGV...`` (run as root) is granted by the listed rules.

    ``path``: the command as sudo resolves it on the host; ``identities``: ``device:inode`` of
    paths that were stat'ed on the host, so that two names of one file are recognised.
    """
    identities = identities or {}
    args = " ".join(argv)
    if listing.requiretty:
        return Decision(Verdict.MISSING, "Defaults requiretty: sudo refuses to run without a terminal")
    for rule in reversed(listing.commands):
        match = _matches(rule, path, args, identities)
        if match is Verdict.MISSING:
            continue
        if match is Verdict.CANNOT_TELL:
            return Decision(Verdict.CANNOT_TELL, f"the rule {rule.text!r} may or may not match it", rule)
        runas = _runas_root(rule.runas)
        if runas is Verdict.MISSING:
            continue
        if runas is Verdict.CANNOT_TELL:
            return Decision(Verdict.CANNOT_TELL, f"the Runas list ({rule.runas}) may or may not include root", rule)
        if rule.negated:
            return Decision(Verdict.MISSING, f"the rule {rule.text!r} denies it", rule)
        unmodelled = [option for option in rule.options if option.split("=", 1)[0] in _UNMODELLED_OPTIONS]
        if unmodelled or any(":" in option and "=" not in option for option in rule.options):
            return Decision(Verdict.CANNOT_TELL, f"the rule {rule.text!r} carries {', '.join(rule.options)}", rule)
        if not (rule.nopasswd or listing.authenticate_off):
            if listing.command_defaults:
                return Decision(
                    Verdict.CANNOT_TELL,
                    f"the rule {rule.text!r} asks for a password unless a command-specific default lifts it",
                    rule,
                )
            return Decision(Verdict.MISSING, f"the rule {rule.text!r} asks for a password (sudo -n cannot)", rule)
        return Decision(Verdict.GRANTED, f"({rule.runas}) NOPASSWD: {rule.text}", rule)
    return Decision(Verdict.MISSING, "no rule grants it")


def sudoers_line(user: str, path: str, argv: Sequence[str]) -> str:
    """The sudoers line that grants exactly this command, arguments included.

    Arguments are written as they are matched (joined by spaces); the characters sudoers
    treats specially in arguments are escaped (sudoers(5), "Other special characters").
    """
    args = " ".join(argv)
    escaped = "".join("\\" + char if char in _QUOTED_ARG + "\\*?[]" else char for char in args)
    command = f"{path} {escaped}" if argv else f'{path} ""'
    return f"{user} ALL=(root) NOPASSWD: {command}"
