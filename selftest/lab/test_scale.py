"""Scale hosts (`conformance lab scale`): two come up, answer SSH as monitor, and go away
again without touching the main lab.

Deliberately not the session `lab` fixture: that one resets drifts at the end, and this
test must be safe to run while the main lab is busy with other tests. It only needs the
main lab to be running (to prove it is left alone) and no scale hosts in use.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import paramiko
import pytest


def _unsupported() -> str | None:
    if platform.system() != "Linux" or os.geteuid() != 0:
        return "the lab needs Linux and root"
    return None


def _not_ready() -> str | None:
    """Checked when the test runs, not at collection: earlier lab tests take the lab down."""
    from lab import scale
    from lab.runtime import host_running, load_state

    st = load_state()
    if not all(host_running(st, h) for h in ("mini", "studio")):
        return "the main lab is not running; run `conformance lab up` first"
    if scale.find_nspawns() or scale.load_state().hosts:
        return "scale hosts are in use (e.g. a benchmark with --keep); run `conformance lab scale down` first"
    return None


_reason = _unsupported()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def _ssh(addr: str, known_hosts: Path, key: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.load_host_keys(str(known_hosts))
    client.connect(
        addr,
        username="monitor",
        key_filename=str(key),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
        banner_timeout=10,
        auth_timeout=10,
    )
    return client


def _run(client: paramiko.SSHClient, command: str) -> str:
    _, out, err = client.exec_command(command, timeout=15)
    text = out.read().decode()
    assert out.channel.recv_exit_status() == 0, f"{command}: {err.read().decode()}"
    return text


def test_two_scale_hosts_answer_ssh_and_go_away_cleanly():
    from lab import scale
    from lab.runtime import host_running, load_state, mounted
    from lab.secrets import monitor_key_paths

    reason = _not_ready()
    if reason:
        pytest.skip(reason)
    main_before = {h: r.nspawn_pid for h, r in load_state().hosts.items()}
    key = monitor_key_paths()[0]
    t0 = time.monotonic()
    try:
        info = scale.scale_up(2)
        assert info.hosts == ["s01", "s02"] and sorted(info.started) == ["s01", "s02"]
        up_seconds = time.monotonic() - t0
        print(f"\nscale up 2 in {up_seconds:.1f} s (golden built: {info.golden_built})")
        known = scale.known_hosts_path()
        assert known.name == "scale_known_hosts" and known.is_file()
        for index in (1, 2):
            host = scale.scale_host(index)
            client = _ssh(host.addr, known, key)
            try:
                assert _run(client, "hostname").strip() == host.name
                assert _run(client, "id -un").strip() == "monitor"
                listening = _run(client, "sudo -n /usr/bin/ss -Htlnp")
                assert "0.0.0.0:8080" in listening and '"python3"' in listening
                assert _run(client, "systemctl is-active standin.service").strip() == "active"
            finally:
                client.close()
        # The main lab's known_hosts does not vouch for a scale host: RejectPolicy refuses it.
        with pytest.raises(paramiko.SSHException):
            _ssh(scale.scale_host(1).addr, Path(os.devnull), key).close()
        # Idempotent: a second `up` starts nothing.
        again = scale.scale_up(2)
        assert again.started == [] and again.stopped == []
    finally:
        removed, _ = scale.scale_down()
    assert sorted(removed) == ["s01", "s02"]
    assert scale.find_nspawns() == {}
    for index in (1, 2):
        host = scale.scale_host(index)
        assert not Path(f"/sys/class/net/{host.veth}").exists()
        assert not mounted(scale.root_dir(host)) and not scale.run_dir(host).exists()
    assert not scale.known_hosts_path().exists() and not scale.state_path().exists()
    assert scale.scale_down()[0] == []  # nothing left: a no-op
    st = load_state()
    assert all(host_running(st, h) for h in ("mini", "studio"))
    assert {h: r.nspawn_pid for h, r in st.hosts.items()} == main_before
    assert time.monotonic() - t0 < 60
