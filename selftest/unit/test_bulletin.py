"""The bulletin's state machine: one entry per problem, opened once, resolved once."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from conformance.bulletin.store import open_problems, read_entries, update_bulletin
from conformance.cli import main as cli_main
from conformance.results import Outcome, Result, Subject


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
EXPOSED = Subject(
    check="optillm-never-exposed",
    contract="optillm-never-exposed",
    host="mini",
    service="optillm-proxy",
    port=4020,
    owner="optillm-proxy",
    layer="gateway",
    severity="critical",
)
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


def _writer(args: tuple[str, int]) -> None:
    path, worker = args
    results = [result(Outcome.VIOLATED, subject(f"check-{worker}-{i}")) for i in range(25)]
    update_bulletin(Path(path), results, f"run-{worker}", 24)


def test_concurrent_runs_lose_nothing_and_never_interleave(tmp_path):
    path = tmp_path / "bulletin.jsonl"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_writer, [(str(path), worker) for worker in range(8)])
    lines = path.read_text().splitlines()
    assert len(lines) == 8 * 25
    assert all(json.loads(line)["event"] == "opened" for line in lines)
    assert len(open_problems(read_entries(path))) == 200


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
