"""Secrets never leave the hosts; host keys are verified against the real sshd."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftest.conftest import PROJECT_ROOT

pytestmark = pytest.mark.lab


def _all_text(folder: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in folder.rglob("*") if path.is_file())


def test_canary_secrets_reach_no_report_and_no_terminal(run_suites, lab_env, tmp_path):
    from lab import drift_apply, drift_reset

    canaries = {name: lab_env[name] for name in ("LITELLM_MASTER_KEY", "OPTILLM_LOCAL_API_KEY", "HF_TOKEN")}
    assert all(len(value) > 8 for value in canaries.values())
    # Drifts whose evidence sits right next to secrets: env files with keys, a key in the proxy env.
    drift_apply("optillm-local-mode")
    drift_apply("hf-cache-moved")
    try:
        run = run_suites("--model-health", "-rA", bulletin=tmp_path / "bulletin.jsonl")
    finally:
        drift_reset()
    assert run.exit_code == 1 and run.entries(), run.output
    produced = _all_text(run.reports) + run.output
    assert (run.reports / "audit.jsonl").exists()
    for name, value in canaries.items():
        assert value not in produced, f"{name} leaked"


def test_planted_canaries_reach_no_report_no_terminal_no_audit_log(run_suites, lab_env, tmp_path):
    """Canaries in every place a secret lives on a lab host; none may come out anywhere.

    The secret-canaries drift plants them (env file, wrapped line, ExecStart argv, URL
    userinfo in router.yaml, the proxy env and proxy_config, a model_list api_key, an HTTP
    body); optillm-local-mode and hf-cache-moved add failing checks whose evidence sits next
    to them. The run also proves the planted places were read (a masked URL, the wrapped
    line named by number), so an empty output cannot pass.
    """
    from lab import drift_apply, drift_reset
    from lab.runtime import load_state

    drift_apply("secret-canaries")
    try:
        canaries = next(d for d in load_state().drifts if d["name"] == "secret-canaries")["data"]["canaries"]
        drift_apply("optillm-local-mode")
        drift_apply("hf-cache-moved")
        run = run_suites("--model-health", "-rA", bulletin=tmp_path / "bulletin.jsonl")
    finally:
        drift_reset()
    assert run.exit_code == 1 and run.entries(), run.output
    assert (run.reports / "audit.jsonl").is_file() and (run.reports / "junit.xml").is_file()
    produced = {str(path): path.read_text(errors="replace") for path in run.reports.rglob("*") if path.is_file()}
    produced["terminal"] = run.output
    produced["bulletin"] = (tmp_path / "bulletin.jsonl").read_text()
    for name, canary in canaries.items():
        for where, text in produced.items():
            assert canary not in text, f"canary {name} leaked into {where}"
    everything = "\n".join(produced.values())
    # The planted values were read and masked, not missed.
    assert "gcuser" not in everything and "***@127.0.0.1:4000" in everything, "URL userinfo not reached"
    assert "balanced.env, line " in everything, "the wrapped line was not reported by number"
    assert "port 4020 is served by python3" in everything, "the canary body's listener was not probed"


def _host_key_run(run_suites, lab_env, tmp_path, known_hosts_text: str):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_text)
    site = tmp_path / "site.yaml"
    site.write_text(f"hosts:\n  - name: mini\n    ssh: {{known_hosts: {known_hosts}}}\n")
    return run_suites(f"--site={site}", "--conformance-host", "mini", "-m", "hosts")


def test_unknown_host_key_is_an_error_that_says_so(run_suites, lab_env, tmp_path):
    run = _host_key_run(run_suites, lab_env, tmp_path, "")
    assert run.exit_code == 1 and not run.failed()
    assert "host key of 198.51.100.10 is UNKNOWN" in run.output


def test_changed_host_key_is_an_error_that_says_so(run_suites, lab_env, tmp_path):
    real = (PROJECT_ROOT / ".lab" / "known_hosts").read_text().splitlines()
    studio_keys = [line.split(None, 1)[1] for line in real if line.startswith("198.51.100.11 ")]
    forged = "".join(f"198.51.100.10 {key}\n" for key in studio_keys)
    run = _host_key_run(run_suites, lab_env, tmp_path, forged)
    assert run.exit_code == 1 and not run.failed()
    assert "host key for 198.51.100.10 has CHANGED" in run.output
