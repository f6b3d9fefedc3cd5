"""Every exception the harness raises on purpose, in one tree.

    ConformanceError                  the root: anything the harness means to raise
    ├── InventoryError                the inventory cannot be used (exit 4, nothing runs)
    ├── RegistryError                 inventory and contract registry disagree (exit 4)
    └── CannotCheck                   a check could not be made: a broken Result, with its cause
        ├── HostUnavailable           the host as a whole: unreachable, timeout, auth, host key
        ├── FactUnavailable           one fact a check needs could not be gathered or derived
        ├── ParseError                command output or file content of an unexpected shape
        ├── CommandRefused            a command outside the read-only allow-list (never sent)
        ├── CommandTimeout            a command on a host did not finish within its deadline
        ├── KeyMaterialError          host key material (pinned key, known_hosts) is unusable
        └── SecretsFileRefused        the site's secrets file is not the user's own 0600 file

The outcome policy (``conformance.outcomes``) turns a ``CannotCheck`` into a broken Result
that names its cause, and ``HostUnavailable`` into one root cause that the host's other
checks are blocked by. Any *other* exception inside a check is a defect of the harness; it
still becomes a broken Result ("internal error in check X"), counted in the summary line
and sent to the bulletin, never a traceback that bypasses the results pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConformanceError(Exception):
    """Root of every exception the harness raises on purpose."""


class InventoryError(ConformanceError):
    """The inventory cannot be used; ``issues`` lists every problem found (file:line: field: why)."""

    def __init__(self, issues: Sequence[object]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"inventory has {len(self.issues)} problem(s):\n{lines}")


class RegistryError(ConformanceError):
    """The inventory names a check the registry lacks, or the registry has one no contract uses."""


class CannotCheck(ConformanceError):
    """A check could not be made; the message is the cause an owner reads."""


class HostUnavailable(CannotCheck):
    """The host could not be checked at all; ``cause`` is the one reason, for every check."""

    def __init__(self, host: str, kind: str, cause: str) -> None:
        super().__init__(f"{host}: {cause}")
        self.host = host
        self.kind = kind  # unreachable | timeout | host-key | auth | misconfigured
        self.cause = cause

    def __reduce__(self) -> tuple[object, ...]:
        return (HostUnavailable, (self.host, self.kind, self.cause))


class FactUnavailable(CannotCheck):
    """A fact a check needs could not be gathered; the message says why.

    ``file``: the file whose content is the reason (one that does not parse), so the outcome
    policy can name it as the cause and the bulletin can join this to that file's own check.
    ``refused_on``: the host whose sudo refused the monitor the command that would have read
    the fact: one missing privilege, one cause, however many checks need it.
    """

    def __init__(self, message: str, *, file: str | None = None, refused_on: str | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.refused_on = refused_on

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_fact_unavailable, (str(self), self.file, self.refused_on))


def _rebuild_fact_unavailable(message: str, file: str | None, refused_on: str | None = None) -> FactUnavailable:
    return FactUnavailable(message, file=file, refused_on=refused_on)


class CommandRefused(CannotCheck):
    """A command that is not on the read-only allow-list; it is never sent."""


class CommandTimeout(CannotCheck):
    """A command on a host did not finish within its deadline."""


class KeyMaterialError(CannotCheck):
    """Host key material is unusable: a pinned key without a body, an unknown key type,
    a malformed known_hosts line. The host is then never connected to."""


class SecretsFileRefused(CannotCheck):
    """The site's secrets file is not used: group- or world-accessible, owned by another user,
    unreadable or malformed. The message names the file and the fix, never its content."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"secrets file {path} refused: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (SecretsFileRefused, (self.path, self.reason))


class ParseError(CannotCheck, ValueError):
    """Command output or file content that does not have the expected shape.

    A parser raises this instead of guessing: a wrong fact (a socket reported on the wrong
    address, an environment variable silently dropped) is worse than a loud failure that names
    the command, the line and the reason, so that the report points at the evidence.
    ``line`` is kept for the parser's own tests; ``safe_text()`` never includes it, for files
    that may hold secrets.
    """

    def __init__(
        self,
        source: str,
        reason: str,
        *,
        line_no: int | None = None,
        line: str | None = None,
    ) -> None:
        self.source = source
        self.line_no = line_no
        self.line = line
        self.reason = reason
        super().__init__(self._render())

    def _where(self) -> str:
        return self.source if self.line_no is None else f"{self.source}, line {self.line_no}"

    def _render(self) -> str:
        text = f"{self._where()}: {self.reason}"
        if self.line is not None:
            text += f" in {self.line!r}"
        return text

    def safe_text(self) -> str:
        """The error without the offending line's text (which may hold a secret)."""
        return f"{self._where()}: {self.reason}"

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the keyword-only arguments across pickling (pytest-xdist ships exceptions).
        return (_rebuild_parse_error, (self.source, self.reason, self.line_no, self.line))


def _rebuild_parse_error(source: str, reason: str, line_no: int | None, line: str | None) -> ParseError:
    return ParseError(source, reason, line_no=line_no, line=line)
