"""The owners' report keeps its history, so each check's trend shows across runs.

Allure computes trends from a ``history/`` folder it finds in the *results*, and writes the
updated one into the *report* (allure2 ``HistoryPlugin`` / ``HistoryTrendPlugin``, which read
``history/*.json`` from the results folders and write them to the report's ``history/``). A
run's results folder is cleaned by allure-pytest at the start of every run, so the history
is carried from the previous report: copied into the results before generating, and the new
report's ``history/`` kept beside its ``index.html`` for the next run. The single-file report
(one ``index.html`` to mail or open from disk) has no ``history/`` folder of its own, so the
report is generated twice: once as folders, for the history, once as the single file, which
embeds the same trends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

HISTORY = "history"
GENERATE_TIMEOUT = 300.0


def carry_history(previous_report: Path, results: Path) -> int:
    """Copy the previous report's history into the results; return how many runs it holds."""
    source = previous_report / HISTORY
    target = results / HISTORY
    if not source.is_dir():
        return 0
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    try:
        trend = json.loads((target / "history-trend.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    return len(trend) if isinstance(trend, list) else 0


def number_the_run(results: Path, runs_before: int) -> None:
    """Give executor.json a build order (the trend's x axis) when the runner has none of its own
    (a CI run numbers itself): the run after the ``runs_before`` kept in the history."""
    path = results / "executor.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(info, dict) and "buildOrder" not in info:
        info["buildOrder"] = runs_before + 1
        info.setdefault("buildName", f"{info.get('name', 'run')} #{runs_before + 1}")
        path.write_text(json.dumps(info, indent=2), encoding="utf-8")


def _generate(allure: Path, results: Path, output: Path, *extra: str) -> str | None:
    command = [str(allure), "generate", str(results), "--output", str(output), "--clean", *extra]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=GENERATE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"allure did not finish within {GENERATE_TIMEOUT:.0f} s"
    if completed.returncode != 0:
        return f"allure failed:\n{completed.stdout}{completed.stderr}"
    return None


def generate_with_history(allure: Path, results: Path, output: Path) -> str | None:
    """The single-file report in ``output``, with ``output/history`` for the next one; or why not."""
    runs_before = carry_history(output, results)
    number_the_run(results, runs_before)
    with tempfile.TemporaryDirectory(prefix="allure-report-") as scratch:
        folders = Path(scratch) / "report"
        failure = _generate(allure, results, folders)
        if failure:
            return failure
        failure = _generate(allure, results, output, "--single-file")
        if failure:
            return failure
        if (folders / HISTORY).is_dir():
            shutil.copytree(folders / HISTORY, output / HISTORY, dirs_exist_ok=True)
    return None
