"""The transport: read-only allow-list, batching, timeouts, one cause per host."""

from __future__ import annotations

import socket
import threading
import time

import paramiko
import pytest

from conformance.errors import CommandRefused
from conformance.inventory.model import Host, SshSettings
from conformance.transport import scripts
from conformance.transport.allowlist import check_command
from conformance.transport.audit import AuditLog
from conformance.transport.connection import HostConnection, HostUnavailable

ALLOWED = [
    ["ss", "-Htlnp"],
    ["sudo", "-n", "ss", "-Htlnp"],
    ["lsof", "-nP", "-iTCP", "-sTCP:LISTEN"],
    ["netstat", "-anv", "-p", "tcp"],
    ["systemctl", "show", "-p", "ActiveState", "-p", "User", "litellm-orch.service", "optillm-proxy.service"],
    ["systemctl", "is-active", "litellm-orch.service"],
    ["launchctl", "print", "gui/501/com.example.optillm-high"],
    ["cat", "/etc/optillm-proxy/env"],
    ["sudo", "-n", "cat", "/var/lib/optillm/.optillm/proxy_config.yaml"],
    ["python3", "-c", scripts.PACKAGE_VERSIONS.text, "/opt/venv"],
    ["/usr/bin/python3", "-c", scripts.USER_HOMES.text, "optillm"],
    ["systemctl", "show", "-p", "User", "--", "litellm-orch.service", "optillm-local@high.service"],
    ["python3", "-c", scripts.IN_HOST_PROBE.text, "3", "http://127.0.0.1:4020/health", "198.51.100.11:4040"],
    # sudo's own listing of the user's rules: runs nothing (conformance doctor)
    ["sudo", "-n", "-l"],
    ["stat", "-L", "-c", "%d:%i:%n", "/usr/bin/ss", "/bin/ss"],
]

REFUSED = [
    ["rm", "-rf", "/"],
    ["systemctl", "restart", "litellm-orch.service"],
    ["systemctl", "stop", "optillm-proxy.service"],
    ["launchctl", "kickstart", "-k", "gui/501/x"],
    ["cat", "../../etc/shadow"],
    ["cat", "/etc/../etc/shadow"],
    ["cat", "/etc/passwd; reboot"],
    ["sudo", "ss", "-Htlnp"],
    ["sudo", "-n", "sh", "-c", "id"],
    # only the bare listing: -l with a command would check it, -U another user's rules,
    # and without -n sudo may prompt
    ["sudo", "-l"],
    ["sudo", "-n", "-l", "ss"],
    ["sudo", "-n", "-l", "-U", "root"],
    ["sudo", "-n", "-ll"],
    ["stat", "-L", "/etc/passwd"],
    ["stat", "-L", "-c", "%n", "../etc/shadow"],
    ["python3", "-c", "import os; os.remove('/x')"],
    ["python3", "-c", scripts.IN_HOST_PROBE.text, "3", "http://x/ y"],
    ["ss", "-K"],
    ["/tmp/ss", "-Htlnp"],
    ["bash", "-c", "ss -Htlnp"],
    # A unit name that is an option: -H makes systemctl ssh to another host.
    ["systemctl", "show", "-p", "User", "-Hroot@evil.service"],
    ["systemctl", "show", "-p", "User", "--", "-Hroot@evil.service"],
    ["systemctl", "show", "litellm-orch.service\n"],
    ["systemctl", "show", "litellm orch.service"],
    ["systemctl", "show", "@x.service"],
    # Matched by full path or bare name, never by basename.
    ["/tmp/evil/python3", "-c", scripts.USER_HOMES.text, "optillm"],
    ["/opt/venv/bin/python3", "-c", scripts.USER_HOMES.text, "optillm"],
    ["/tmp/cat", "/etc/hostname"],
    # "$" would accept these trailing newlines; fullmatch does not.
    ["cat", "/etc/hostname\n"],
    ["getent", "passwd", "root\n"],
    ["launchctl", "print", "gui/501/com.example.x\n"],
    ["launchctl", "print", "gui/501/-x"],
    ["python3", "-c", scripts.USER_HOMES.text, "optillm\n"],
    ["python3", "-c", scripts.PACKAGE_VERSIONS.text, "/opt/venv\n"],
    ["python3", "-c", scripts.IN_HOST_PROBE.text, "3\n", "http://127.0.0.1:4020/health"],
    ["python3", "-c", scripts.IN_HOST_PROBE.text, "3", "http://127.0.0.1:4020/health\n"],
    ["python3", "-c", scripts.IN_HOST_PROBE.text, "3", "http://user:pw@127.0.0.1:4020/health"],
    [],
]


