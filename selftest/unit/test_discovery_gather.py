"""Gathering with what the host says: still two round trips of allow-listed commands.

A site that gives no user, repo_root or venv (as a new site does) against the lab's recorded
``systemctl show`` output: round two reads the files at the paths the units name, asks the
venv markers and package metadata, and the checks say where each value came from. The
replaying connection is only a seam; selftest/e2e/test_discovery_lab.py runs the same
gathering over SSH against the lab.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from conformance.contracts import Case, cases_of, load_registry
from conformance.facts.discovery import discovered_settings, located_by
from conformance.facts.gather import gather
from conformance.facts.model import HostFacts
from conformance.inventory.loader import load_inventory
from conformance.inventory.model import Inventory
from conformance.outcomes import evaluate
from conformance.results import Outcome
from conformance.runtime import Runtime
from conformance.transport import scripts
from conformance.transport.allowlist import check_command
from conformance.transport.audit import AuditLog
from conformance.transport.connection import CommandResult
from selftest.conftest import INVENTORY_DIR
from selftest.unit.test_discovery import _bare

RECORDED = Path(__file__).resolve().parents[1] / "recorded"
REGISTRY = load_registry()
STUDIO_VENV = "/Users/thestudio/gateway/layer-gateway/optillm-local/.venv"
PYVENV = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n"
ACCOUNTS = {
    "": {"0": "root", "990": "litellm", "991": "optillm", "501": "thestudio"},
    "~": {
        "root": {"home": "/root", "uid": 0},
        "litellm": {"home": "/srv/gateway", "uid": 990},
        "optillm": {"home": "/var/lib/optillm", "uid": 991},
        "thestudio": {"home": "/Users/thestudio", "uid": 501},
    },
    "root": {"home": "/root", "uid": 0},
}


class Replay:
    """Answers allow-listed commands by their full text (scripts by name); records each round.

    A round is one ``run_batches`` call (its batches run at once over the one connection)."""

    def __init__(self, record: object, answers: dict[str, tuple[int, str] | tuple[int, str, str]]) -> None:
        self.record = record
        self.answers = answers
        self.batches: list[list[str]] = []

    @property
    def commands_run(self) -> int:
        return len(self.batches)

    def run_batches(self, batches: Sequence[Sequence[Sequence[str]]]) -> list[list[CommandResult]]:
        answers = [self._answer(commands) for commands in batches]
        self.batches.append([key for _, keys in answers for key in keys])
        return [results for results, _ in answers]

    def run_batch(self, commands: Sequence[Sequence[str]]) -> list[CommandResult]:
        return self.run_batches([commands])[0]

    def _answer(self, commands: Sequence[Sequence[str]]) -> tuple[list[CommandResult], list[str]]:
        batch = []
        results = []
        for argv in commands:
            check_command(argv)
            script = scripts.by_text(argv[2]) if argv[0] == "python3" else None
            key = script.name if script else " ".join(argv)
            if key.startswith("systemctl show"):
                key = "systemctl show"
            batch.append(key)
            code, out, *err = self.answers.get(key, (1, ""))
            stderr = err[0] if err else "" if code == 0 else f"cat: {argv[-1]}: No such file"
            results.append(CommandResult(tuple(argv), code, out, stderr))
        return results, batch


def _mini_answers() -> dict[str, tuple[int, str]]:
    return {
        "hostname": (0, "mini\n"),
        "uname -s": (0, "Linux\n"),
        "ps -axo pid=,ppid=,uid=,comm=": (0, "   34     1   990 litellm\n   35     1   991 optillm\n"),
        "sudo -n ss -Htlnp": (0, (RECORDED / "lab-mini-ss-Htlnp.txt").read_text()),
        "systemctl show": (0, (RECORDED / "lab-mini-systemctl-show-two-units.txt").read_text()),
        "cat /etc/systemd/system/optillm-proxy.service": (
            0,
            (RECORDED / "lab-mini-optillm-proxy.service.txt").read_text(),
        ),
        "user-homes": (0, json.dumps(ACCOUNTS)),
        "sudo -n cat /etc/optillm-proxy/env": (0, "OPTILLM_BASE_URL=http://127.0.0.1:4000/v1\n"),
        "cat /srv/gateway/layer-gateway/litellm-orch/config/router.yaml": (0, "model_list: []\n"),
        "sudo -n cat /srv/gateway/layer-gateway/litellm-orch/config/env.local": (0, "LITELLM_MASTER_KEY=sk-x\n"),
        "sudo -n cat /var/lib/optillm/.optillm/proxy_config.yaml": (0, "providers: []\n"),
        "cat /opt/litellm/venv/pyvenv.cfg": (0, PYVENV),
        "cat /opt/optillm-proxy/venv/pyvenv.cfg": (0, PYVENV),
    }


@pytest.fixture(scope="module")
def bare() -> Inventory:
    return _bare(load_inventory(INVENTORY_DIR / "lab.yaml", environ={}))


def _gather_mini(inventory: Inventory) -> tuple[HostFacts, Replay]:
    connection = Replay(inventory.host("mini"), _mini_answers())
    return gather(connection, inventory), connection  # type: ignore[arg-type]


def test_round_two_reads_what_the_units_name_in_one_more_batch(bare: Inventory) -> None:
    facts, connection = _gather_mini(bare)
    assert connection.commands_run == 2
    first, second = connection.batches
    # Nothing repo-relative or under ~ is asked before the units have answered.
    assert not any("/srv/gateway" in command or "/var/lib/optillm" in command for command in first)
    assert "cat /srv/gateway/layer-gateway/litellm-orch/config/router.yaml" in second
    assert "sudo -n cat /var/lib/optillm/.optillm/proxy_config.yaml" in second
    assert "cat /opt/litellm/venv/pyvenv.cfg" in second
    assert facts.files["litellm-orch:layer-gateway/litellm-orch/config/router.yaml"].content.strip() == "model_list: []"
    assert (
        facts.files["optillm-proxy:~/.optillm/proxy_config.yaml"].path == "/var/lib/optillm/.optillm/proxy_config.yaml"
    )
    # Homes and uids of accounts the site does not name come from the account database.
    assert facts.user_homes["optillm"] == "/var/lib/optillm" and facts.user_ids["litellm"] == 990


def test_a_site_with_everything_reads_it_in_round_one(bare: Inventory) -> None:
    site = load_inventory(INVENTORY_DIR / "lab.yaml", environ={})
    _facts, connection = _gather_mini(site)
    first, second = connection.batches
    assert "cat /srv/gateway/layer-gateway/litellm-orch/config/router.yaml" in first
    assert not any(command.endswith("pyvenv.cfg") for command in second)  # the site names each venv


def test_discovery_survives_the_snapshot_round_trip(bare: Inventory) -> None:
    facts, _ = _gather_mini(bare)
    copy = HostFacts.from_json(facts.to_json())
    assert copy == facts
    assert discovered_settings(bare, "mini", copy) == discovered_settings(bare, "mini", facts)
    assert {(item.service, item.field, item.value) for item in discovered_settings(bare, "mini", copy)} >= {
        ("litellm-orch", "user", "litellm"),
        ("litellm-orch", "repo_root", "/srv/gateway"),
        ("litellm-orch", "venv", "/opt/litellm/venv"),
        ("optillm-proxy", "user", "optillm"),
        ("optillm-proxy", "venv", "/opt/optillm-proxy/venv"),
    }


def _case(runtime: Runtime, check: str, case_id: str) -> Case:
    case = next(case for case in cases_of(REGISTRY.get(check), runtime.inventory) if case.id == case_id)
    case.runtime = runtime
    return case


def test_the_checks_pass_and_say_where_each_value_came_from(bare: Inventory, tmp_path: Path) -> None:
    facts, _ = _gather_mini(bare)
    runtime = Runtime(bare, AuditLog(tmp_path / "audit.jsonl", "test"))
    runtime.use_facts("mini", facts)
    try:
        router = evaluate(
            REGISTRY.get("file-parses"),
            _case(runtime, "file-parses", "mini/litellm-orch:layer-gateway/litellm-orch/config/router.yaml"),
        )
        assert router.outcome is Outcome.PASSED, router.summary
        assert router.evidence["located by"] == (
            "repo_root /srv/gateway from ExecStart --config "
            "/srv/gateway/layer-gateway/litellm-orch/config/router.yaml (litellm-orch.service)"
        )
        proxy = evaluate(
            REGISTRY.get("file-parses"),
            _case(runtime, "file-parses", "mini/optillm-proxy:~/.optillm/proxy_config.yaml"),
        )
        assert proxy.outcome is Outcome.PASSED, proxy.summary
        assert proxy.evidence["located by"] == (
            "~ = /var/lib/optillm, the home of optillm (user from the unit's User= (optillm-proxy.service))"
        )
        account = evaluate(REGISTRY.get("service-account"), _case(runtime, "service-account", "mini/litellm-orch"))
        assert account.outcome is Outcome.PASSED, account.summary
        assert account.evidence["account"] == "litellm (from the unit's User= (litellm-orch.service))"
    finally:
        runtime.close()


def test_the_account_script_lists_every_home() -> None:
    """The script itself, run here: the homes of accounts nobody asked for come back too."""
    import pwd

    output = subprocess.run(
        [sys.executable, "-c", scripts.USER_HOMES.text, "root"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    answer = json.loads(output)
    me = pwd.getpwuid(0)
    assert answer["~"][me.pw_name] == {"home": me.pw_dir, "uid": 0}
    assert answer["root"]["uid"] == 0 and answer[""]["0"] == me.pw_name


def test_the_lookup_by_name_answers_null_for_a_name_no_source_knows() -> None:
    """The round-two script itself, run here: getpwnam per name, null where NSS finds nothing."""
    argv = [sys.executable, "-c", scripts.ACCOUNTS_BY_NAME.text, "root", "gc_no_such_account"]
    check_command(["python3", *argv[1:]])
    answer = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout)
    assert answer["root"]["uid"] == 0 and answer["gc_no_such_account"] is None


def _studio_answers() -> dict[str, tuple[int, str]]:
    base = "/Users/thestudio/gateway/layer-gateway/optillm-local"
    metadata = {STUDIO_VENV: {"site_packages": [f"{STUDIO_VENV}/lib/python3.11/site-packages"], "packages": {}}}
    metadata[STUDIO_VENV]["packages"] = {"transformers": "4.57.6", "optillm": "0.3.20"}
    return {
        "hostname": (0, "studio\n"),
        "uname -s": (0, "Linux\n"),
        "systemctl show": (0, (RECORDED / "lab-studio-systemctl-show-instances.txt").read_text()),
        "user-homes": (0, json.dumps(ACCOUNTS)),
        f"cat {base}/requirements.txt": (0, "optillm==0.3.20\ntransformers>=4.45,<5\n"),
        f"sudo -n cat {base}/high.env": (0, "HF_HUB_CACHE=/Users/thestudio/models/hf/hub\n"),
        f"sudo -n cat {base}/balanced.env": (0, "HF_HUB_CACHE=/Users/thestudio/models/hf/hub\n"),
        f"cat {STUDIO_VENV}/pyvenv.cfg": (0, PYVENV),
        "package-versions": (0, json.dumps(metadata)),
    }


@pytest.mark.parametrize("venv", [None, "layer-gateway/optillm-local/.venv"], ids=["host-names-it", "seed-relative"])
def test_the_pin_is_checked_in_the_venv_the_host_names(bare: Inventory, venv: str | None, tmp_path: Path) -> None:
    services = tuple(
        service.model_copy(update={"venv": venv}) if service.name == "optillm-local" else service
        for service in bare.services
    )
    inventory = bare.model_copy(update={"services": services})
    connection = Replay(inventory.host("studio"), _studio_answers())
    facts = gather(connection, inventory)  # type: ignore[arg-type]
    assert connection.commands_run == 2
    assert "package-versions" in connection.batches[1] and "package-versions" not in connection.batches[0]
    runtime = Runtime(inventory, AuditLog(tmp_path / "audit.jsonl", "test"))
    runtime.use_facts("studio", facts)
    try:
        pin = evaluate(REGISTRY.get("transformers-pin"), _case(runtime, "transformers-pin", "studio/optillm-local"))
        assert pin.outcome is Outcome.PASSED, (pin.summary, pin.details)
        source = pin.evidence["venv"]
        assert source.startswith(f"{STUDIO_VENV} (from ")
        if venv is None:
            assert "pyvenv.cfg" in source
        else:
            assert "under repo_root from " in source
        requirements = located_by(
            inventory, inventory.service("optillm-local"), facts, "layer-gateway/optillm-local/requirements.txt"
        )
        assert requirements is not None and requirements.startswith("repo_root /Users/thestudio/gateway from ")
    finally:
        runtime.close()


def test_a_path_outside_the_allow_list_grammar_is_reported_not_run(bare: Inventory) -> None:
    """What a host says is not trusted as a command: one refused path must not sink the batch."""
    answers = _mini_answers()
    recorded = (RECORDED / "lab-mini-systemctl-show-two-units.txt").read_text()
    answers["systemctl show"] = (0, recorded.replace("/srv/gateway", "/srv/gate,way"))
    connection = Replay(bare.host("mini"), answers)
    facts = gather(connection, bare)  # type: ignore[arg-type]
    assert connection.commands_run == 2
    router = facts.files["litellm-orch:layer-gateway/litellm-orch/config/router.yaml"]
    assert router.path == "/srv/gate,way/layer-gateway/litellm-orch/config/router.yaml"
    assert router.content is None and "allow-list" in (router.error or "")
    # The rest of round two still ran.
    assert facts.files["optillm-proxy:~/.optillm/proxy_config.yaml"].content is not None


def test_an_environment_file_outside_the_allow_list_grammar_is_reported_not_run(bare: Inventory) -> None:
    """A unit's EnvironmentFile= is the host's word too: refused alone, the rest of round two runs."""
    answers = _mini_answers()
    recorded = (RECORDED / "lab-mini-systemctl-show-two-units.txt").read_text()
    odd = "/etc/optillm-proxy/extra,env"
    answers["systemctl show"] = (
        0,
        recorded.replace(
            "EnvironmentFiles=/etc/optillm-proxy/env (ignore_errors=no)",
            f"EnvironmentFiles=/etc/optillm-proxy/env (ignore_errors=no)\nEnvironmentFiles={odd} (ignore_errors=no)",
        ),
    )
    connection = Replay(bare.host("mini"), answers)
    facts = gather(connection, bare)  # type: ignore[arg-type]
    assert connection.commands_run == 2
    refused = facts.files[f"envfile:{odd}"]
    assert refused.content is None and "allow-list" in (refused.error or "")
    assert facts.files["optillm-proxy:~/.optillm/proxy_config.yaml"].content is not None


def test_an_old_ss_star_is_read_with_the_family_the_kernel_gives_it_in_the_same_round(bare: Inventory) -> None:
    """CentOS 7's ss prints the IPv4 wildcard as '*': the kernel's tables, asked in round one
    with ss, say which family each '*' is (nothing is refused, and no third round)."""
    answers = _mini_answers()
    answers["sudo -n ss -Htlnp"] = (0, (RECORDED / "centos7-ss-ntl-legacy.txt").read_text())
    tcp = (RECORDED / "lab-mini-proc-net-tcp.txt").read_text()  # holds 0.0.0.0:22 (sshd)
    tcp6 = (RECORDED / "lab-mini-proc-net-tcp6.txt").read_text()  # holds [::]:22 (sshd)
    tcp6 += tcp6.splitlines()[1].replace(":0016 ", ":0050 ") + "\n"  # and [::]:80
    answers["cat /proc/net/tcp"] = (0, tcp)
    answers["cat /proc/net/tcp6"] = (0, tcp6)
    connection = Replay(bare.host("mini"), answers)
    facts = gather(connection, bare)  # type: ignore[arg-type]
    assert connection.commands_run == 2
    assert {"sudo -n ss -Htlnp", "cat /proc/net/tcp", "cat /proc/net/tcp6"} <= set(connection.batches[0])
    assert facts.listeners_error is None
    wildcards = {(item.family, item.address, item.dual_stack_known) for item in facts.listeners if item.port == 22}
    assert wildcards == {("ipv4", "0.0.0.0", True), ("ipv6", "::", False)}


# A directory-service account (LDAP, SSSD) the account listing does not hold: getpwent(3)
# enumerates only what each NSS source agrees to list, and SSSD lists nothing unless its
# domain sets enumerate = true (sssd.conf(5): default false). getpwnam(3) asks every source.
DIRECTORY_ACCOUNTS = {
    "": {"0": "root", "990": "litellm"},
    "~": {"root": {"home": "/root", "uid": 0}, "litellm": {"home": "/srv/gateway", "uid": 990}},
    "root": {"home": "/root", "uid": 0},
}


def _directory_runtime(
    inventory: Inventory, by_name: dict[str, object], tmp_path: Path
) -> tuple[HostFacts, Replay, Runtime]:
    answers = _mini_answers()
    answers["user-homes"] = (0, json.dumps(DIRECTORY_ACCOUNTS))
    answers["accounts-by-name"] = (0, json.dumps(by_name))
    connection = Replay(inventory.host("mini"), answers)
    facts = gather(connection, inventory)  # type: ignore[arg-type]
    runtime = Runtime(inventory, AuditLog(tmp_path / "audit.jsonl", "test"))
    runtime.use_facts("mini", facts)
    return facts, connection, runtime


def test_a_units_account_the_listing_lacks_is_asked_by_name(bare: Inventory, tmp_path: Path) -> None:
    """optillm-proxy's User=optillm is only in the directory: round two asks NSS by name, and the
    file under its home is read in the round after (only a host with such an account has one)."""
    home = {"optillm": {"home": "/var/lib/optillm", "uid": 991}}
    facts, connection, runtime = _directory_runtime(bare, home, tmp_path)
    try:
        assert connection.commands_run == 3
        assert "accounts-by-name" in connection.batches[1] and "accounts-by-name" not in connection.batches[0]
        assert connection.batches[2] == ["sudo -n cat /var/lib/optillm/.optillm/proxy_config.yaml"]
        assert facts.user_homes["optillm"] == "/var/lib/optillm" and facts.user_ids["optillm"] == 991
        assert facts.files["optillm-proxy:~/.optillm/proxy_config.yaml"].content is not None
        account = evaluate(REGISTRY.get("service-account"), _case(runtime, "service-account", "mini/optillm-proxy"))
        assert account.outcome is Outcome.PASSED, account.summary
    finally:
        runtime.close()


def test_an_account_no_account_database_knows_cannot_be_checked(bare: Inventory, tmp_path: Path) -> None:
    """getpwnam finds nothing either: the checks that need its home or uid say they could not
    check, naming the account; nothing is read under a guessed home, and no third round."""
    facts, connection, runtime = _directory_runtime(bare, {"optillm": None}, tmp_path)
    try:
        assert connection.commands_run == 2
        assert facts.files["optillm-proxy:~/.optillm/proxy_config.yaml"].path is None
        proxy = evaluate(
            REGISTRY.get("file-parses"),
            _case(runtime, "file-parses", "mini/optillm-proxy:~/.optillm/proxy_config.yaml"),
        )
        account = evaluate(REGISTRY.get("service-account"), _case(runtime, "service-account", "mini/optillm-proxy"))
        for result in (proxy, account):
            assert result.outcome is Outcome.BROKEN, result.summary  # could not check
            assert "no account database (NSS) knows the account 'optillm'" in result.render()
        # The listed account is not asked again.
        litellm = evaluate(REGISTRY.get("service-account"), _case(runtime, "service-account", "mini/litellm-orch"))
        assert litellm.outcome is Outcome.PASSED, litellm.summary
    finally:
        runtime.close()


# ss before -H existed (RHEL 6 / CentOS 7's iproute 3.10): the recorded refusal of the option.
SS_WITHOUT_H = (255, "", (RECORDED / "rhel6-ss-invalid-option-H.err").read_text())


def test_an_ss_without_h_leaves_the_listeners_to_the_kernels_tables(bare: Inventory) -> None:
    """ss refuses -H: the listeners come from /proc/net/tcp and tcp6 of the same round, with
    families, addresses and ports as the kernel gives them and no process; nothing refused."""
    answers: dict[str, tuple[int, str] | tuple[int, str, str]] = {**_mini_answers()}
    answers["sudo -n ss -Htlnp"] = SS_WITHOUT_H
    answers["cat /proc/net/tcp"] = (0, (RECORDED / "linux-proc-net-tcp-families.txt").read_text())
    answers["cat /proc/net/tcp6"] = (0, (RECORDED / "linux-proc-net-tcp6-families.txt").read_text())
    facts = gather(Replay(bare.host("mini"), answers), bare)  # type: ignore[arg-type]
    assert facts.listeners_error is None and facts.listeners is not None
    seen = {(item.family, item.address, item.port, item.dual_stack_known) for item in facts.listeners}
    assert seen == {
        ("ipv4", "127.0.0.1", 47201, True),
        ("ipv6", "::1", 47202, True),
        ("ipv4", "0.0.0.0", 47203, True),
        ("ipv6", "::", 47204, False),  # V6ONLY=1, but /proc cannot say so
        ("ipv6", "::", 47205, False),  # dual-stack: "may accept IPv4", never "IPv6 only"
        ("ipv6", "::ffff:127.0.0.1", 47206, True),
        ("ipv4", "0.0.0.0", 47207, True),
        ("ipv6", "::", 47207, False),
    }
    assert all(item.pid is None and item.process is None for item in facts.listeners)
    mapped = next(item for item in facts.listeners if item.port == 47206)
    assert mapped.is_loopback_only() and mapped.reachable_at("127.0.0.1")
    assert "does not support -H" in (facts.listeners_without_processes or "")


def test_without_ss_the_checks_that_need_the_owner_say_why_they_could_not(bare: Inventory, tmp_path: Path) -> None:
    """The lab Mini's recorded kernel tables (optillm-proxy on 127.0.0.1:4020), ss refusing -H:
    the bind is judged; who serves the port could not be checked, and says why."""
    answers: dict[str, tuple[int, str] | tuple[int, str, str]] = {**_mini_answers()}
    answers["sudo -n ss -Htlnp"] = SS_WITHOUT_H
    answers["cat /proc/net/tcp"] = (0, (RECORDED / "lab-mini-proc-net-tcp.txt").read_text())
    answers["cat /proc/net/tcp6"] = (0, (RECORDED / "lab-mini-proc-net-tcp6.txt").read_text())
    facts = gather(Replay(bare.host("mini"), answers), bare)  # type: ignore[arg-type]
    runtime = Runtime(bare, AuditLog(tmp_path / "audit.jsonl", "test"))
    runtime.use_facts("mini", facts)
    try:
        bound = evaluate(REGISTRY.get("port-bound"), _case(runtime, "port-bound", "mini/optillm-proxy:4020"))
        assert bound.outcome is Outcome.PASSED, bound.summary
        owner = evaluate(
            REGISTRY.get("port-served-by-unit"), _case(runtime, "port-served-by-unit", "mini/optillm-proxy:4020")
        )
        assert owner.outcome is Outcome.BROKEN, owner.summary
        assert owner.summary.startswith("could not check")
        assert "does not support -H" in owner.summary and "/proc/net/tcp*" in owner.summary
    finally:
        runtime.close()


def test_an_unknown_v6only_never_passes_a_bind_it_might_widen() -> None:
    """A [::] whose IPV6_V6ONLY is unknown (from /proc, or old ss) against a declared '::': it
    may accept IPv4 too, so the exact bind is not passed."""
    from conformance.contracts.port_bound import judge_binding
    from conformance.facts.parsers import Listener

    facts = HostFacts("mini")
    raw = (RECORDED / "linux-proc-net-tcp6-families.txt").read_text().splitlines()[3]  # [::]:47204
    facts.listeners = [Listener("::", 47204, "ipv6", False, None, None, raw, dual_stack_known=False)]
    lab = load_inventory(INVENTORY_DIR / "lab.yaml", environ={})
    port = next(item for item in lab.ports if item.port == 4000).model_copy(update={"port": 47204, "bind": "::"})
    assert judge_binding(port, facts).outcome is Outcome.BROKEN
