"""The bulletin: an append-only JSON Lines file of escalations, with state across runs.

An entry is written when a check's state changes: ``opened`` when it starts failing (or
cannot be checked at its root cause), ``resolved`` when it passes again, ``reminder`` after
the inventory's reminder interval while it stays open, ``acknowledged`` when an owner takes
it on (no reminders while that lasts; a new ``opened`` entry when it expires or the problem
changes), ``waived`` when a current waiver covers it, ``flapping`` once for a check that
keeps changing state. The vocabulary is :mod:`conformance.bulletin.events`. Which problems
are open is derived from the file itself (or the database's table of the same events), so
runs need no server. Writes happen on the xdist controller only,
under a file lock, re-reading the state inside the lock, so two runs at once lose nothing.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock

from conformance.bulletin import events
from conformance.bulletin.correlate import Incident, correlate
from conformance.bulletin.flapping import FlapPolicy, fold_history, percent_state_change
from conformance.redact import redact
from conformance.results import Outcome, Result

LOCK_TIMEOUT_SECONDS = 30.0
TORN_SUFFIX = ".torn"
STAMP = "%Y-%m-%dT%H:%M:%SZ"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)


def format_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP)


class BulletinError(OSError):
    """The bulletin could not be read or written; the run must not pass silently."""


@dataclass
class OpenProblem:
    fingerprint: str
    opened: dict[str, Any]
    last: dict[str, Any]
    ack: dict[str, Any] | None = None
    flapping: bool = False

    def ack_active(self, now: datetime) -> bool:
        """Acknowledged, and not expired (no ``until``: until it resolves or changes)."""
        if self.ack is None:
            return False
        until = self.ack.get(events.ACK_UNTIL)
        try:
            return until is None or parse_stamp(str(until)) > now
        except ValueError:
            return False

    @property
    def evidence_class(self) -> str:
        return str(self.opened.get(events.EVIDENCE_CLASS) or entry_evidence_class(self.opened))


# Parts of a result's text that change from run to run without the problem changing.
_VOLATILE = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?\s*(ms|s|seconds?|min)\b"), "<duration>"),
    (re.compile(r"\bpid[= ]\d+"), "pid=<pid>"),
    (re.compile(r"\[\d+\]"), "[<pid>]"),
    (re.compile(r"\b[0-9a-f]{12,}\b"), "<hex>"),
)


def evidence_class(outcome: str, summary: str, details: Iterable[str]) -> str:
    """What kind of failure this is, stable across runs of the same failure.

    The outcome, the (redacted) summary and details, with durations, times, process ids and
    hashes masked: "bound to 0.0.0.0:4020" and "bound to 198.51.100.10:4020" are two
    classes, a second timeout with another latency is the same one.
    """
    text = "\n".join([outcome, redact(summary), *(redact(line) for line in details)])
    for pattern, mask in _VOLATILE:
        text = pattern.sub(mask, text)
    return text


def entry_evidence_class(entry: dict[str, Any]) -> str:
    return evidence_class(str(entry.get("outcome", "")), str(entry.get("summary", "")), entry.get("details") or ())


def read_entries(path: Path, bookkeeping: bool = False) -> list[dict[str, Any]]:
    """Every entry of the bulletin.

    A last line without its newline is a record whose append was cut short (a full disk, a
    crash): it is not an entry, and it is skipped here; the next run moves it aside
    (``repair_torn_tail``). A broken line *before* the last one is real damage and an error.
    ``bookkeeping``: also the ``state`` and ``run`` events thresholds and flapping fold.
    """
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    lines.pop()  # the text after the last newline: "" when the file ends cleanly, else torn
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON line: {exc}") from None
        if (
            isinstance(entry, dict)
            and "fingerprint" in entry
            and "event" in entry
            and (bookkeeping or entry["event"] not in events.BOOKKEEPING)
        ):
            entries.append(entry)
    return entries


def escalations(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries an owner reads (bookkeeping left out)."""
    return [entry for entry in entries if entry.get("event") not in events.BOOKKEEPING]