@pytest.mark.parametrize("argv", ALLOWED, ids=lambda argv: " ".join(argv)[:60])
def test_read_only_commands_are_allowed(argv):
    check_command(argv)


@pytest.mark.parametrize("argv", REFUSED, ids=lambda argv: " ".join(argv)[:60] or "empty")
def test_anything_else_is_refused_before_it_leaves(argv):
    with pytest.raises(CommandRefused):
        check_command(argv)


def _local(tmp_path, timeout: float = 10.0) -> HostConnection:
    host = Host(
        name="here",
        role="harness",
        os="linux",
        service_manager="systemd",
        connection="local",
        ssh=SshSettings(command_timeout=timeout),
    )
    return HostConnection(host, AuditLog(tmp_path / "audit.jsonl", "run-1"))


def test_batch_runs_many_commands_in_one_execution(tmp_path):
    connection = _local(tmp_path)
    results = connection.run_batch([["uname", "-s"], ["cat", "/nonexistent/file"], ["hostname"], ["id", "-u"]])
    assert [result.exit_code == 0 for result in results] == [True, False, True, True]
    assert results[0].stdout == "Linux"
    assert "No such file" in results[1].stderr and results[1].stdout == ""
    assert results[2].stdout == socket.gethostname()
    assert connection.commands_run == 1
    audit = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(audit) == 1 and "uname -s ;; cat /nonexistent/file" in audit[0]


def test_batch_output_without_trailing_newline_and_marker_lookalikes(tmp_path):
    target = tmp_path / "odd.txt"
    target.write_text("@@GC0 0@@\nno newline at end")
    connection = _local(tmp_path)
    first, second = connection.run_batch([["cat", str(target)], ["uname", "-s"]])
    assert first.stdout == "@@GC0 0@@\nno newline at end"
    assert second.stdout == "Linux"


def test_refused_command_never_runs(tmp_path):
    connection = _local(tmp_path)
    with pytest.raises(CommandRefused):
        connection.run_batch([["uname", "-s"], ["rm", "-rf", str(tmp_path)]])
    assert connection.commands_run == 0 and tmp_path.exists()


def test_batches_run_at_once_over_one_connection_in_order(tmp_path):
    """Two slow batches (each an in-host probe waiting 1 s on a silent server) take 1 s, not 2."""
    server, port = _silent_server()
    connection = _local(tmp_path)
    probe = ["python3", "-c", scripts.IN_HOST_PROBE.text, "1", f"http://127.0.0.1:{port}/"]
    started = time.monotonic()
    fast, slow_one, slow_two = connection.run_batches([[["uname", "-s"], ["hostname"]], [probe], [probe]])
    elapsed = time.monotonic() - started
    server.close()
    assert [result.stdout for result in fast] == ["Linux", socket.gethostname()]
    assert "timed out" in slow_one[0].stdout and "timed out" in slow_two[0].stdout
    assert elapsed < 1.8, f"the batches ran one after the other ({elapsed:.2f} s)"
    assert connection.commands_run == 3
    assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 3


def test_a_refused_command_in_any_batch_stops_every_batch(tmp_path):
    connection = _local(tmp_path)
    with pytest.raises(CommandRefused):
        connection.run_batches([[["uname", "-s"]], [["rm", "-rf", str(tmp_path)]]])
    assert connection.commands_run == 0 and tmp_path.exists()


