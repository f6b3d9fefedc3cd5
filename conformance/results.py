"""The result of one check: an outcome, a one-line summary, details and evidence.

Four outcomes, never blurred: the contract holds (passed); the contract is violated
(violated: a failed test); it could not be checked (broken: an error, with its cause); it
does not apply (skipped, with the reason). A fifth, waived, is a violation a current waiver
in the site file covers: reported as skipped with the justification, never escalated.
``blocked_by`` names the root cause a broken result depends on (an unreachable host, a
stopped service), so that one outage is reported once, not once per dependent check.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from conformance.redact import generation as redact_generation
from conformance.redact import redact, redact_data


class Outcome(StrEnum):
    PASSED = "passed"
    VIOLATED = "violated"
    BROKEN = "broken"
    SKIPPED = "skipped"
    WAIVED = "waived"  # violated, under a current waiver: reported as skipped, never escalated


@dataclass(frozen=True)
class Subject:
    """What a result is about, in inventory terms (never in pytest node ids)."""

    check: str
    host: str | None = None
    service: str | None = None
    port: int | None = None
    item: str | None = None  # a file path, health check id, dependency edge ...
    contract: str | None = None
    owner: str = ""
    severity: str = "major"
    layer: str = ""

    @property
    def fingerprint(self) -> str:
        """Stable identity across runs: built from inventory ids only."""
        parts = [self.layer, self.contract or self.check, self.host or "-", self.service or "-"]
        if self.port is not None:
            parts.append(str(self.port))
        if self.item:
            parts.append(self.item)
        return "/".join(parts)


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    summary: str
    details: tuple[str, ...] = ()
    evidence: dict[str, str] = field(default_factory=dict)
    subject: Subject | None = None
    blocked_by: str | None = None
    latency_ms: float | None = None
    # What on the host makes this violation (a listener, an environment variable, a file):
    # violations sharing a cause are one incident in the bulletin (``correlate``).
    causes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Evidence is built from redacted fields: a Result never holds a secret, whatever
        # its author passed in (a Secret renders as ***, known values and shapes are masked).
        object.__setattr__(self, "summary", redact(str(self.summary)))
        object.__setattr__(self, "details", tuple(redact(str(line)) for line in self.details))
        object.__setattr__(self, "evidence", {str(k): redact(str(v)) for k, v in self.evidence.items()})
        if self.blocked_by is not None:
            object.__setattr__(self, "blocked_by", redact(self.blocked_by))

    def about(self, subject: Subject) -> Result:
        return replace(self, subject=subject)

    def caused_by(self, *causes: str) -> Result:
        return replace(self, causes=tuple(sorted({*self.causes, *causes})))

    def render(self) -> str:
        """The assertion text an owner reads: what is wrong, then the evidence."""
        lines = [self.summary, *(f"  {line}" for line in self.details)]
        if self.blocked_by:
            lines.append(f"  blocked by: {self.blocked_by}")
        for name, value in self.evidence.items():
            value_lines = value.rstrip().splitlines() or [""]
            lines.append(f"  {name}: {value_lines[0]}")
            lines.extend(f"    {line}" for line in value_lines[1:])
        return redact("\n".join(lines))

    def to_json(self) -> str:
        """The result as JSON, redacted. Several sinks ask for it per check (the report's
        properties, Allure's attachment); it is made once per redaction generation."""
        cached: tuple[int, str] | None = self.__dict__.get("_json")
        current = redact_generation()
        if cached is not None and cached[0] == current:
            return cached[1]
        text = self._make_json()
        object.__setattr__(self, "_json", (current, text))
        return text

    def _make_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["outcome"] = self.outcome.value
        data["fingerprint"] = self.subject.fingerprint if self.subject else None
        # Redacted as data, then serialized: redacting the JSON text would miss values that
        # json.dumps escaped (quotes, backslashes, tabs, non-ASCII).
        return json.dumps(redact_data(data), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Result:
        data = json.loads(text)
        data.pop("fingerprint", None)
        subject = Subject(**data.pop("subject")) if data.get("subject") else None
        return cls(
            outcome=Outcome(data.pop("outcome")),
            subject=subject,
            details=tuple(data.pop("details", ())),
            causes=tuple(data.pop("causes", ())),
            **data,
        )


# The causes' spelling, shared by every contract that can find them.
def listener_cause(host: str, port: int) -> str:
    return f"listener {host}:{port}"


def env_cause(host: str, service: str, variable: str) -> str:
    return f"environment {host}/{service}:{variable}"


def unit_cause(host: str, unit: str) -> str:
    return f"unit {host}:{unit}"


def handle_cause(service: str, handle: str) -> str:
    """A LiteLLM handle (model name) of one LiteLLM service: where it goes is one router entry."""
    return f"handle {service}:{handle}"


def access_cause(host: str) -> str:
    """The monitor's sudo privilege on a host: every fact it refused is this one cause."""
    return f"access {host}:sudo"


def file_cause(path: str) -> str:
    """A file by its absolute path. Not by host: a parse error met while reading another host's
    file (a route to the Studio read from the Mini) does not know the host, only the path."""
    return f"file {path}"


def passed(summary: str, *details: str, **evidence: str) -> Result:
    return Result(Outcome.PASSED, summary, details, evidence)


def violated(summary: str, *details: str, **evidence: str) -> Result:
    return Result(Outcome.VIOLATED, summary, details, evidence)


def broken(summary: str, *details: str, blocked_by: str | None = None, **evidence: str) -> Result:
    return Result(Outcome.BROKEN, summary, details, evidence, blocked_by=blocked_by)


def skipped(summary: str) -> Result:
    return Result(Outcome.SKIPPED, summary)