def open_problems(entries: Iterable[dict[str, Any]]) -> dict[str, OpenProblem]:
    """The open problems, folded from the entries in order; unknown events are ignored."""
    state: dict[str, OpenProblem] = {}
    for entry in entries:
        fingerprint = entry["fingerprint"]
        event = entry["event"]
        if event == events.OPENED:
            state[fingerprint] = OpenProblem(fingerprint, entry, entry)
        elif event == events.REMINDER and fingerprint in state:
            state[fingerprint].last = entry
        elif event == events.FLAPPING:
            if fingerprint in state:
                state[fingerprint].flapping = True
                state[fingerprint].last = entry
            else:
                state[fingerprint] = OpenProblem(fingerprint, entry, entry, flapping=True)
        elif event == events.ACKNOWLEDGED and fingerprint in state:
            state[fingerprint].ack = entry
        elif event in (events.RESOLVED, events.WAIVED):
            state.pop(fingerprint, None)
    return state


def _entry(
    event: str, result: Result, run_id: str, blocked: list[str], fingerprint: str, now: datetime
) -> dict[str, Any]:
    subject = result.subject
    assert subject is not None
    summary = redact(result.summary)
    details = [redact(line) for line in result.details]
    return {
        "time": format_stamp(now),
        "run": run_id,
        "event": event,
        "fingerprint": fingerprint,
        "layer": subject.layer,
        "host": subject.host,
        "service": subject.service,
        "contract": subject.contract or subject.check,
        "severity": subject.severity,
        "owner": subject.owner,
        "outcome": result.outcome.value,
        "summary": summary,
        "details": details,
        "evidence": {key: redact(value)[:2000] for key, value in result.evidence.items()},
        "blocked": sorted(blocked),
        events.EVIDENCE_CLASS: evidence_class(result.outcome.value, summary, details),
    }


@dataclass
class BulletinUpdate:
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)  # an acknowledgement expired, or the problem changed
    waived: list[str] = field(default_factory=list)  # closed: a current waiver covers them
    flapping: list[str] = field(default_factory=list)  # started flapping in this run
    pending: list[str] = field(default_factory=list)  # failing, fewer runs in a row than the threshold
    still_open: int = 0
    acknowledged: int = 0  # of still_open, how many are under an active acknowledgement
    # The entries this update appended, in order.
    entries: list[dict[str, Any]] = field(default_factory=list)


def update_bulletin(
    path: Path,
    results: list[Result],
    run_id: str,
    reminder_after_hours: float | None,
    complete_run: bool = False,
    clock: Clock = utc_now,
    policy: FlapPolicy | None = None,
) -> BulletinUpdate:
    """Fold this run's results into the bulletin file; one entry per root cause.

    ``complete_run``: this run checked the whole inventory (nothing deselected), so an open
    entry whose check did not run at all no longer exists (the inventory changed): it is
    resolved as retired rather than left open for ever. ``policy``: failure thresholds and
    flap detection (default: open at the first failure, Nagios's flap thresholds).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_for(path):
        repair_torn_tail(path)
        history = read_entries(path, bookkeeping=True)
        new_entries, update = plan_update(
            history, results, run_id, reminder_after_hours, complete_run, now=clock(), policy=policy
        )
        if new_entries:
            append_records(path, [json.dumps(entry, sort_keys=True) for entry in new_entries])
    return update


def _bookkeeping(event: str, fingerprint: str, run_id: str, now: datetime, layer: str) -> dict[str, Any]:
    return {"time": format_stamp(now), "run": run_id, "event": event, "fingerprint": fingerprint, "layer": layer}


def _closing(problem: OpenProblem, event: str, why: str, run_id: str, now: datetime) -> dict[str, Any]:
    entry = dict(problem.opened)
    for key in (events.REOPENED, events.ACK_BY, events.ACK_REASON, events.ACK_UNTIL):
        entry.pop(key, None)
    entry.update(
        {
            "time": format_stamp(now),
            "run": run_id,
            "event": event,
            "outcome": "passed",
            "summary": f"{why}: {problem.opened.get('summary', '')}"[:500],
            "evidence": {},
            "details": [],
            "blocked": [],
        }
    )
    return entry


def _incident(entry: dict[str, Any], incidents: dict[str, Incident]) -> dict[str, Any]:
    """An entry of an incident: its lead's fields, and every contract it breaks."""
    incident = incidents.get(entry["fingerprint"])
    if incident is None:
        return entry
    others = [contract for contract in incident.contracts if contract != entry["contract"]]
    entry[events.CONTRACTS] = incident.contracts
    entry[events.CORRELATED] = incident.members
    entry[events.CAUSES] = incident.causes
    if others:
        # checks that could not tell are stopped by the cause, not broken by it
        verb = "also breaks" if incident.result.outcome is Outcome.VIOLATED else "also stops the checks of"
        entry["summary"] = f"{entry['summary']} (one cause, {verb} {', '.join(others)})"[:500]
    return entry


