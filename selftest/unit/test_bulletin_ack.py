"""Acknowledgements: an owner takes an open problem on; it is not escalated again while the
acknowledgement lasts, stays visible, and re-opens when it expires or the problem changes.
Time is a fake clock, so 'three days later' takes no time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conformance.bulletin import events
from conformance.bulletin.store import (
    AcknowledgeError,
    BulletinUpdate,
    acknowledge,
    open_problems,
    read_entries,
    update_bulletin,
)
from conformance.cli import main as cli_main
from conformance.results import Outcome, Result
from conformance.sinks.controller import BulletinSink
from selftest.conftest import EXPOSED

FP = EXPOSED.fingerprint


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def exposed_on(address: str, latency_ms: int = 12) -> Result:
    return Result(
        Outcome.VIOLATED,
        "optillm-proxy is EXPOSED beyond localhost",
        (f"bound beyond loopback: {address}:4020", f"answered from the LAN in {latency_ms} ms"),
        {"listening": f"LISTEN 0 128 {address}:4020 users:((python3,pid=4242))"},
        subject=EXPOSED,
    )


def run(path: Path, clock: FakeClock, result: Result, run_id: str = "r") -> tuple[list[str], list[str], int]:
    update = update_bulletin(path, [result], run_id, 24, clock=clock)
    return update.opened + update.reopened, update.reminded, update.acknowledged


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bulletin(tmp_path: Path, clock: FakeClock) -> Path:
    path = tmp_path / "bulletin.jsonl"
    update_bulletin(path, [exposed_on("0.0.0.0")], "r0", 24, clock=clock)
    return path


def test_without_an_acknowledgement_the_problem_is_reminded(bulletin: Path, clock: FakeClock) -> None:
    clock.advance(hours=30)
    assert run(bulletin, clock, exposed_on("0.0.0.0")) == ([], [FP], 0)


def test_acknowledged_problem_gets_no_reminder_until_it_expires_then_reopens(bulletin: Path, clock: FakeClock) -> None:
    clock.advance(hours=1)
    entry = acknowledge(bulletin, FP, "optillm-proxy", "rebinding in the next maintenance window", "3d", clock=clock)
    assert entry[events.ACK_UNTIL] == "2026-03-05T09:00:00Z"
    for hours in (24, 24, 23.5):  # three days of runs, each past the 24 h reminder interval
        clock.advance(hours=hours)
        assert run(bulletin, clock, exposed_on("0.0.0.0")) == ([], [], 1)
    (problem,) = open_problems(read_entries(bulletin)).values()
    assert problem.ack_active(clock()) and problem.ack is not None
    clock.advance(minutes=31)  # past the expiry
    assert run(bulletin, clock, exposed_on("0.0.0.0")) == ([FP], [], 0)
    last = read_entries(bulletin)[-1]
    assert last["event"] == events.OPENED and "acknowledgement by optillm-proxy expired" in last["summary"]
    # the new entry is an ordinary open problem: quiet until its own reminder, not re-opened again
    clock.advance(hours=1)
    assert run(bulletin, clock, exposed_on("0.0.0.0")) == ([], [], 0)
    clock.advance(hours=24)
    assert run(bulletin, clock, exposed_on("0.0.0.0")) == ([], [FP], 0)


def test_a_changed_problem_reopens_although_acknowledged(bulletin: Path, clock: FakeClock) -> None:
    acknowledge(bulletin, FP, "optillm-proxy", "known", clock=clock)  # no --until: as long as it lasts
    clock.advance(hours=2)
    # the same failure with another latency and pid is the same problem
    assert run(bulletin, clock, exposed_on("0.0.0.0", latency_ms=873)) == ([], [], 1)
    # now exposed on another address: a new problem on the same subject is never hidden
    clock.advance(hours=1)
    reopened, _, acknowledged = run(bulletin, clock, exposed_on("198.51.100.10"))
    assert reopened == [FP] and acknowledged == 0
    assert "changed since it was acknowledged" in read_entries(bulletin)[-1]["summary"]


def test_a_resolved_problem_forgets_its_acknowledgement(bulletin: Path, clock: FakeClock) -> None:
    acknowledge(bulletin, FP, "optillm-proxy", "known", "2w", clock=clock)
    clock.advance(hours=1)
    update_bulletin(bulletin, [Result(Outcome.PASSED, "fine", subject=EXPOSED)], "r1", 24, clock=clock)
    clock.advance(hours=1)
    assert run(bulletin, clock, exposed_on("0.0.0.0")) == ([FP], [], 0)


def test_acknowledging_needs_an_open_problem_and_a_future_expiry(bulletin: Path, clock: FakeClock) -> None:
    with pytest.raises(AcknowledgeError, match="not open"):
        acknowledge(bulletin, "gateway/no-such/-/-", "me", "why", clock=clock)
    with pytest.raises(AcknowledgeError, match="not in the future"):
        acknowledge(bulletin, FP, "me", "why", "2020-01-01", clock=clock)
    with pytest.raises(AcknowledgeError, match="neither a duration"):
        acknowledge(bulletin, FP, "me", "why", "next tuesday", clock=clock)
    with pytest.raises(AcknowledgeError, match="--by OWNER and --reason"):
        acknowledge(bulletin, FP, "me", "  ", clock=clock)
    assert [entry["event"] for entry in read_entries(bulletin)] == [events.OPENED]


def test_an_entry_written_before_evidence_classes_existed_is_still_recognised(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "bulletin.jsonl"
    update_bulletin(path, [exposed_on("0.0.0.0")], "r0", 24, clock=clock)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        line.pop(events.EVIDENCE_CLASS, None)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    acknowledge(path, FP, "optillm-proxy", "known", clock=clock)
    clock.advance(hours=30)
    assert run(path, clock, exposed_on("0.0.0.0")) == ([], [], 1)


def test_the_command_acknowledges_and_the_listing_shows_it(
    bulletin: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONFORMANCE_DB", raising=False)
    args = ["bulletin", "--file", str(bulletin), "ack", FP, "--by", "optillm-proxy", "--reason", "window on Friday"]
    assert cli_main([*args, "--until", "2099-01-01"]) == 0
    assert "acknowledged" in capsys.readouterr().out
    assert cli_main(["bulletin", "--file", str(bulletin)]) == 0
    out = capsys.readouterr().out
    assert "1 open entry (1 acknowledged)" in out
    assert "ACKNOWLEDGED by optillm-proxy until 2099-01-01T00:00:00Z: window on Friday" in out
    assert cli_main(["bulletin", "--file", str(bulletin), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed[events.ACKNOWLEDGED][events.ACK_REASON] == "window on Friday"
    assert cli_main(["bulletin", "--file", str(bulletin), "ack", "gateway/x/-/-", "--by", "a", "--reason", "b"]) == 1


def test_the_summary_line_counts_acknowledged_problems(bulletin: Path, clock: FakeClock) -> None:
    acknowledge(bulletin, FP, "optillm-proxy", "known", clock=clock)
    sink = BulletinSink.__new__(BulletinSink)
    sink.path = bulletin
    sink.store_error = None
    sink.database = None
    sink.update = update_bulletin(bulletin, [exposed_on("0.0.0.0")], "r1", 24, clock=clock)
    assert isinstance(sink.update, BulletinUpdate)
    assert f"bulletin: 1 open, 1 acknowledged (0 opened, 0 resolved) in {bulletin}" == sink.summary()
