"""The read-only allow-list: the only commands the harness may run on a host.

The harness must never change a host. Rather than trusting every caller, the transport
accepts a command only as an argv list that matches one of the rules below, and refuses
anything else before a byte reaches the host. ``python -c`` is allowed only with one of
the harness's own registered scripts (exact text), which read metadata and never write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from conformance.errors import CommandRefused
from conformance.inventory import grammar
from conformance.transport import scripts

# Every pattern is applied with fullmatch: "$" would also accept a trailing newline.
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*")
_SAFE_WORD = re.compile(r"[A-Za-z0-9._@:+=/-]+")
_SYSTEMCTL_PROPERTY = re.compile(r"[A-Za-z]+")
_LAUNCHD_TARGET = re.compile(r"(system|gui/[0-9]+|user/[0-9]+)/[A-Za-z0-9][A-Za-z0-9._-]*")
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]*")

# Programs may be named bare (found on the host's PATH) or by one of these full paths; a
# path is never reduced to its basename (/tmp/x/python3 is not python3).
PROGRAM_PATHS: dict[str, str] = {
    "/usr/bin/python3": "python3",
    "/usr/local/bin/python3": "python3",
    "/opt/homebrew/bin/python3": "python3",
    "/usr/bin/ss": "ss",
    "/usr/bin/cat": "cat",
    "/bin/cat": "cat",
    "/usr/bin/systemctl": "systemctl",
    "/bin/launchctl": "launchctl",
    "/usr/sbin/lsof": "lsof",
    "/usr/bin/plutil": "plutil",
}


def _is_path(arg: str) -> bool:
    return bool(_SAFE_PATH.fullmatch(arg)) and ".." not in arg.split("/")


def _is_unit(name: str) -> bool:
    try:
        grammar.systemd_unit_name(name)
    except ValueError:
        return False
    return True


def _exact(*options: tuple[str, ...]) -> Callable[[Sequence[str]], bool]:
    return lambda args: tuple(args) in options


def _cat(args: Sequence[str]) -> bool:
    return len(args) >= 1 and all(_is_path(arg) for arg in args)


def _stat(args: Sequence[str]) -> bool:
    # -L: follow symlinks (the file a name leads to, as sudo's stat(2) of a command sees it).
    if len(args) >= 1 and args[0] == "-L":
        args = args[1:]
    return (
        len(args) >= 3
        and args[0] == "-c"
        and _SAFE_WORD.fullmatch(args[1].replace("%", "")) is not None
        and all(_is_path(arg) for arg in args[2:])
    )


def _systemctl(args: Sequence[str]) -> bool:
    if not args or args[0] not in {"show", "is-active", "is-enabled"}:
        return False
    rest = list(args[1:])
    while rest and rest[0] == "-p":
        if len(rest) < 2 or not _SYSTEMCTL_PROPERTY.fullmatch(rest[1]):
            return False
        rest = rest[2:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    # systemd's own unit-name grammar (which also refuses a leading "-").
    return bool(rest) and all(_is_unit(unit) for unit in rest)


def _launchctl(args: Sequence[str]) -> bool:
    return len(args) == 2 and args[0] == "print" and bool(_LAUNCHD_TARGET.fullmatch(args[1]))


def _plutil(args: Sequence[str]) -> bool:
    # Converts to XML on stdout ("-o -"); never in place.
    return len(args) == 5 and list(args[:4]) == ["-convert", "xml1", "-o", "-"] and _is_path(args[4])


def _getent(args: Sequence[str]) -> bool:
    return len(args) >= 2 and args[0] == "passwd" and all(_ACCOUNT.fullmatch(user) for user in args[1:])


def _python(args: Sequence[str]) -> bool:
    if len(args) < 2 or args[0] != "-c":
        return False
    script = scripts.by_text(args[1])
    return script is not None and script.arguments_valid(args[2:])


RULES: dict[str, Callable[[Sequence[str]], bool]] = {
    "ss": _exact(("-Htlnp",), ("-Htln",)),
    "lsof": _exact(("-nP", "-iTCP", "-sTCP:LISTEN"), ("-nP", "-iTCP", "-sTCP:LISTEN", "-Fpcnt")),
    "netstat": _exact(("-anv", "-p", "tcp"), ("-tlnp",)),
    "systemctl": _systemctl,
    "launchctl": _launchctl,
    "cat": _cat,
    "stat": _stat,
    "hostname": _exact((), ("-s",)),
    "uname": _exact(("-s",), ("-sr",)),
    "id": _exact((), ("-u",)),
    "sw_vers": _exact((), ("-productVersion",)),
    "getent": _getent,
    "plutil": _plutil,
    "ps": _exact(
        ("-axo", "pid=,ppid=,uid=,comm="),
    ),
    "python3": _python,
    "python": _python,
}


SUDO_LIST = ["sudo", "-n", "-l"]


def check_command(argv: Sequence[str]) -> None:
    """Raise CommandRefused unless ``argv`` is on the read-only allow-list."""
    if not argv:
        raise CommandRefused("empty command")
    args = list(argv)
    if args == SUDO_LIST:
        # Lists the user's own sudo rules; runs nothing (sudo(8), -l).
        return
    if args[0] == "sudo":
        # Privilege is only ever a non-interactive prefix to an allowed command.
        if len(args) < 3 or args[1] != "-n":
            raise CommandRefused(f"sudo must be 'sudo -n <allowed command>': {argv!r}")
        args = args[2:]
    program = args[0]
    if "/" in program:
        name = PROGRAM_PATHS.get(program)
        if name is None:
            raise CommandRefused(f"program {program[:200]!r} is not on the allow-list by this full path")
    else:
        name = program
    rule = RULES.get(name)
    if rule is None:
        raise CommandRefused(f"{name[:200]!r} is not on the read-only allow-list")
    if not rule(args[1:]):
        raise CommandRefused(f"arguments not allowed for {name}: {args[1:]!r}"[:2000])
