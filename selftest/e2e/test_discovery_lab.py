"""A site that names no user, repo root or venv: the lab's hosts say them, and the verdicts
are the conformant lab's; a drift still fails at the paths the host named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conformance.facts.gather import MAX_LANES_PER_ROUND
from selftest.e2e.conftest import LAB_INVENTORY

pytestmark = pytest.mark.lab

# What a new site does not know yet; the lab site states each of them.
HOST_KNOWS = ("user", "repo_root", "venv")
VERDICT = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)")


def bare_inventory(tmp_path: Path) -> Path:
    """inventory/lab.yaml without the services' user, repo_root and venv, its paths made absolute."""
    document = yaml.safe_load(LAB_INVENTORY.read_text(encoding="utf-8"))
    base = LAB_INVENTORY.parent
    document["extends"] = str((base / document["extends"]).resolve())
    document["secrets_file"] = str((base / document["secrets_file"]).resolve())
    for host in document["hosts"]:
        for key in ("identity_file", "known_hosts"):
            if key in host.get("ssh", {}):
                host["ssh"][key] = str((base / host["ssh"][key]).resolve())
    for service in document["services"]:
        for key in HOST_KNOWS:
            service.pop(key, None)
    target = tmp_path / "bare-lab.yaml"
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def verdicts(output: str) -> dict[str, str]:
    """test id -> outcome word, from pytest's -rA summary (parameters included)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        match = VERDICT.match(line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def evidence_texts(reports: Path) -> str:
    """All the Allure results' text (the evidence of each check is attached there)."""
    parts = []
    for path in sorted((reports / "allure-results").glob("*")):
        if path.is_file() and path.suffix in {".json", ".txt"}:
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def test_the_host_says_what_the_site_does_not(run_suites, tmp_path):
    bare = bare_inventory(tmp_path)
    text = bare.read_text(encoding="utf-8")
    assert "repo_root" not in text and "venv:" not in text and "user: litellm" not in text
    conformant = run_suites("-rA", bulletin=tmp_path / "conformant.jsonl")
    assert conformant.exit_code == 0, conformant.output
    discovered = run_suites("-rA", f"--inventory={bare}", bulletin=tmp_path / "bare.jsonl")
    assert discovered.exit_code == 0, discovered.output
    assert "no repo_root" not in discovered.output and "unknown" not in discovered.output.split("conformance:")[-1]
    assert " 0 failed, 0 broken" in discovered.output, discovered.output
    # The same verdict for every check, the skipped ones included (same count, same ids).
    assert verdicts(discovered.output) == verdicts(conformant.output)
    assert len(verdicts(discovered.output)) > 40
    assert discovered.entries() == []
    # Each value the host gave is named with its source in the evidence.
    evidence = evidence_texts(discovered.reports)
    for phrase in (
        "repo_root /srv/gateway from ExecStart --config /srv/gateway/layer-gateway/litellm-orch/config/router.yaml",
        "~ = /var/lib/optillm, the home of optillm (user from the unit's User= (optillm-proxy.service))",
        "repo_root /Users/thestudio/gateway from ",
        "litellm (from the unit's User= (litellm-orch.service))",
        "/Users/thestudio/gateway/layer-gateway/optillm-local/.venv (from the site file (layer-gateway/optillm-local/"
        ".venv), under repo_root from ",
    ):
        assert phrase in evidence, phrase
    # Still two rounds of remote executions per host and connection, discovery included.
    audit = (discovered.reports / "audit.jsonl").read_text().splitlines()
    connects = [json.loads(line) for line in audit if '"kind": "connect"' in line]
    execs = [line for line in audit if '"kind": "exec"' in line]
    assert len(execs) <= 2 * MAX_LANES_PER_ROUND * len(connects), execs


@pytest.mark.parametrize("drift", ["requirements-unpinned", "transformers-5"])
def test_a_drift_still_fails_at_the_paths_the_host_named(drift, run_suites, tmp_path):
    from lab import drift_apply, drift_reset
    from lab.drifts import DRIFTS

    expect = DRIFTS[drift].expect
    assert expect is not None
    bare = bare_inventory(tmp_path)
    args = (f"--inventory={bare}", "--conformance-host=studio", "-k", "transformers_pin", "-rA")
    drift_apply(drift)
    try:
        run = run_suites(*args, bulletin=tmp_path / "bulletin.jsonl")
    finally:
        drift_reset()
    assert run.exit_code == 1, run.output
    assert [line for line in run.failed() if expect.test in line], run.output
    for phrase in expect.phrases:
        assert phrase in run.output, f"{phrase!r} missing:\n{run.output}"
    # ... judged in the venv and requirements the host named, and saying so.
    assert "/Users/thestudio/gateway/layer-gateway/optillm-local" in run.output, run.output
