"""conformance doctor against the real lab: conformant, an unknown host key, the monitor's sudo
rules removed. Each run is the command an operator types, in a subprocess."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from selftest.conftest import PROJECT_ROOT

pytestmark = pytest.mark.lab

LAB_INVENTORY = PROJECT_ROOT / "inventory" / "lab.yaml"
GATEWAY_INVENTORY = PROJECT_ROOT / "inventory" / "gateway.yaml"
SITE_MARKER = "--- discovered site file (review, then save and pass with --site) ---\n"


def _conformance(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _doctor(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _conformance(env, "doctor", "--reports-dir", str(tmp_path / "reports"), *args)


def _steps(output: str, host: str) -> dict[str, str]:
    """step name -> mark, for one host's block."""
    block = output.split(f"host {host}\n", 1)[1].split("\n\n", 1)[0]
    steps = {}
    for line in block.splitlines():
        if line[:2] == "  " and line[2:6].strip() in {"ok", "FAIL", "skip"}:
            name = line[8:].split(":", 1)[0]
            steps[name] = line[2:6].strip()
    return steps


def _site(output: str, tmp_path: Path) -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(output.split(SITE_MARKER, 1)[1])
    return site


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_the_conformant_lab_is_all_ok_and_its_site_file_checks(lab_env, tmp_path: Path) -> None:
    run = _doctor(lab_env, tmp_path, "--inventory", str(LAB_INVENTORY))
    assert run.returncode == 0, run.stdout + run.stderr
    for host in ("mini", "studio"):
        assert _steps(run.stdout, host) == {
            "address": "ok",
            "host key": "ok",
            "login": "ok",
            "sudo": "ok",
            "files": "ok",
        }, run.stdout
    assert "doctor: every step ok (exit 0)" in run.stdout
    check = _conformance(lab_env, "inventory", "check", str(LAB_INVENTORY), "--site", str(_site(run.stdout, tmp_path)))
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_new_site_with_only_the_connection_gets_what_the_host_tells(lab_env, tmp_path: Path) -> None:
    """The README's minimal site (no user, repo_root or venv) over the production inventory."""
    lab = Path(lab_env.get("CONFORMANCE_LAB_STATE") or PROJECT_ROOT / ".lab")
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text(
        f"secrets_file: {lab / 'secrets.env'}\n"
        "hosts:\n  - name: mini\n    address: 198.51.100.10\n    ssh:\n      user: monitor\n"
        f"      identity_file: {lab / 'monitor_ed25519'}\n      known_hosts: {lab / 'known_hosts'}\n"
    )
    run = _doctor(lab_env, tmp_path, "--inventory", str(GATEWAY_INVENTORY), "--site", str(minimal), "--host", "mini")
    assert run.returncode == 0, run.stdout + run.stderr
    site = _site(run.stdout, tmp_path)
    text = site.read_text()
    assert 'repo_root: "/srv/gateway"  # from ExecStart --config' in text
    assert 'user: "optillm"  # from the unit\'s User=' in text
    check = _conformance(lab_env, "inventory", "check", str(GATEWAY_INVENTORY), "--site", str(site))
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_unknown_host_key_is_shown_with_its_line_and_nothing_is_written(lab_env, tmp_path: Path) -> None:
    from lab.build import golden_dir

    lab = Path(lab_env.get("CONFORMANCE_LAB_STATE") or PROJECT_ROOT / ".lab")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    site = tmp_path / "site.yaml"
    site.write_text(f"hosts:\n  - name: mini\n    ssh:\n      known_hosts: {empty}\n")
    watched = [lab / "known_hosts", Path.home() / ".ssh" / "known_hosts", empty]
    before = [_digest(path) for path in watched]

    run = _doctor(lab_env, tmp_path, "--inventory", str(LAB_INVENTORY), "--site", str(site))

    assert run.returncode == 1, run.stdout + run.stderr
    assert _steps(run.stdout, "mini") == {
        "address": "ok",
        "host key": "FAIL",
        "login": "skip",
        "sudo": "skip",
        "files": "skip",
    }, run.stdout
    assert _steps(run.stdout, "studio")["files"] == "ok"  # one host's failure does not stop the others
    # The lab's real key, as ssh-keygen reads it from the host's own files.
    public = golden_dir("mini") / "etc" / "ssh" / "ssh_host_ed25519_key.pub"
    keygen = subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True, check=True)
    bits, fingerprint = keygen.stdout.split()[:2]
    assert f"the server offers {bits} {fingerprint} 198.51.100.10 (ED25519)" in run.stdout
    key_type, body = public.read_text().split()[:2]
    assert f"\n              198.51.100.10 {key_type} {body}\n" in run.stdout
    assert "skipped: the host key is not verified" in run.stdout
    assert [_digest(path) for path in watched] == before


def test_the_monitor_sudo_rules_removed_prints_the_sudoers_lines(lab_env, tmp_path: Path) -> None:
    from lab import drift_apply, drift_reset, files

    drift_apply("monitor-sudo-revoked")
    try:
        run = _doctor(lab_env, tmp_path, "--inventory", str(LAB_INVENTORY), "--host", "mini")
    finally:
        drift_reset()
    assert run.returncode == 1, run.stdout + run.stderr
    steps = _steps(run.stdout, "mini")
    assert (steps["login"], steps["sudo"], steps["files"]) == ("ok", "FAIL", "FAIL"), run.stdout
    assert "sudo -n -l: exit 1: sudo: a password is required" in run.stdout
    # The exact lines: the lab's own drop-in, one command per line.
    drop_in = files.sudoers("mini").splitlines()[-1]
    head, _, commands = drop_in.partition("NOPASSWD: ")
    for command in commands.split(", "):
        assert f"\n              {head}NOPASSWD: {command}\n" in run.stdout, run.stdout
    assert "grant the sudo rule shown in the sudo step" in run.stdout
    # After the reset the same command is all ok again.
    again = _doctor(lab_env, tmp_path, "--inventory", str(LAB_INVENTORY), "--host", "mini")
    assert again.returncode == 0, again.stdout
