"""conformance doctor: host keys shown as ssh-keygen shows them, the steps and their fixes, the
renderer, and the discovered site file. The lab runs are in selftest/e2e/test_doctor.py."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from conformance.doctor import (
    DoctorReport,
    HostReport,
    Mark,
    SiteValue,
    Step,
    SudoNeed,
    check_address,
    check_host_key,
    examine_host,
    files_step,
    inventory_values,
    render,
    secrets_step,
    site_yaml,
    sudo_commands,
    sudo_step,
)
from conformance.facts.model import FileFact, HostFacts
from conformance.facts.sudo_list import Decision, Verdict
from conformance.inventory.loader import load_inventory
from conformance.inventory.model import Host, SshSettings
from conformance.redact import register_secret
from conformance.transport import hostkeys
from conformance.transport.audit import NullAuditLog
from selftest.conftest import PROJECT_ROOT
from selftest.unit.parsers._recorded import text

LAB_INVENTORY = PROJECT_ROOT / "inventory" / "lab.yaml"


def _keygen(tmp_path: Path, kind: str, comment: str) -> tuple[Path, paramiko.PKey]:
    path = tmp_path / f"key_{kind}"
    bits = ["-b", "3072"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *bits, "-N", "", "-C", comment, "-f", str(path)], check=True)
    loader = {"ed25519": paramiko.Ed25519Key, "rsa": paramiko.RSAKey, "ecdsa": paramiko.ECDSAKey}[kind]
    return path, loader.from_private_key_file(str(path))


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_the_fingerprint_line_is_what_ssh_keygen_prints(tmp_path: Path, kind: str) -> None:
    path, key = _keygen(tmp_path, kind, "198.51.100.10")
    keygen = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True, text=True, check=True)
    assert hostkeys.keygen_line(key, "198.51.100.10") == keygen.stdout.strip()


@pytest.mark.parametrize(("port", "name"), [(22, "198.51.100.10"), (2222, "[198.51.100.10]:2222")])
def test_the_known_hosts_line_is_found_by_ssh_keygen(tmp_path: Path, port: int, name: str) -> None:
    _, key = _keygen(tmp_path, "ed25519", "x")
    assert hostkeys.host_key_name("198.51.100.10", port) == name
    known = tmp_path / "known_hosts"
    known.write_text(hostkeys.known_hosts_line(name, key) + "\n")
    found = subprocess.run(["ssh-keygen", "-F", name, "-f", str(known)], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    listed = subprocess.run(["ssh-keygen", "-lf", str(known)], capture_output=True, text=True, check=True)
    assert listed.stdout.split()[1] == hostkeys.fingerprint(key)


def test_judging_a_key_known_unknown_changed(tmp_path: Path) -> None:
    _, key = _keygen(tmp_path, "ed25519", "x")
    _, other = _keygen_other(tmp_path)
    assert hostkeys.judge(key, {"ssh-ed25519": key}).status is hostkeys.KeyStatus.KNOWN
    assert hostkeys.judge(key, {}).status is hostkeys.KeyStatus.UNKNOWN
    assert hostkeys.judge(key, {"ecdsa-sha2-nistp256": other}).status is hostkeys.KeyStatus.UNKNOWN
    changed = hostkeys.judge(key, {"ssh-ed25519": other})
    assert changed.status is hostkeys.KeyStatus.CHANGED
    assert changed.expected_fingerprint == hostkeys.fingerprint(other)


def _keygen_other(tmp_path: Path) -> tuple[Path, paramiko.PKey]:
    folder = tmp_path / "other"
    folder.mkdir(exist_ok=True)
    return _keygen(folder, "ed25519", "y")


class _Server(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "publickey"


@pytest.fixture
def ssh_server(tmp_path: Path) -> Iterator[tuple[int, paramiko.PKey]]:
    """A real SSH server on loopback (paramiko's), for the key exchange only."""
    _, key = _keygen(tmp_path, "ed25519", "server")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(key)
            transports.append(transport)
            try:
                transport.start_server(server=_Server())
            except (paramiko.SSHException, EOFError, OSError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], key
    listener.close()
    for transport in transports:
        transport.close()


def _host(port: int, known_hosts: Path | None = None, **ssh: object) -> Host:
    return Host(
        name="mini",
        role="gateway",
        os="linux",
        service_manager="systemd",
        address="127.0.0.1",
        ssh=SshSettings(port=port, known_hosts=str(known_hosts) if known_hosts else None, connect_timeout=3, **ssh),  # type: ignore[arg-type]
    )


def test_an_unknown_key_is_shown_never_trusted_nor_written(tmp_path: Path, ssh_server) -> None:
    port, key = ssh_server
    known = tmp_path / "known_hosts"
    known.write_text("")
    step = check_host_key(_host(port, known))
    assert step.mark is Mark.FAIL
    name = f"[127.0.0.1]:{port}"
    assert hostkeys.keygen_line(key, name) in step.summary
    assert f"    {name} ssh-ed25519 {key.get_base64()}" in step.fixes
    assert any(hostkeys.fingerprint(key) in fix and "ssh-keygen -lf" in fix for fix in step.fixes)
    assert known.read_text() == ""


def test_a_known_key_is_ok_and_a_changed_one_names_both(tmp_path: Path, ssh_server) -> None:
    port, key = ssh_server
    known = tmp_path / "known_hosts"
    known.write_text(hostkeys.known_hosts_line(f"[127.0.0.1]:{port}", key) + "\n")
    assert check_host_key(_host(port, known)).mark is Mark.OK
    _, other = _keygen_other(tmp_path)
    known.write_text(hostkeys.known_hosts_line(f"[127.0.0.1]:{port}", other) + "\n")
    step = check_host_key(_host(port, known))
    assert step.mark is Mark.FAIL and "CHANGED" in step.summary
    assert hostkeys.fingerprint(other) in step.summary and hostkeys.fingerprint(key) in step.summary
    pinned = check_host_key(_host(port, None, host_key=f"ssh-ed25519 {key.get_base64()}"))
    assert pinned.mark is Mark.OK and "pinned host_key" in pinned.summary


def test_a_silent_port_times_out(tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the TCP connection, never says a word
    try:
        known = tmp_path / "known_hosts"
        known.write_text("")
        host = _host(silent.getsockname()[1], known)
        host = host.model_copy(update={"ssh": host.ssh.model_copy(update={"connect_timeout": 0.5})})
        step = check_host_key(host)
    finally:
        silent.close()
    assert step.mark is Mark.FAIL and "no SSH key exchange" in step.summary


def test_a_closed_port_skips_every_later_step(tmp_path: Path) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    inventory = load_inventory(LAB_INVENTORY)
    report = examine_host(inventory, _host(port, tmp_path / "none"), NullAuditLog())
    assert [(step.name, step.mark) for step in report.steps] == [
        ("address", Mark.FAIL),
        ("host key", Mark.SKIP),
        ("login", Mark.SKIP),
        ("sudo", Mark.SKIP),
        ("files", Mark.SKIP),
    ]
    assert "refused" in report.steps[0].summary.lower()
    assert report.steps[2].summary == "skipped: the host does not answer"


def test_no_address_says_where_to_give_it() -> None:
    host = _host(22).model_copy(update={"address": None})
    step = check_address(host)
    assert step.mark is Mark.FAIL and "CONFORMANCE_HOST_MINI_ADDRESS" in step.fixes[0]


def test_the_sudo_commands_are_those_the_gathering_ran() -> None:
    history = [
        ("hostname",),
        ("sudo", "-n", "-l"),
        ("sudo", "-n", "ss", "-Htlnp"),
        ("cat", "/etc/x"),
        ("sudo", "-n", "cat", "/etc/optillm-proxy/env"),
        ("sudo", "-n", "ss", "-Htlnp"),
    ]
    assert sudo_commands(history) == [("ss", "-Htlnp"), ("cat", "/etc/optillm-proxy/env")]


def _need(argv: tuple[str, ...], verdict: Verdict, ran: bool | None) -> SudoNeed:
    path = {"ss": "/usr/bin/ss", "cat": "/usr/bin/cat"}[argv[0]]
    return SudoNeed(argv, path, Decision(verdict, "why"), ran)


def test_revoked_rules_print_the_exact_sudoers_lines() -> None:
    """What the Mini answers with its drop-in removed (recorded), and the gathering refused."""
    assert text("lab-mini-sudo-n-l-revoked.stderr.txt").strip() == "sudo: a password is required"
    needs = [
        _need(("ss", "-Htlnp"), Verdict.CANNOT_TELL, False),
        _need(("cat", "/etc/optillm-proxy/env"), Verdict.CANNOT_TELL, False),
    ]
    step = sudo_step(_host(22, user="monitor", sudo=True), needs, "exit 1: sudo: a password is required")
    assert step.mark is Mark.FAIL
    assert step.fixes[1:] == (
        "    monitor ALL=(root) NOPASSWD: /usr/bin/ss -Htlnp",
        "    monitor ALL=(root) NOPASSWD: /usr/bin/cat /etc/optillm-proxy/env",
    )


def test_a_listed_rule_refused_at_run_time_fails_and_cannot_tell_that_ran_is_ok() -> None:
    host = _host(22, user="monitor", sudo=True)
    refused = sudo_step(host, [_need(("ss", "-Htlnp"), Verdict.GRANTED, False)], "")
    assert refused.mark is Mark.FAIL and "refused it when it ran" in refused.details[0]
    ran = sudo_step(host, [_need(("ss", "-Htlnp"), Verdict.CANNOT_TELL, True)], "")
    assert ran.mark is Mark.OK
    unknown = sudo_step(host, [_need(("ss", "-Htlnp"), Verdict.CANNOT_TELL, None)], "")
    assert unknown.mark is Mark.FAIL and "cannot tell" in unknown.details[0]


def test_files_never_show_content_and_say_why_one_is_unreadable() -> None:
    facts = HostFacts("mini")
    facts.files["litellm-orch:env.local"] = FileFact(
        "env.local", "/srv/env.local", True, "LITELLM_MASTER_KEY=sk-canary-value-123456\n", None, True
    )
    facts.files["optillm-proxy:/etc/optillm-proxy/env"] = FileFact(
        "/etc/optillm-proxy/env",
        "/etc/optillm-proxy/env",
        True,
        None,
        "sudo refused to read it (sudo: a password is required)",
        True,
    )
    step = files_step(facts, sudo_missing=True)
    assert step.mark is Mark.FAIL
    shown = "\n".join((step.summary, *step.details, *step.fixes))
    assert "sk-canary" not in shown and "LITELLM_MASTER_KEY" not in shown
    assert "grant the sudo rule" in step.fixes[0]


def test_secrets_presence_only_and_where(tmp_path: Path) -> None:
    inventory = load_inventory(LAB_INVENTORY).model_copy(update={"secrets_file": None})
    value = "doctor-test-value-4f1a9c"
    step = secrets_step(inventory, {"LITELLM_MASTER_KEY": value})
    shown = "\n".join((step.summary, *step.details, *step.fixes))
    assert step.mark is Mark.FAIL  # the instances' client key is needed by a live health check
    assert value not in shown
    assert "LITELLM_MASTER_KEY (litellm-master-key): from the exported variable LITELLM_MASTER_KEY" in shown
    assert any(fix.startswith("OPTILLM_LOCAL_API_KEY: export OPTILLM_LOCAL_API_KEY") for fix in step.fixes)
    assert "CONFORMANCE_DB_PASSWORD (system-db): not found; optional" in shown


def test_a_group_readable_secrets_file_fails(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("LITELLM_MASTER_KEY=abcdefgh12345678\nOPTILLM_LOCAL_API_KEY=ijklmnop12345678\n")
    secrets.chmod(0o640)
    inventory = load_inventory(LAB_INVENTORY).model_copy(update={"secrets_file": str(secrets)})
    step = secrets_step(inventory, {})
    assert step.mark is Mark.FAIL
    assert any(f"chmod 600 {secrets}" in fix for fix in step.fixes)
    secrets.chmod(0o600)
    assert secrets_step(inventory, {}).mark is Mark.OK


def test_the_site_file_loads_as_a_site(tmp_path: Path) -> None:
    inventory = load_inventory(LAB_INVENTORY)
    values = [*inventory_values(inventory), SiteValue("optillm-proxy", "repo_root", "/srv/x", "the unit's ExecStart")]
    site = tmp_path / "site.yaml"
    site.write_text(site_yaml(inventory, values))
    loaded = load_inventory(LAB_INVENTORY, site)
    assert loaded.service("optillm-proxy").repo_root == "/srv/x"
    assert loaded.host("mini") == inventory.host("mini")
    assert 'repo_root: "/srv/x"  # from the unit\'s ExecStart' in site.read_text()


def test_render_marks_each_step_and_exit_code() -> None:
    register_secret("render-canary-secret-98765")
    report = DoctorReport(
        [
            HostReport(
                "mini",
                [
                    Step("address", Mark.OK, "198.51.100.10 port 22 answers"),
                    Step("login", Mark.FAIL, "auth failed render-canary-secret-98765", fixes=("ssh-copy-id ...",)),
                    Step("sudo", Mark.SKIP, "skipped: not authenticated"),
                ],
            )
        ],
        Step("secrets", Mark.OK, "every needed secret is present"),
        "hosts: []\n",
    )
    out = render(report)
    assert report.exit_code == 1
    assert "host mini\n  ok    address: 198.51.100.10 port 22 answers\n  FAIL  login: auth failed ***\n" in out
    assert "        fix:\n          ssh-copy-id ...\n  skip  sudo: skipped: not authenticated\n" in out
    assert "doctor: work to do on mini (exit 1)" in out
    assert out.endswith("--- discovered site file (review, then save and pass with --site) ---\nhosts: []\n")
    assert "render-canary" not in out


def test_a_host_without_sudo_is_told_to_install_it() -> None:
    needs = [_need(("ss", "-Htlnp"), Verdict.CANNOT_TELL, False)]
    step = sudo_step(_host(22, user="monitor", sudo=True), needs, "exit 127: sh: 1: sudo: not found")
    assert step.fixes[0] == "install sudo on mini (e.g. apt-get install sudo), then:"
    assert step.fixes[-1] == "    monitor ALL=(root) NOPASSWD: /usr/bin/ss -Htlnp"


def test_a_broken_site_exits_4_like_the_suites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    site = tmp_path / "site.yaml"
    site.write_text("hosts:\n  - name: mini\n    adress: 192.0.2.1\n")
    code = main(["doctor", "--inventory", str(LAB_INVENTORY), "--site", str(site), "--reports-dir", str(tmp_path)])
    assert code == 4
    assert "unknown key 'adress'; did you mean 'address'?" in capsys.readouterr().err
    assert main(["doctor", "--inventory", str(LAB_INVENTORY), "--host", "nosuch", "--reports-dir", str(tmp_path)]) == 4


def test_a_name_that_does_not_resolve_fails_within_the_timeout() -> None:
    host = _host(22).model_copy(update={"address": "no-such-host.invalid"})
    host = host.model_copy(update={"ssh": host.ssh.model_copy(update={"connect_timeout": 1.0})})
    step = check_address(host)
    assert step.mark is Mark.FAIL
    assert "no-such-host.invalid" in step.summary and "resolve" in step.summary
    assert "IP address" in step.fixes[0]


def test_a_known_hosts_file_not_created_yet_shows_the_line_to_start_it(tmp_path: Path, ssh_server) -> None:
    port, key = ssh_server
    missing = tmp_path / "known_hosts"
    step = check_host_key(_host(port, missing))
    assert step.mark is Mark.FAIL and "(no such file yet)" in step.summary
    assert f"    [127.0.0.1]:{port} ssh-ed25519 {key.get_base64()}" in step.fixes
    assert not missing.exists()


def test_the_lab_listing_grants_the_gathering_commands_by_their_secure_path() -> None:
    from conformance.doctor import judge_sudo
    from conformance.facts.sudo_list import parse_sudo_list

    listing = parse_sudo_list(text("lab-mini-sudo-n-l.txt"))
    needed = [("ss", "-Htlnp"), ("cat", "/etc/optillm-proxy/env"), ("cat", "/etc/shadow")]
    identities = {"/usr/bin/ss": "1:2", "/usr/bin/cat": "1:3"}  # what stat -L found on the secure_path
    assert listing.secure_path is not None
    needs = judge_sudo(listing, needed, identities, listing.secure_path, HostFacts("mini"))
    assert [(need.path, need.decision.verdict) for need in needs] == [
        ("/usr/bin/ss", Verdict.GRANTED),
        ("/usr/bin/cat", Verdict.GRANTED),
        ("/usr/bin/cat", Verdict.MISSING),
    ]
    step = sudo_step(_host(22, user="monitor", sudo=True), needs, "")
    assert step.mark is Mark.FAIL
    assert step.fixes[1:] == ("    monitor ALL=(root) NOPASSWD: /usr/bin/cat /etc/shadow",)
