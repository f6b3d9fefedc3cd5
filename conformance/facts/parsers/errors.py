"""The one error type every fact parser raises (defined in the harness's exception tree)."""

from __future__ import annotations

from conformance.errors import ParseError

__all__ = ["ParseError"]
