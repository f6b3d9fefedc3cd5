"""The bulletin's state machine: one entry per problem, opened once, resolved once."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import subprocess
import time
from pathlib import Path

import pytest

from conformance.bulletin.store import open_problems, read_entries, update_bulletin
from conformance.cli import main as cli_main
from conformance.results import Outcome, Result, Subject
from selftest.conftest import EXPOSED


def subject(
    check: str,
    host: str = "mini",
    service: str | None = "optillm-proxy",
    port: int | None = 4020,
    owner: str = "optillm-proxy",
) -> Subject:
    return Subject(check=check, host=host, service=service, port=port, owner=owner, layer="gateway")


def result(outcome: Outcome, subj: Subject, blocked_by: str | None = None, summary: str = "it broke") -> Result:
    return Result(outcome, summary, evidence={"ss": "LISTEN 0 128 0.0.0.0:4020"}, subject=subj, blocked_by=blocked_by)


BOUND = subject("port-bound")
HOST = Subject(check="host-identity", host="studio", owner="gateway-agent", layer="gateway", severity="critical")


def test_open_once_then_quiet_then_resolve(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    first = update_bulletin(path, [result(Outcome.VIOLATED, BOUND), result(Outcome.VIOLATED, EXPOSED)], "r1", 24)
    assert sorted(first.opened) == sorted([BOUND.fingerprint, EXPOSED.fingerprint])
    second = update_bulletin(path, [result(Outcome.VIOLATED, BOUND), result(Outcome.VIOLATED, EXPOSED)], "r2", 24)
    assert second.opened == [] and second.reminded == []
    third = update_bulletin(path, [result(Outcome.PASSED, BOUND), result(Outcome.VIOLATED, EXPOSED)], "r3", 24)
    assert third.resolved == [BOUND.fingerprint] and third.still_open == 1
    entries = read_entries(path)
    assert [entry["event"] for entry in entries] == ["opened", "opened", "resolved"]
    opened = next(entry for entry in entries if entry["fingerprint"] == EXPOSED.fingerprint)
    assert opened["owner"] == "optillm-proxy" and opened["severity"] == "critical"
    assert opened["contract"] == "optillm-never-exposed" and opened["host"] == "mini"
    assert opened["evidence"]["ss"].startswith("LISTEN")
    assert {"time", "run", "event", "fingerprint", "layer", "service", "summary"} <= set(opened)


def test_passing_check_that_was_never_open_writes_nothing(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    update_bulletin(path, [result(Outcome.PASSED, BOUND), result(Outcome.SKIPPED, EXPOSED)], "r1", 24)
    assert not path.exists() or read_entries(path) == []


def test_unreachable_host_is_one_entry_blocking_the_rest(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    dependants = [
        result(Outcome.BROKEN, subject(f"check-{i}", host="studio"), blocked_by=HOST.fingerprint) for i in range(12)
    ]
    update = update_bulletin(path, [result(Outcome.BROKEN, HOST), *dependants], "r1", 24)
    assert update.opened == [HOST.fingerprint]
    (entry,) = read_entries(path)
    assert len(entry["blocked"]) == 12


def test_blocker_not_in_this_run_still_gets_its_one_entry(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    dependants = [
        result(Outcome.BROKEN, subject(f"check-{i}", host="studio"), blocked_by=HOST.fingerprint) for i in range(3)
    ]
    update_bulletin(path, dependants, "r1", 24)
    (entry,) = read_entries(path)
    assert entry["fingerprint"] == HOST.fingerprint and entry["event"] == "opened"


def test_reminder_after_the_interval(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r1", 24)
    entries = read_entries(path)
    entries[0]["time"] = "2020-01-01T00:00:00Z"
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    update = update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r2", 24)
    assert update.reminded == [BOUND.fingerprint]
    again = update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r3", 24)
    assert again.reminded == [], "one reminder per interval"


def test_secrets_never_reach_the_bulletin(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    leaky = Result(
        Outcome.VIOLATED,
        "key sk-canary-0123456789 leaked",
        details=("Bearer hf_abcdefghijklmnop",),
        evidence={"env": "OPENAI_API_KEY=sk-canary-0123456789"},
        subject=BOUND,
    )
    update_bulletin(path, [leaky], "r1", 24)
    text = path.read_text()
    assert "sk-canary" not in text and "hf_abcdefghijklmnop" not in text


def _writer(path: str, worker: int, start: object, locked: bool) -> None:
    from conformance.bulletin import store

    if not locked:  # the negative control: the same race with the file lock taken away
        import contextlib

        store._lock_for = lambda _path: contextlib.nullcontext()  # type: ignore[assignment]
    # A slow disk: the time between reading the state and appending is where runs race.
    append = store.append_records

    def slow_append(*args: object) -> None:
        time.sleep(0.2)
        append(*args)  # type: ignore[arg-type]

    store.append_records = slow_append  # type: ignore[assignment]
    # Every writer reports the SAME 25 problems (as two overlapping runs do), plus 5 of its own.
    results = [result(Outcome.VIOLATED, subject(f"shared-{i}")) for i in range(25)]
    results += [result(Outcome.VIOLATED, subject(f"own-{worker}-{i}")) for i in range(5)]
    start.wait()  # type: ignore[attr-defined]
    update_bulletin(Path(path), results, f"run-{worker}", 24)


def _race(path: Path, locked: bool, writers: int = 8) -> list[str]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(writers)
    processes = [context.Process(target=_writer, args=(str(path), worker, start, locked)) for worker in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert all(process.exitcode == 0 for process in processes)
    return path.read_text().splitlines()


def test_concurrent_runs_lose_nothing_and_never_interleave(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    lines = _race(path, locked=True)
    entries = [json.loads(line) for line in lines]  # every line whole
    opened = [entry["fingerprint"] for entry in entries if entry["event"] == "opened"]
    assert len(opened) == len(set(opened)), "a problem opened twice: two writers read the same state"
    assert len(opened) == 25 + 8 * 5
    assert len(open_problems(read_entries(path))) == 25 + 8 * 5


def test_the_concurrency_test_fails_without_the_lock(tmp_path):
    """The race above is real: without the lock, writers read the same state and double-open."""
    path = tmp_path / "bulletin.jsonl"
    lines = _race(path, locked=False)
    opened = [json.loads(line)["fingerprint"] for line in lines if line.strip()]
    assert len(opened) > len(set(opened)), "no duplicate without the lock: the race did not happen"


def test_failed_append_leaves_no_partial_record(tmp_path, monkeypatch):
    from conformance.bulletin import store

    path = tmp_path / "bulletin.jsonl"
    update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r1", 24)
    before = path.read_bytes()

    def half_then_enospc(fd: int, data: bytes) -> int:
        if len(data) > 10:
            return os.write(fd, data[: len(data) // 2])  # a short write, as on a nearly full disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "_write", half_then_enospc)
    with pytest.raises(OSError, match="No space left"):
        update_bulletin(path, [result(Outcome.VIOLATED, EXPOSED)], "r2", 24)
    assert path.read_bytes() == before, "the failed append was cut back"
    monkeypatch.setattr(store, "_write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        update_bulletin(path, [result(Outcome.VIOLATED, EXPOSED)], "r3", 24)
    monkeypatch.undo()
    update = update_bulletin(path, [result(Outcome.VIOLATED, EXPOSED)], "r4", 24)
    assert update.opened == [EXPOSED.fingerprint] and update.still_open == 2


def test_torn_last_line_is_moved_aside_never_lost(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r1", 24)
    fragment = b'{"event": "opened", "fingerprint": "gateway/half'
    with path.open("ab") as handle:
        handle.write(fragment)  # what a crash or a full disk mid-append leaves
    assert len(read_entries(path)) == 1, "readers skip the torn tail instead of failing"
    update = update_bulletin(path, [result(Outcome.VIOLATED, BOUND), result(Outcome.VIOLATED, EXPOSED)], "r2", 24)
    assert update.opened == [EXPOSED.fingerprint]
    assert all(json.loads(line) for line in path.read_text().splitlines())
    assert (tmp_path / "bulletin.jsonl.torn").read_bytes() == fragment + b"\n"


def test_complete_record_missing_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r1", 24)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    update = update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r2", 24)
    assert update.opened == [] and update.still_open == 1
    assert not (tmp_path / "bulletin.jsonl.torn").exists()


def test_real_full_disk(tmp_path):
    """A 16 KiB tmpfs really fills up: the append fails whole and a later run still works."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        path = mount / "bulletin.jsonl"
        update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r1", 24)
        before = path.read_bytes()
        many = [result(Outcome.VIOLATED, subject(f"check-{i}"), summary="x" * 400) for i in range(200)]
        with pytest.raises(OSError):
            update_bulletin(path, many, "r2", 24)
        assert path.read_bytes() == before
        assert [entry["fingerprint"] for entry in read_entries(path)] == [BOUND.fingerprint]
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_cli_prints_open_entries(tmp_path, capsys):
    path = tmp_path / "bulletin.jsonl"
    update_bulletin(path, [result(Outcome.VIOLATED, EXPOSED, summary="optillm-proxy is EXPOSED")], "r1", 24)
    assert cli_main(["bulletin", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 open entry" in out and "optillm-proxy: optillm-proxy is EXPOSED" in out and "since" in out
    assert cli_main(["bulletin", "--file", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["owner"] == "optillm-proxy"


def test_entry_of_a_check_that_no_longer_exists_is_retired_by_a_complete_run(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    gone = subject("port-bound", port=4999)
    update_bulletin(path, [result(Outcome.VIOLATED, gone), result(Outcome.VIOLATED, BOUND)], "r1", 24)
    partial = update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r2", 24, complete_run=False)
    assert partial.resolved == [] and partial.still_open == 2
    complete = update_bulletin(path, [result(Outcome.VIOLATED, BOUND)], "r3", 24, complete_run=True)
    assert complete.resolved == [gone.fingerprint] and complete.still_open == 1
    assert read_entries(path)[-1]["summary"].startswith("retired (the check is no longer in the inventory)")