def plan_update(
    entries: list[dict[str, Any]],
    results: list[Result],
    run_id: str,
    reminder_after_hours: float | None,
    complete_run: bool = False,
    *,
    now: datetime | None = None,
    policy: FlapPolicy | None = None,
    scope: Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], BulletinUpdate]:
    """The entries this run appends, given every entry before it, bookkeeping included (no I/O).

    The caller holds whatever makes ``entries`` current until the new ones are written (the
    file lock, or a database transaction), so that two runs never open one problem twice.
    The file path and the database path both come here, so they decide alike.
    """
    now = now or utc_now()
    policy = policy or FlapPolicy()
    state = open_problems(entries)
    roots: dict[str, Result] = {}
    blocked: dict[str, list[str]] = {}
    passed: set[str] = set()
    waived: set[str] = set()
    for result in results:
        if result.subject is None:
            continue
        fingerprint = result.subject.fingerprint
        if result.outcome is Outcome.PASSED:
            passed.add(fingerprint)
        elif result.outcome is Outcome.WAIVED:
            waived.add(fingerprint)
        elif result.outcome is Outcome.VIOLATED or (result.outcome is Outcome.BROKEN and not result.blocked_by):
            roots.setdefault(fingerprint, result)
        elif result.outcome is Outcome.BROKEN and result.blocked_by:
            blocked.setdefault(result.blocked_by, []).append(fingerprint)
    # A blocker whose own check did not run this time (deselected) still gets its entry,
    # described by the first check it blocked.
    for blocker, dependents in blocked.items():
        if blocker not in roots:
            sample = next(r for r in results if r.subject and r.subject.fingerprint == dependents[0])
            roots[blocker] = replace(sample, blocked_by=None)
    layer = next((r.subject.layer for r in results if r.subject is not None), "")
    update = BulletinUpdate()
    new_entries: list[dict[str, Any]] = []

    # The history: which checks changed state in this run, and that a run ended.
    before = fold_history(entries, policy.window)
    for fingerprint in sorted(set(roots) | passed | waived):
        failing = fingerprint in roots
        if failing != (before[fingerprint].failing if fingerprint in before else False):
            entry = _bookkeeping(events.STATE, fingerprint, run_id, now, layer)
            entry[events.FAILING] = failing
            new_entries.append(entry)
    run_entry = _bookkeeping(events.RUN, events.RUN_FINGERPRINT, run_id, now, layer)
    if scope is not None:  # ``scope``: this run checked only these fingerprints (a monitor poll)
        run_entry[events.RUN_SCOPE] = sorted(scope)
    new_entries.append(run_entry)
    history = fold_history([*entries, *new_entries], policy.window)

    # A root cause found now whose dependent already leads an open entry goes on under that
    # entry: another runner saw the symptom first (the monitor's poll found a health endpoint
    # refused before the suites found its unit down), and one outage stays one entry.
    for blocker in sorted(roots):
        if blocker in state:
            continue
        adopted = next((dependent for dependent in sorted(blocked.get(blocker, [])) if dependent in state), None)
        if adopted is None or adopted in roots:
            continue
        roots[adopted] = roots.pop(blocker)
        blocked[adopted] = sorted({*(d for d in blocked.pop(blocker, []) if d != adopted), blocker})

    # Violations sharing a cause are one incident, kept under its lead's fingerprint.
    incidents = {incident.lead: incident for incident in correlate(roots, state)}
    for lead, incident in incidents.items():
        for member in incident.members:
            roots.pop(member, None)
        roots[lead] = incident.result

    # Flapping (Nagios): one entry when it starts, resolved when it settles.
    latest = {r.subject.fingerprint: r for r in results if r.subject is not None}
    for fingerprint in sorted(history):
        percent = percent_state_change(list(history[fingerprint].states), policy.window)
        problem = state.get(fingerprint)
        if problem is not None and problem.flapping:
            if percent > policy.low_percent:
                continue  # still flapping, or undecided: it keeps what it was
            entry = _closing(
                problem, events.RESOLVED, f"settled (no longer flapping, {percent:.0f}% state change)", run_id, now
            )
            entry[events.PERCENT_STATE_CHANGE] = round(percent, 1)
            new_entries.append(entry)
            update.resolved.append(fingerprint)
            del state[fingerprint]
        elif percent >= policy.high_percent and fingerprint in latest:
            sample = roots.get(fingerprint) or latest[fingerprint]
            entry = _entry(events.FLAPPING, sample, run_id, blocked.get(fingerprint, []), fingerprint, now)
            entry["summary"] = f"flapping ({percent:.0f}% state change over the last runs): {entry['summary']}"[:500]
            entry[events.PERCENT_STATE_CHANGE] = round(percent, 1)
            new_entries.append(entry)
            update.flapping.append(fingerprint)
            state[fingerprint] = OpenProblem(fingerprint, entry, entry, flapping=True)

    for fingerprint, result in sorted(roots.items()):
        dependents = blocked.get(fingerprint, [])
        problem = state.get(fingerprint)
        if problem is not None and problem.flapping:
            continue  # one flapping entry until it settles
        if problem is None:
            if history[fingerprint].streak < policy.open_after(result.subject):
                update.pending.append(fingerprint)
                continue
            new_entries.append(
                _incident(_entry(events.OPENED, result, run_id, dependents, fingerprint, now), incidents)
            )
            update.opened.append(fingerprint)
        elif problem.ack is not None:
            entry = _incident(_entry(events.OPENED, result, run_id, dependents, fingerprint, now), incidents)
            acked_class = problem.ack.get(events.EVIDENCE_CLASS) or problem.evidence_class
            if not problem.ack_active(now):
                why = f"the acknowledgement by {problem.ack.get(events.ACK_BY)} expired"
            elif entry[events.EVIDENCE_CLASS] != acked_class:
                why = "the problem changed since it was acknowledged"
            else:
                continue  # acknowledged: no reminders while it lasts
            entry["summary"] = f"re-opened ({why}): {entry['summary']}"[:500]
            entry[events.REOPENED] = why
            new_entries.append(entry)
            update.reopened.append(fingerprint)
        elif reminder_after_hours is not None and _hours_between(problem.last["time"], now) >= reminder_after_hours:
            new_entries.append(
                _incident(_entry(events.REMINDER, result, run_id, dependents, fingerprint, now), incidents)
            )
            update.reminded.append(fingerprint)

    seen = set(latest) | set(roots)
    retired = sorted(set(state) - seen) if complete_run else []
    for fingerprint in sorted(passed) + sorted(waived) + retired:
        problem = state.get(fingerprint)
        if problem is None or fingerprint in roots:
            continue
        if fingerprint in retired:
            entry = _closing(problem, events.RESOLVED, "retired (the check is no longer in the inventory)", run_id, now)
        elif problem.flapping:
            continue  # a flapping check resolves when it settles, not at its next pass
        elif fingerprint in waived:
            entry = _closing(problem, events.WAIVED, "waived (a waiver in the site file covers it)", run_id, now)
        else:
            entry = _closing(problem, events.RESOLVED, "resolved", run_id, now)
        new_entries.append(entry)
        (update.waived if entry["event"] == events.WAIVED else update.resolved).append(fingerprint)
    after = open_problems([*entries, *new_entries])
    update.still_open = len(after)
    update.acknowledged = sum(1 for problem in after.values() if problem.ack_active(now))
    update.entries = new_entries
    return new_entries, update


