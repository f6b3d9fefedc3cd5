"""The owners' report: problems sorted into the kinds owners act on (Allure categories), the
runner named (executor.json), and the history carried from one report to the next."""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from conformance.bulletin import events
from conformance.bulletin.store import format_stamp, utc_now
from conformance.report_history import _generate, carry_history, generate_with_history, number_the_run
from conformance.results import Outcome, Result, Subject
from conformance.sinks import categories as cat

SUBJECT = Subject("port-bound", "mini", "optillm-proxy", 4020, layer="gateway")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
ALLURE = Path(os.environ.get("CONFORMANCE_ALLURE", PROJECT_ROOT / ".tools/node_modules/.bin/allure"))


def _result(outcome: Outcome, blocked_by: str | None = None) -> Result:
    return Result(outcome, "port 4020 is bound to 0.0.0.0", subject=SUBJECT, blocked_by=blocked_by)


def _category_of(message: str, status: str) -> list[str]:
    """The categories a message falls in, matched the way Allure 2 does (whole message, DOTALL)."""
    return [
        category["name"]
        for category in cat.categories()
        if status in category["matchedStatuses"] and re.fullmatch(category["messageRegex"], message, re.DOTALL)
    ]


@pytest.mark.parametrize(
    ("result", "acknowledged", "status", "expected"),
    [
        (_result(Outcome.VIOLATED), False, "failed", "Contract violated"),
        (_result(Outcome.BROKEN), False, "broken", "Could not check"),
        (_result(Outcome.BROKEN, blocked_by="mini: SSH timed out"), False, "broken", "Blocked by a root cause"),
        (_result(Outcome.WAIVED), False, "skipped", "Waived"),
        (_result(Outcome.VIOLATED), True, "failed", "Acknowledged"),
        (_result(Outcome.BROKEN, blocked_by="x"), True, "broken", "Acknowledged"),
    ],
)
def test_each_kind_falls_in_exactly_its_category(result, acknowledged, status, expected):
    message = cat.marked(result.render(), result, acknowledged)
    # allure-pytest puts the exception's class first, and the evidence runs over many lines.
    shown = f"conformance.plugin.CheckBroken: {message}\n  evidence: line one\n    line two"
    assert _category_of(shown, status) == [expected]


def test_an_unmarked_error_is_a_harness_error_and_passes_skips_carry_no_marker():
    assert _category_of("fixture 'x' not found\nmore", "broken") == ["Harness error"]
    assert cat.marked("all good", _result(Outcome.PASSED)) == "all good"
    assert cat.marked("not applicable", _result(Outcome.SKIPPED)) == "not applicable"


def test_executor_names_the_timer_and_the_ci_run_with_its_link():
    assert cat.executor({"CONFORMANCE_RUNNER": "mini-timer"}) == {"name": "mini-timer", "type": "conformance"}
    assert cat.executor({})["name"] == "manual"
    github = cat.executor(
        {
            "CONFORMANCE_RUNNER": "ci",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "owners/gateway-conformance",
            "GITHUB_RUN_ID": "123456",
            "GITHUB_RUN_NUMBER": "42",
            "GITHUB_WORKFLOW": "scheduled conformance",
        }
    )
    assert github["buildUrl"] == "https://github.com/owners/gateway-conformance/actions/runs/123456"
    assert github["buildOrder"] == 42 and github["buildName"] == "scheduled conformance #42"
    assert github["name"] == "ci" and github["type"] == "github"


def test_run_files_are_written(tmp_path):
    cat.write_run_files(tmp_path, {"CONFORMANCE_RUNNER": "mini-timer"})
    names = [category["name"] for category in json.loads((tmp_path / "categories.json").read_text())]
    assert "Product defects" not in names and names[0] == "Contract violated"
    assert json.loads((tmp_path / "executor.json").read_text())["name"] == "mini-timer"


def _bulletin(tmp_path: Path, until: str | None) -> Path:
    fingerprint = SUBJECT.fingerprint
    opened = {
        "event": "opened",
        "time": format_stamp(utc_now() - timedelta(hours=2)),
        "fingerprint": "gateway/optillm-never-exposed/mini/optillm-proxy",
        "outcome": "violated",
        "summary": "exposed",
        events.CORRELATED: ["gateway/optillm-never-exposed/mini/optillm-proxy", fingerprint],
    }
    ack = {
        "event": events.ACKNOWLEDGED,
        "time": format_stamp(utc_now() - timedelta(hours=1)),
        "fingerprint": opened["fingerprint"],
        events.ACK_BY: "platform",
        events.ACK_UNTIL: until,
    }
    path = tmp_path / "bulletin.jsonl"
    path.write_text("".join(json.dumps(entry) + "\n" for entry in (opened, ack)), encoding="utf-8")
    return path


