"""The running lab: acceptance points, exec, SSH as monitor, a few drifts, stop/start."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .conftest import lab_skip_reason

_reason = lab_skip_reason()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

MINI = "198.51.100.10"
STUDIO = "198.51.100.11"


def secrets(info) -> dict[str, str]:
    return dict(info.secrets)


def tcp_open(addr: str, port: int) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=2):
            return True
    except OSError:
        return False


def test_up_is_idempotent_and_fast(lab):
    from lab import lab_up

    before = lab.hosts
    again = lab_up()
    assert not again.changed
    assert again.seconds < 10, f"warm up on a running lab took {again.seconds:.1f} s"
    assert {h: i.nspawn_pid for h, i in again.hosts.items()} == {h: i.nspawn_pid for h, i in before.items()}


def test_state_dir_files(lab):
    d = Path(lab.state_dir)
    kh = (d / "known_hosts").read_text()
    assert f"{MINI} ssh-ed25519 " in kh and f"{STUDIO} ssh-ed25519 " in kh
    assert (d / "secrets.env").stat().st_mode & 0o777 == 0o600
    assert (d / "monitor_ed25519").stat().st_mode & 0o777 == 0o600
    names = {ln.split("=", 1)[0] for ln in (d / "secrets.env").read_text().splitlines()}
    assert names == {"LITELLM_MASTER_KEY", "OPTILLM_LOCAL_API_KEY", "HF_TOKEN"}


def test_liveliness_over_bridge(lab):
    r = httpx.get(f"http://{MINI}:4000/health/liveliness", timeout=5)
    assert r.status_code == 200 and r.json() == "I'm alive!"


def test_optillm_proxy_refuses_from_machine(lab):
    assert not tcp_open(MINI, 4020)


def test_optillm_proxy_health_inside(lab):
    from lab import lab_exec

    res = lab_exec(
        "mini", ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:4020/health"], timeout=15
    )
    assert res.stdout == "200"


def test_chat_through_the_chain(lab):
    from lab import lab_exec

    key = secrets(lab)["LITELLM_MASTER_KEY"]
    # OptiLLM (4020) -> LiteLLM studio-high -> studio 4040, from inside the mini.
    res = lab_exec(
        "mini",
        [
            "curl",
            "-sS",
            "-m",
            "60",
            "-w",
            "\n%{http_code}",
            "-H",
            f"Authorization: Bearer {key}",
            "-H",
            "content-type: application/json",
            "http://127.0.0.1:4020/v1/chat/completions",
            "-d",
            '{"model":"studio-high","messages":[{"role":"user","content":"ping"}]}',
        ],
        timeout=90,
    )
    body, _, code = res.stdout.rpartition("\n")
    assert code == "200", body
    assert "pong high" in body
    # LiteLLM optimized-high -> OptiLLM -> LiteLLM studio-high -> studio, from the machine.
    r = httpx.post(
        f"http://{MINI}:4000/v1/chat/completions",
        timeout=60,
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "optimized-high", "messages": [{"role": "user", "content": "ping"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "pong high"


def test_studio_models_and_auth(lab):
    key = secrets(lab)["OPTILLM_LOCAL_API_KEY"]
    r = httpx.get(f"http://{STUDIO}:4040/v1/models", timeout=10, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == ["labtiny/tiny-chat-high"]
    assert httpx.get(f"http://{STUDIO}:4040/v1/models", timeout=10).status_code == 401
    assert not tcp_open(STUDIO, 4042)


def test_exec_returns_exit_code_and_runs_inside(lab):
    from lab import lab_exec

    assert lab_exec("studio", ["sh", "-c", "exit 7"], timeout=10).returncode == 7
    assert lab_exec("studio", ["hostname"], timeout=10).stdout.strip() == "studio"
    assert lab_exec("mini", ["id", "-u"], timeout=10).stdout.strip() == "0"


def test_ssh_as_monitor_with_restricted_sudo(lab):
    d = Path(lab.state_dir)
    base = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={d / 'known_hosts'}",
        "-i",
        str(d / "monitor_ed25519"),
        "-o",
        "ConnectTimeout=5",
        f"monitor@{MINI}",
    ]
    ok = subprocess.run(
        [*base, "sudo -n ss -Htlnp && sudo -n cat /etc/optillm-proxy/env"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "127.0.0.1:4020" in ok.stdout and "OPTILLM_HOST=127.0.0.1" in ok.stdout
    denied = subprocess.run([*base, "sudo -n cat /etc/shadow"], capture_output=True, text=True, timeout=30, check=False)
    assert denied.returncode != 0
    root = subprocess.run([*base[:-1], f"root@{MINI}", "true"], capture_output=True, timeout=30, check=False)
    assert root.returncode != 0  # key-only, and no root logins


def _env_file(host: str, path: str) -> str:
    from lab import lab_exec

    return lab_exec(host, ["cat", path], timeout=10).stdout


@pytest.mark.parametrize(
    "name", ["optillm-exposed", "extra-listener", "requirements-unpinned", "unit-disabled", "balanced-stopped"]
)
def test_drift_apply_is_observable_and_reset_restores(lab, clean_drifts, name):
    from lab import drift_apply, drift_reset, lab_exec, lab_is_healthy
    from lab.drifts import config_diffs

    req = "/Users/thestudio/gateway/layer-gateway/optillm-local/requirements.txt"

    def observed() -> bool:
        if name == "optillm-exposed":
            return tcp_open(MINI, 4020)
        if name == "extra-listener":
            return tcp_open(MINI, 8088)
        if name == "requirements-unpinned":
            return "transformers\n" in _env_file("studio", req).splitlines(keepends=True)
        if name == "unit-disabled":
            out = lab_exec("mini", ["systemctl", "is-enabled", "optillm-proxy"], timeout=10)
            return out.stdout.strip() == "disabled"
        if name == "balanced-stopped":
            return not tcp_open(STUDIO, 4041)
        raise AssertionError(name)

    assert not observed()
    t0 = time.monotonic()
    drift_apply(name)
    assert observed(), f"{name} applied but not observable"
    drift_reset()
    assert not observed(), f"{name} still observable after reset"
    assert config_diffs() == []
    assert lab_is_healthy()
    print(f"{name}: apply+reset {time.monotonic() - t0:.1f} s")


def test_stop_and_start_one_host(lab, clean_drifts):
    from lab import lab_is_healthy, start_host, stop_host

    stop_host("studio")
    try:
        assert not tcp_open(STUDIO, 22)
        r = httpx.get(f"http://{MINI}:4000/health/liveliness", timeout=5)
        assert r.status_code == 200  # the mini is untouched
    finally:
        start_host("studio")
    assert tcp_open(STUDIO, 22) and lab_is_healthy()


def test_not_root_is_refused_by_the_cli():
    from lab.runtime import require_supported

    if os.geteuid() == 0:
        require_supported()  # must not raise as root on Linux
