"""Each declared config and env file exists and parses in its declared format."""

from __future__ import annotations

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from conformance.contracts.base import Case, ContractSpec, Scope
from conformance.errors import ParseError
from conformance.facts import yaml_text
from conformance.facts.discovery import located_by
from conformance.facts.model import FileFact
from conformance.facts.parsers import parse_env_file
from conformance.facts.parsers.errors import describe_yaml_error
from conformance.paths import file_key
from conformance.results import Result, access_cause, broken, file_cause, passed, violated


def _parse(fact: FileFact, path: str, file_format: str) -> None:
    content = fact.content or ""
    if file_format == "yaml":
        yaml_text.safe_load(content)
    elif file_format == "env":
        parse_env_file(content, path)
    elif file_format == "requirements":
        for number, line in enumerate(content.splitlines(), 1):
            text = line.split("#", 1)[0].strip()
            if text and not text.startswith("-"):
                try:
                    Requirement(text)
                except InvalidRequirement as exc:
                    raise ParseError(path, str(exc), line_no=number, line=line) from None


def judge_file(declared: str, file_format: str, fact: FileFact | None, located: str | None = None) -> Result:
    """``located``: where a relative or ``~`` path's base came from (the site or the host)."""
    where = {"located by": located} if located else {}
    if fact is None:
        return broken(f"{declared} was not gathered")
    if fact.path is None:
        return broken(f"cannot locate {declared}", fact.error or "")
    if not fact.exists:
        return violated(f"{fact.path} does not exist", **{"error": fact.error or ""}, **where)
    if fact.content is None:
        unread = broken(f"cannot read {fact.path}", fact.error or "", **where)
        # sudo's refusal is the monitor's missing privilege on that host: one cause for all it stops
        return unread.caused_by(access_cause(fact.refused_on)) if fact.refused_on else unread
    try:
        _parse(fact, fact.path, file_format)
    except ParseError as exc:
        # A secret file's offending line may hold a key: name the line, never show it.
        return violated(
            f"{fact.path} does not parse as {file_format}", exc.safe_text() if fact.secret else str(exc), **where
        ).caused_by(file_cause(fact.path))
    except yaml.YAMLError as exc:
        # Position and reason only: PyYAML's message quotes the line, which may hold an api_key.
        return violated(
            f"{fact.path} does not parse as {file_format}", describe_yaml_error(fact.path, exc), **where
        ).caused_by(file_cause(fact.path))
    shown = "(secret: content not shown)" if fact.secret else f"{len(fact.content.splitlines())} lines"
    return passed(f"{fact.path} exists and parses as {file_format}", **{"file": shown}, **where)


def judge(case: Case) -> Result:
    assert case.file is not None and case.service is not None
    key = file_key(case.service.name, case.file.path)
    facts = case.facts()
    located = located_by(case.inventory, case.service, facts, case.file.path)
    return judge_file(case.file.path, case.file.format, facts.files.get(key), located)


CONTRACT = ContractSpec(
    id="file-parses",
    suite="hosts",
    scope=Scope.FILE,
    judge=judge,
    statement="Each declared config and env file exists and parses.",
    rule="Resolved on the host (`~/` = the service user's home, relative = the repo root; each from the site file, "
    "else from what the service's units name); YAML, env-file "
    "or requirements syntax. A secret file's text is never shown, not even the line that fails.",
)
