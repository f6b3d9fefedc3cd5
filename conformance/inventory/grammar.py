"""The real grammar of every inventory value that ends up in a command line on a host.

An inventory is trusted input, but a slip (or a hostile merge request) must not turn a
unit name into an option of ``systemctl`` (``-H other-host`` makes it ssh elsewhere) or a
path into two arguments. Each value is checked here, at load time, against the rules of
the program that will read it, so the error names the inventory line; the transport's
allow-list checks the final argv again, and names are passed after ``--`` where the
program supports it.

All patterns are applied with ``fullmatch``: ``$`` would also accept a trailing newline.
"""

from __future__ import annotations

import re

# systemd v255 src/basic/unit-name.c: VALID_CHARS is DIGITS LETTERS ":-_.\\", plus "@" once
# to separate a template's prefix from its instance; UNIT_NAME_MAX is 256 including the NUL;
# unit_name_is_valid() needs a non-empty prefix before the last "." and a known unit type
# after it (src/basic/unit-def.c, unit_type_table).
SYSTEMD_UNIT_TYPES = (
    "service",
    "mount",
    "swap",
    "socket",
    "target",
    "device",
    "automount",
    "timer",
    "path",
    "slice",
    "scope",
)
_UNIT_CHARS = re.compile(r"[A-Za-z0-9:_.\\-]+")
_UNIT_NAME_MAX = 255

# launchd labels are reverse-DNS by convention; launchctl itself accepts more, but a label
# that needs shell quoting or starts with "-" is never a real job of this gateway.
_LAUNCHD_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_LAUNCHD_DOMAIN = re.compile(r"system|gui/[0-9]{1,10}|user/[0-9]{1,10}")

# POSIX portable user names (and what useradd's default NAME_REGEX accepts).
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PATH_MAX = 4096


def systemd_unit_name(name: str) -> str:
    """``name`` if systemd's ``unit_name_is_valid`` accepts it as a plain or instance name.

    Stricter than systemd in one point: a leading ``-`` (valid only for the root mount
    ``-.mount``) is refused, because a service name starting with ``-`` can only be a slip or
    an attempt to pass an option.
    """
    if not name or len(name) > _UNIT_NAME_MAX:
        raise ValueError(f"a systemd unit name has 1 to {_UNIT_NAME_MAX} characters")
    prefix, dot, unit_type = name.rpartition(".")
    if not dot or not prefix:
        raise ValueError(f"unit name {name[:80]!r} has no '<name>.<type>' form")
    if unit_type not in SYSTEMD_UNIT_TYPES:
        raise ValueError(f"unit name {name[:80]!r}: unknown unit type {unit_type[:20]!r}")
    template, at, instance = prefix.partition("@")
    if not template or not _UNIT_CHARS.fullmatch(template) or (at and not instance):
        raise ValueError(f"unit name {name[:80]!r} is not a valid systemd unit name")
    if at and not _UNIT_CHARS.fullmatch(instance):
        raise ValueError(f"unit name {name[:80]!r}: invalid instance {instance[:40]!r}")
    if name.startswith("-"):
        raise ValueError(f"unit name {name[:80]!r} starts with '-': it would be read as an option")
    return name


def launchd_label(label: str) -> str:
    if not _LAUNCHD_LABEL.fullmatch(label):
        raise ValueError(f"launchd label {label[:80]!r} is not a reverse-DNS label (letters, digits, '.', '_', '-')")
    return label


def launchd_domain(domain: str) -> str:
    if not _LAUNCHD_DOMAIN.fullmatch(domain):
        raise ValueError(f"launchd domain {domain[:40]!r} is not system, gui/<uid> or user/<uid>")
    return domain


def account_name(name: str) -> str:
    if not _ACCOUNT.fullmatch(name):
        raise ValueError(f"account name {name[:40]!r} is not a portable user name")
    return name


def _plain_path(path: str, what: str) -> str:
    if not path or len(path) > _PATH_MAX:
        raise ValueError(f"{what} has 1 to {_PATH_MAX} characters")
    if _CONTROL.search(path):
        raise ValueError(f"{what} {path[:80]!r} contains a control character")
    if ".." in path.split("/"):
        raise ValueError(f"{what} {path[:80]!r} contains '..'")
    return path


def absolute_path(path: str) -> str:
    """An absolute path without control characters or ``..`` (cannot be read as an option)."""
    _plain_path(path, "path")
    if not path.startswith("/"):
        raise ValueError(f"path {path[:80]!r} must be absolute")
    return path


def config_path(path: str) -> str:
    """A config file path: absolute, ``~/...`` (the service user's home) or repo-relative."""
    _plain_path(path, "path")
    if path.startswith("-"):
        raise ValueError(f"path {path[:80]!r} starts with '-': it would be read as an option")
    return path
