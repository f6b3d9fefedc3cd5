"""The one error type every fact parser raises (defined in the harness's exception tree), and a
YAML error rendering that never quotes the offending line."""

from __future__ import annotations

from conformance.errors import ParseError

__all__ = ["ParseError", "describe_yaml_error"]


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