def test_a_failed_host_fails_every_batch_with_its_one_cause(tmp_path):
    server, port = _silent_server()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    connection = HostConnection(_ssh_host(port, known_hosts), AuditLog(tmp_path / "audit.jsonl", "r"))
    started = time.monotonic()
    with pytest.raises(HostUnavailable) as failure:
        connection.run_batches([[["uname", "-s"]], [["hostname"]], [["id", "-u"]]])
    assert time.monotonic() - started < 3, "one connect timeout, not one per batch"
    with pytest.raises(HostUnavailable) as again:
        connection.run_batches([[["hostname"]]])
    assert again.value is failure.value
    audit = [line for line in (tmp_path / "audit.jsonl").read_text().splitlines() if '"connect"' in line]
    assert len(audit) == 1
    server.close()


def _silent_server() -> tuple[socket.socket, int]:
    """A TCP server that accepts and never speaks: SSH banner exchange will time out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


def _ssh_host(port: int, known_hosts, timeout: float = 1.0) -> Host:
    return Host(
        name="silent",
        role="gateway",
        os="linux",
        service_manager="systemd",
        address="127.0.0.1",
        ssh=SshSettings(user="monitor", port=port, known_hosts=str(known_hosts), connect_timeout=timeout),
    )


def test_unanswering_host_costs_one_timeout_once(tmp_path):
    server, port = _silent_server()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    connection = HostConnection(_ssh_host(port, known_hosts), AuditLog(tmp_path / "audit.jsonl", "r"))
    started = time.monotonic()
    with pytest.raises(HostUnavailable) as first:
        connection.run(["uname", "-s"])
    first_cost = time.monotonic() - started
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(HostUnavailable) as again:
            connection.run(["hostname"])
        assert again.value is first.value
    assert first_cost < 5
    assert time.monotonic() - started < 0.1, "the cause is reused, not retried"
    server.close()


def test_missing_known_hosts_is_refused_before_connecting(tmp_path):
    host = _ssh_host(22, tmp_path / "absent_known_hosts")
    connection = HostConnection(host, AuditLog(tmp_path / "audit.jsonl", "r"))
    with pytest.raises(HostUnavailable) as caught:
        connection.run(["uname", "-s"])
    assert caught.value.kind == "host-key" and "does not exist" in caught.value.cause


def test_no_host_key_source_at_all_is_refused(tmp_path):
    host = Host(
        name="x",
        role="gateway",
        os="linux",
        service_manager="systemd",
        address="127.0.0.1",
        ssh=SshSettings(user="monitor"),
    )
    with pytest.raises(HostUnavailable) as caught:
        HostConnection(host, AuditLog(tmp_path / "a.jsonl", "r")).run(["uname", "-s"])
    assert "refusing to connect to an unverified host" in caught.value.cause


def test_paramiko_default_policy_is_not_used():
    # The backend must never fall back to testinfra's WarningPolicy (accepts any key).
    from conformance.transport.connection import _StrictParamikoBackend

    source = _StrictParamikoBackend.client.fget.__code__.co_names  # type: ignore[attr-defined]
    assert "RejectPolicy" in source and "WarningPolicy" not in source
    assert paramiko.RejectPolicy is not None


def test_no_unrestricted_testinfra_host_is_handed_out(tmp_path):
    """testinfra's Host.run() would bypass the allow-list and the audit log."""
    from conformance.transport.connection import _StrictParamikoBackend

    connection = _local(tmp_path)
    assert not hasattr(connection, "testinfra_host")
    host = Host(
        name="mini",
        role="gateway",
        os="linux",
        service_manager="systemd",
        address="127.0.0.1",
        ssh=SshSettings(user="monitor", known_hosts=str(tmp_path / "known_hosts")),
    )
    backend = _StrictParamikoBackend(host, None, None, 5.0)
    with pytest.raises(CommandRefused):
        backend.run("rm -rf /")
    assert not (tmp_path / "audit.jsonl").exists()