def _lock_for(path: Path) -> FileLock:
    return FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_SECONDS)


# The one call that puts bytes in the bulletin; a seam so tests can inject ENOSPC/EIO.
_write = os.write


def append_records(path: Path, records: list[str]) -> None:
    """Append whole lines, all or nothing, durably. Call with the bulletin lock held.

    The records go out as one buffer in one ``write`` (looping only on a short write), then
    ``fsync``. If any write fails the file is cut back to its length before the append, so a
    failed run leaves no partial record; if even that fails, the next run's
    ``repair_torn_tail`` moves the fragment aside.
    """
    data = "".join(record + "\n" for record in records).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size_before = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(data):
                count = _write(fd, data[written:])
                if count <= 0:
                    raise OSError(errno.EIO, "write made no progress")
                written += count
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size_before)
                os.fsync(fd)
            except OSError:
                pass  # the next run repairs the torn tail
            raise BulletinError(exc.errno or errno.EIO, f"cannot append to {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def repair_torn_tail(path: Path) -> str | None:
    """Detect a last line cut short by a failed append and move it to ``<path>.torn``.

    Returns the fragment's description, or None when the file ends with a complete line. A
    complete JSON record that only lost its newline is kept (the newline is added). The
    fragment is appended to the sidecar, never deleted: it is evidence of what happened.
    Call with the bulletin lock held.
    """
    if not path.exists():
        return None
    with path.open("rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return None
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        try:
            json.loads(tail)
        except ValueError:
            pass
        else:
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
            return None
        torn = Path(str(path) + TORN_SUFFIX)
        with torn.open("ab") as sidecar:
            sidecar.write(tail + b"\n")
            sidecar.flush()
            os.fsync(sidecar.fileno())
        handle.truncate(cut)
        handle.flush()
        os.fsync(handle.fileno())
    return f"{len(tail)} bytes of a torn record moved to {torn}"


def _hours_between(stamp: str, now: datetime) -> float:
    try:
        then = parse_stamp(stamp)
    except ValueError:
        return 0.0
    return (now - then).total_seconds() / 3600


class AcknowledgeError(ValueError):
    """The acknowledgement cannot be recorded (unknown fingerprint, bad expiry ...)."""


_RELATIVE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_until(text: str, now: datetime) -> datetime:
    """``--until``: a duration from now (90m, 8h, 3d, 2w) or an ISO date or time (UTC if no zone)."""
    text = text.strip()
    if match := _RELATIVE_RE.match(text):
        return now + timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AcknowledgeError(
            f"--until {text!r} is neither a duration (90m, 8h, 3d, 2w) nor an ISO date/time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def plan_acknowledgement(
    entries: list[dict[str, Any]], fingerprint: str, by: str, reason: str, until: str | None, now: datetime
) -> dict[str, Any]:
    """The ``acknowledged`` event for one open problem (no I/O); both stores write it as is."""
    if not by.strip() or not reason.strip():
        raise AcknowledgeError("an acknowledgement needs --by OWNER and --reason TEXT")
    expiry = parse_until(until, now) if until else None
    if expiry is not None and expiry <= now:
        raise AcknowledgeError(f"--until {until!r} is not in the future")
    problem = open_problems(entries).get(fingerprint)
    if problem is None:
        raise AcknowledgeError(f"{fingerprint} is not open (conformance bulletin lists the open entries)")
    entry = {
        key: problem.opened.get(key)
        for key in ("layer", "host", "service", "contract", "severity", "owner", "outcome", "summary")
    }
    entry.update(
        {
            "time": format_stamp(now),
            "run": "",
            "event": events.ACKNOWLEDGED,
            "fingerprint": fingerprint,
            "details": [],
            "evidence": {},
            "blocked": [],
            events.ACK_BY: redact(by.strip())[:64],
            events.ACK_REASON: redact(reason.strip())[:500],
            events.ACK_UNTIL: format_stamp(expiry) if expiry else None,
            events.EVIDENCE_CLASS: problem.evidence_class,
        }
    )
    return entry


def acknowledge(
    path: Path, fingerprint: str, by: str, reason: str, until: str | None = None, clock: Clock = utc_now
) -> dict[str, Any]:
    """Append an ``acknowledged`` event to the bulletin file; return the entry written."""
    with _lock_for(path):
        repair_torn_tail(path)
        entry = plan_acknowledgement(read_entries(path), fingerprint, by, reason, until, clock())
        append_records(path, [json.dumps(entry, sort_keys=True)])
    return entry
