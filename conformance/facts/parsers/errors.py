"""The one error type every fact parser raises on output it cannot read with certainty."""

from __future__ import annotations


class ParseError(ValueError):
    """Command output or file content that does not have the expected shape.

    A parser raises this instead of guessing: a wrong fact (a socket reported on the wrong
    address, an environment variable silently dropped) is worse than a loud failure that names
    the command, the line and the reason, so that the report points at the evidence.
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

    def _render(self) -> str:
        where = self.source if self.line_no is None else f"{self.source}, line {self.line_no}"
        text = f"{where}: {self.reason}"
        if self.line is not None:
            text += f" in {self.line!r}"
        return text

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the keyword-only arguments across pickling (pytest-xdist ships exceptions).
        return (_rebuild, (self.source, self.reason, self.line_no, self.line))


def _rebuild(source: str, reason: str, line_no: int | None, line: str | None) -> ParseError:
    return ParseError(source, reason, line_no=line_no, line=line)


def describe_yaml_error(source: str, exc: Exception) -> str:
    """Where and why YAML failed to parse, without PyYAML's snippet of the offending line.

    ``str()`` of a PyYAML MarkedYAMLError quotes the source line around the problem, and a
    config file's lines hold ``api_key``s; this keeps the position and the reason only.
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    if mark is not None:
        return f"{source}, line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"{source}: {problem}"
