"""The scheduled-run workflow lints clean against the GitHub workflow schema (a linter from
a package registry), and the linter really rejects a broken workflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from selftest.conftest import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "scheduled-conformance.yml"


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_workflow_lints_clean():
    result = _lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_runs_the_suites_on_a_schedule_and_keeps_the_bulletin():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key "on" as True
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    steps = workflow["jobs"]["conformance"]["steps"]
    text = "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in steps)
    assert "pytest -n auto" in text and "conformance report" in text
    assert "actions/cache/restore" in text and "actions/cache/save" in text and "upload-artifact" in text


def test_linter_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    assert _lint(broken).returncode != 0