def test_an_active_acknowledgement_covers_the_incident_members(tmp_path):
    path = _bulletin(tmp_path, format_stamp(utc_now() + timedelta(days=1)))
    assert cat.Acknowledgements(path).covers(_result(Outcome.VIOLATED))
    expired = _bulletin(tmp_path, format_stamp(utc_now() - timedelta(minutes=5)))
    assert not cat.Acknowledgements(expired).covers(_result(Outcome.VIOLATED))
    assert not cat.Acknowledgements(tmp_path / "absent.jsonl").covers(_result(Outcome.VIOLATED))


def test_history_is_carried_and_the_run_numbered(tmp_path):
    report, results = tmp_path / "report", tmp_path / "results"
    (report / "history").mkdir(parents=True)
    results.mkdir()
    (report / "history" / "history-trend.json").write_text(json.dumps([{"data": {}}, {"data": {}}]))
    (results / "history").mkdir()
    (results / "history" / "stale.json").write_text("{}")
    cat.write_run_files(results, {"CONFORMANCE_RUNNER": "mini-timer"})
    runs = carry_history(report, results)
    assert runs == 2 and not (results / "history" / "stale.json").exists()
    number_the_run(results, runs)
    executor = json.loads((results / "executor.json").read_text())
    assert executor["buildOrder"] == 3 and executor["buildName"] == "mini-timer #3"
    assert carry_history(tmp_path / "no-report", results) == 0


def _allure_result(results: Path, name: str, status: str, message: str) -> None:
    body = {
        "uuid": str(uuid.uuid4()),
        "historyId": name,
        "name": name,
        "fullName": name,
        "status": status,
        "statusDetails": {"message": message},
        "start": 1_700_000_000_000,
        "stop": 1_700_000_000_100,
    }
    (results / f"{body['uuid']}-result.json").write_text(json.dumps(body), encoding="utf-8")


@pytest.mark.skipif(not ALLURE.exists(), reason="the Allure command line is not installed (scripts/setup.sh)")
def test_real_allure_sorts_by_category_and_keeps_history(tmp_path):
    results, output = tmp_path / "results", tmp_path / "report"
    for run in range(1, 4):
        if results.exists():
            for path in results.iterdir():
                if path.is_file():
                    path.unlink()
        results.mkdir(exist_ok=True)
        violated, broken, blocked = (
            _result(Outcome.VIOLATED),
            _result(Outcome.BROKEN),
            _result(Outcome.BROKEN, blocked_by="mini down"),
        )
        _allure_result(results, "bound", "failed", "ContractViolation: " + cat.marked("bound", violated))
        _allure_result(results, "file", "broken", "CheckBroken: " + cat.marked("unreadable", broken))
        _allure_result(results, "unit", "broken", "CheckBroken: " + cat.marked("x\ny", blocked, acknowledged=True))
        _allure_result(results, "waived", "skipped", "Skipped: " + cat.marked("ok", _result(Outcome.WAIVED)))
        cat.write_run_files(results, {"CONFORMANCE_RUNNER": "mini-timer"})
        assert generate_with_history(ALLURE, results, output) is None
        trend = json.loads((output / "history" / "history-trend.json").read_text())
        assert len(trend) == run
    assert trend[0]["buildOrder"] == 3 and trend[-1]["buildOrder"] == 1
    assert (output / "index.html").is_file()
    # The sorting itself, as Allure files the last run's results (a folder report holds it as data).
    folders = tmp_path / "folders"
    assert _generate(ALLURE, results, folders) is None
    sorted_by_allure = {
        category["name"]: len(category["children"])
        for category in json.loads((folders / "data" / "categories.json").read_text())["children"]
    }
    assert sorted_by_allure == {"Contract violated": 1, "Could not check": 1, "Acknowledged": 1, "Waived": 1}
    assert json.loads((folders / "widgets" / "executors.json").read_text())[0]["name"] == "mini-timer"
