"""The bulletin: an append-only JSON Lines file of escalations, with state across runs.

An entry is written when a check's state changes: ``opened`` when it starts failing (or
cannot be checked at its root cause), ``resolved`` when it passes again, ``reminder`` after
the inventory's reminder interval while it stays open. Which problems are open is derived
from the file itself, so runs need no server. Writes happen on the xdist controller only,
under a file lock, re-reading the state inside the lock, so two runs at once lose nothing.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from conformance.redact import redact
from conformance.results import Outcome, Result

LOCK_TIMEOUT_SECONDS = 30.0
TORN_SUFFIX = ".torn"


class BulletinError(OSError):
    """The bulletin could not be read or written; the run must not pass silently."""


@dataclass
class OpenProblem:
    fingerprint: str
    opened: dict[str, Any]
    last: dict[str, Any]


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Every entry of the bulletin.

    A last line without its newline is a record whose append was cut short (a full disk, a
    crash): it is not an entry, and it is skipped here; the next run moves it aside
    (``repair_torn_tail``). A broken line *before* the last one is real damage and an error.
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
        if isinstance(entry, dict) and "fingerprint" in entry and "event" in entry:
            entries.append(entry)
    return entries


def open_problems(entries: Iterable[dict[str, Any]]) -> dict[str, OpenProblem]:
    state: dict[str, OpenProblem] = {}
    for entry in entries:
        fingerprint = entry["fingerprint"]
        if entry["event"] == "opened":
            state[fingerprint] = OpenProblem(fingerprint, entry, entry)
        elif entry["event"] == "reminder" and fingerprint in state:
            state[fingerprint].last = entry
        elif entry["event"] == "resolved":
            state.pop(fingerprint, None)
    return state


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(event: str, result: Result, run_id: str, blocked: list[str], fingerprint: str) -> dict[str, Any]:
    subject = result.subject
    assert subject is not None
    return {
        "time": _now(),
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
        "summary": redact(result.summary),
        "details": [redact(line) for line in result.details],
        "evidence": {key: redact(value)[:2000] for key, value in result.evidence.items()},
        "blocked": sorted(blocked),
    }


@dataclass
class BulletinUpdate:
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    still_open: int = 0
    # The entries this update appended, in order.
    entries: list[dict[str, Any]] = field(default_factory=list)


def update_bulletin(
    path: Path,
    results: list[Result],
    run_id: str,
    reminder_after_hours: float | None,
    complete_run: bool = False,
) -> BulletinUpdate:
    """Fold this run's results into the bulletin file; one entry per root cause.

    ``complete_run``: this run checked the whole inventory (nothing deselected), so an open
    entry whose check did not run at all no longer exists (the inventory changed): it is
    resolved as retired rather than left open for ever.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_for(path):
        repair_torn_tail(path)
        state = open_problems(read_entries(path))
        new_entries, update = plan_update(state, results, run_id, reminder_after_hours, complete_run)
        if new_entries:
            append_records(path, [json.dumps(entry, sort_keys=True) for entry in new_entries])
        update.still_open = len(open_problems(read_entries(path)))
    return update


def plan_update(
    state: dict[str, OpenProblem],
    results: list[Result],
    run_id: str,
    reminder_after_hours: float | None,
    complete_run: bool = False,
) -> tuple[list[dict[str, Any]], BulletinUpdate]:
    """The entries this run appends, given the open problems before it (no I/O).

    The caller holds whatever makes ``state`` current until the entries are written (the
    file lock, or a database transaction), so that two runs never open one problem twice.
    """
    roots: dict[str, Result] = {}
    blocked: dict[str, list[str]] = {}
    passed: set[str] = set()
    for result in results:
        if result.subject is None:
            continue
        fingerprint = result.subject.fingerprint
        if result.outcome is Outcome.PASSED:
            passed.add(fingerprint)
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
    update = BulletinUpdate()
    new_entries: list[dict[str, Any]] = []
    for fingerprint, result in sorted(roots.items()):
        dependents = blocked.get(fingerprint, [])
        if fingerprint not in state:
            new_entries.append(_entry("opened", result, run_id, dependents, fingerprint))
            update.opened.append(fingerprint)
        elif reminder_after_hours is not None and _hours_since(state[fingerprint].last["time"]) >= reminder_after_hours:
            new_entries.append(_entry("reminder", result, run_id, dependents, fingerprint))
            update.reminded.append(fingerprint)
    seen = {result.subject.fingerprint for result in results if result.subject} | set(roots)
    retired = sorted(set(state) - seen) if complete_run else []
    for fingerprint in sorted(passed) + retired:
        if fingerprint in state and fingerprint not in roots:
            why = "resolved" if fingerprint in passed else "retired (the check is no longer in the inventory)"
            entry = dict(state[fingerprint].opened)
            entry.update(
                {
                    "time": _now(),
                    "run": run_id,
                    "event": "resolved",
                    "outcome": "passed",
                    "summary": f"{why}: {state[fingerprint].opened.get('summary', '')}"[:500],
                    "evidence": {},
                    "details": [],
                    "blocked": [],
                }
            )
            new_entries.append(entry)
            update.resolved.append(fingerprint)
    update.still_open = len(state) + len(update.opened) - len(update.resolved)
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


def _hours_since(stamp: str) -> float:
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return (time.time() - then.timestamp()) / 3600
