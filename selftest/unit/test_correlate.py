"""Violations that share a cause are one incident: one entry listing every contract it
breaks, under the most severe one's owner and severity, resolved when all of them pass."""

from __future__ import annotations

from pathlib import Path

from conformance.bulletin import events
from conformance.bulletin.store import open_problems, read_entries, update_bulletin
from conformance.results import Outcome, Result, Subject, listener_cause


def subject(check: str, severity: str, owner: str, contract: str | None = None, **where: object) -> Subject:
    fields: dict[str, object] = {"host": "mini", "service": "optillm-proxy", "port": 4020, **where}
    return Subject(check=check, contract=contract, severity=severity, owner=owner, layer="gateway", **fields)  # type: ignore[arg-type]


BOUND = subject("port-bound", "major", "optillm-proxy")
EXPOSED = subject("optillm-never-exposed", "critical", "optillm-proxy", "optillm-never-exposed")
CLIENTS = subject(
    "clients-call-litellm-only",
    "major",
    "gateway-agent",
    "clients-call-litellm-only",
    service="litellm-orch",
    port=None,
)
OTHER = subject("port-bound", "major", "litellm-orch", service="litellm-orch", port=4000)
CAUSE = listener_cause("mini", 4020)


def failing(subj: Subject, *causes: str) -> Result:
    return Result(Outcome.VIOLATED, f"{subj.check} broken", subject=subj).caused_by(*causes)


def ok(subj: Subject) -> Result:
    return Result(Outcome.PASSED, "fine", subject=subj)


def test_one_cause_opens_one_entry_listing_every_contract(tmp_path: Path) -> None:
    path = tmp_path / "bulletin.jsonl"
    update = update_bulletin(
        path, [failing(BOUND, CAUSE), failing(EXPOSED, CAUSE), failing(CLIENTS, CAUSE), failing(OTHER)], "r1", 24
    )
    assert sorted(update.opened) == sorted([EXPOSED.fingerprint, OTHER.fingerprint])
    incident = next(entry for entry in read_entries(path) if entry["fingerprint"] == EXPOSED.fingerprint)
    # the most severe contract leads: its owner and severity
    assert (incident["severity"], incident["owner"]) == ("critical", "optillm-proxy")
    assert incident[events.CONTRACTS] == ["clients-call-litellm-only", "optillm-never-exposed", "port-bound"]
    assert incident[events.CAUSES] == [CAUSE]
    assert "also breaks clients-call-litellm-only, port-bound" in incident["summary"]


def test_the_incident_stays_open_while_any_member_fails_and_resolves_when_all_pass(tmp_path: Path) -> None:
    path = tmp_path / "bulletin.jsonl"
    update_bulletin(path, [failing(BOUND, CAUSE), failing(EXPOSED, CAUSE), failing(CLIENTS, CAUSE)], "r1", 24)
    # the lead passes (say, the LAN probe was refused this time); the others still fail
    second = update_bulletin(path, [failing(BOUND, CAUSE), ok(EXPOSED), failing(CLIENTS, CAUSE)], "r2", 24)
    assert (second.opened, second.resolved, second.still_open) == ([], [], 1)
    assert list(open_problems(read_entries(path))) == [EXPOSED.fingerprint]
    third = update_bulletin(path, [ok(BOUND), ok(EXPOSED), ok(CLIENTS)], "r3", 24)
    assert third.resolved == [EXPOSED.fingerprint] and third.still_open == 0
    assert [entry["event"] for entry in read_entries(path)] == [events.OPENED, events.RESOLVED]


def test_violations_without_a_shared_cause_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "bulletin.jsonl"
    update = update_bulletin(
        path, [failing(BOUND, CAUSE), failing(EXPOSED, listener_cause("mini", 4021)), failing(CLIENTS)], "r1", 24
    )
    assert len(update.opened) == 3


def test_a_broken_check_joins_only_when_it_names_the_cause_itself(tmp_path: Path) -> None:
    health = subject("health", "major", "optillm-proxy", item="optillm-proxy-health")
    cannot_read = Result(Outcome.BROKEN, "could not read the sockets", subject=BOUND)
    refused = Result(Outcome.BROKEN, "/health did not answer: refused", subject=health).caused_by(CAUSE)
    update = update_bulletin(tmp_path / "a.jsonl", [cannot_read, refused, failing(EXPOSED, CAUSE)], "r1", 24)
    assert sorted(update.opened) == sorted([BOUND.fingerprint, EXPOSED.fingerprint])
    # two checks that could not tell, sharing a cause, are not an incident of violations
    alone = update_bulletin(tmp_path / "b.jsonl", [refused, refused.about(BOUND)], "r1", 24)
    assert len(alone.opened) == 2


def test_an_unparsable_file_keeps_its_name_across_processes() -> None:
    import pickle

    from conformance.errors import FactUnavailable

    shipped = pickle.dumps(FactUnavailable("EnvironmentFile /x/balanced.env does not parse", file="/x/b"))
    error = pickle.loads(shipped)  # noqa: S301 - our own bytes, as xdist ships them between processes
    assert (str(error), error.file) == ("EnvironmentFile /x/balanced.env does not parse", "/x/b")


def test_checks_sudo_refused_on_one_host_are_one_incident(tmp_path: Path) -> None:
    """The monitor's sudo rule removed: every check needing it could not tell, for one cause."""
    from conformance.results import access_cause

    refused = [
        Result(Outcome.BROKEN, "could not check: sudo refused to read it", subject=subj).caused_by(access_cause("mini"))
        for subj in (BOUND, EXPOSED, CLIENTS, OTHER)
    ]
    studio = subject("port-bound", "major", "optillm-local", host="studio", service="optillm-local", port=4040)
    elsewhere = Result(Outcome.BROKEN, "could not check: sudo refused", subject=studio)
    update = update_bulletin(
        tmp_path / "bulletin.jsonl", [*refused, elsewhere.caused_by(access_cause("studio"))], "r1", 24
    )
    assert len(update.opened) == 2, "one incident per host whose sudo refused"
    incident = next(entry for entry in read_entries(tmp_path / "bulletin.jsonl") if entry.get(events.CAUSES))
    assert incident[events.CAUSES] == [access_cause("mini")]
    # No violation among them: a host-wide check leads (the layer's owner runs the monitor)
    listeners = subject("no-unexpected-listeners", "major", "gateway-agent", service=None, port=None)
    with_host = update_bulletin(
        tmp_path / "host.jsonl",
        [*refused, refused[0].about(listeners).caused_by(access_cause("mini"))],
        "r1",
        24,
    )
    assert with_host.opened == [listeners.fingerprint]


def test_a_refusal_keeps_its_host_across_processes() -> None:
    import pickle

    from conformance.errors import FactUnavailable

    error = pickle.loads(pickle.dumps(FactUnavailable("cannot read /etc/x: sudo refused", refused_on="mini")))  # noqa: S301
    assert error.refused_on == "mini" and error.file is None
