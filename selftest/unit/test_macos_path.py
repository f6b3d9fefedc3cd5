"""The macOS Studio path, proven on recorded real-format outputs (lsof, netstat -anv,
launchctl print, plists) replayed through the same gathering and checks as Linux.

The replaying connection is only a seam: the same gathering runs for real over SSH
against the Linux lab in selftest/e2e.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from conformance.contracts import (
    hf_cache_path,
    no_unexpected_listeners,
    port_bound,
    port_served_by_unit,
    reserved_port_free,
    unit_active,
)
from conformance.facts.environment import hf_cache_of, instance_environment
from conformance.facts.gather import gather
from conformance.inventory.loader import load_inventory
from conformance.results import Outcome
from conformance.transport import scripts
from conformance.transport.allowlist import check_command
from conformance.transport.connection import CommandResult
from selftest.conftest import INVENTORY_DIR

RECORDED = Path(__file__).resolve().parent.parent / "recorded"
LABEL = "com.example.optillm.local-high"
PLIST = f"/Users/tester/Library/LaunchAgents/{LABEL}.plist"

SITE = f"""
hosts:
  - name: studio
    address: 192.168.1.30
    hostname: studio
    ssh: {{user: monitor, known_hosts: /dev/null}}
services:
  - name: optillm-local
    state: enabled
    user: tester
    repo_root: /Users/tester/gateway
ports:
  - host: studio
    port: 4040
    model: mlx-community/Qwen2.5-0.5B-Instruct-4bit
    unit: {{manager: launchd, name: {LABEL}, path: {PLIST}, domain: gui/501}}
"""


def _name(argv: Sequence[str]) -> str:
    script = scripts.by_text(argv[2]) if argv[0] == "python3" else None
    return script.name if script is not None else " ".join(argv[:2])


class ReplayConnection:
    """Answers allow-listed commands from recorded outputs."""

    def __init__(self, record, answers: dict[str, tuple[int, str, str]]) -> None:
        self.record = record
        self.answers = answers
        self.commands_run = 0
        self.rounds = 0
        self.batches: list[list[list[str]]] = []
        self.seen: list[str] = []

    def run_batches(self, batches: Sequence[Sequence[Sequence[str]]]) -> list[list[CommandResult]]:
        self.rounds += 1
        self.batches.append([[_name(argv) for argv in commands] for commands in batches])
        return [self._answer(commands) for commands in batches]

    def run_batch(self, commands: Sequence[Sequence[str]]) -> list[CommandResult]:
        return self.run_batches([commands])[0]

    def _answer(self, commands: Sequence[Sequence[str]]) -> list[CommandResult]:
        self.commands_run += 1
        results = []
        for argv in commands:
            check_command(argv)
            key = " ".join(argv[:3]) if argv[0] != "python3" else scripts.by_text(argv[2]).name
            self.seen.append(key)
            code, out, err = self.answers.get(key, (1, "", f"no recording for {key}"))
            if key == "hf-cache-listing" and code == 0:  # the script lists only the caches it is given
                out = json.dumps({cache: entry for cache, entry in json.loads(out).items() if cache in argv[3:]})
            results.append(CommandResult(tuple(argv), code, out, err))
        return results


@pytest.fixture
def studio(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    inventory = load_inventory(INVENTORY_DIR / "gateway.yaml", site=site, environ={})
    read = lambda name: (RECORDED / name).read_text()  # noqa: E731
    answers = {
        "hostname": (0, "studio.local\n", ""),
        "uname -s": (0, "Darwin\n", ""),
        "ps -axo pid=,ppid=,uid=,comm=": (
            0,
            "  1     0     0 /sbin/launchd\n5150     1   501 /Users/tester/venvs/optillm-local/bin/python3.11\n",
            "",
        ),
        "lsof -nP -iTCP": (0, read("macos-lsof-studio.txt"), ""),
        "netstat -anv -p": (0, read("macos-netstat-anv-sonoma.txt"), ""),
        f"launchctl print gui/501/{LABEL}": (0, read("macos-launchctl-print-gui.txt"), ""),
        "plutil -convert xml1": (0, read("plist-optillm-local-high.plist"), ""),
        "cat /Users/tester/gateway/layer-gateway/optillm-local/requirements.txt": (
            0,
            "optillm==0.3.20\ntransformers<5\n",
            "",
        ),
        "user-homes": (
            0,
            json.dumps({"tester": {"home": "/Users/tester", "uid": 501}, "root": {"home": "/var/root", "uid": 0}}),
            "",
        ),
        "package-versions": (
            0,
            json.dumps(
                {
                    "/Users/tester/gateway/layer-gateway/optillm-local/.venv": {
                        "site_packages": [
                            "/Users/tester/gateway/layer-gateway/optillm-local/.venv/lib/python3.11/site-packages"
                        ],
                        "packages": {"transformers": "4.57.6", "optillm": "0.3.20"},
                    }
                }
            ),
            "",
        ),
        "hf-cache-listing": (
            0,
            json.dumps(
                {
                    "/Users/thestudio/models/hf/hub": {
                        "exists": True,
                        "models": {"mlx-community/Qwen2.5-0.5B-Instruct-4bit": True},
                    },
                    "/Users/tester/.cache/huggingface/hub": {"exists": True, "models": {}},
                }
            ),
            "",
        ),
    }
    connection = ReplayConnection(inventory.host("studio"), answers)
    facts = gather(connection, inventory)
    return inventory, facts, connection


def test_gathering_is_two_round_trips_of_allowed_commands(studio):
    _, facts, connection = studio
    assert connection.rounds == 2
    # Round one: the declared HF cache is listed at once; the venv scan runs in a channel of
    # its own, at once with the rest.
    first_round, second_round = connection.batches
    assert len(first_round) == 2 and first_round[1] == ["package-versions"]
    assert "hf-cache-listing" in first_round[0]
    # Round two lists only the cache the instances' environment points at instead.
    assert second_round == [["hf-cache-listing"]]
    assert set(facts.hf_caches) == {"/Users/thestudio/models/hf/hub", "/Users/tester/.cache/huggingface/hub"}
    assert connection.commands_run == 3
    assert facts.os_name == "Darwin" and facts.listeners is not None
    assert "launchctl print gui/501/com.example.optillm.local-high" in connection.seen


def test_launchd_unit_is_read_with_exact_label(studio):
    inventory, facts, _ = studio
    unit = inventory.ports[2].unit
    result = unit_active.judge_unit(unit, facts)
    assert result.outcome is Outcome.PASSED, result.render()
    # The recorded job runs from the tester's LaunchAgents; RunAtLoad makes it start at login.
    assert facts.units[LABEL].active and facts.units[LABEL].main_pid == 5150
    assert facts.units[LABEL].enabled is True


def test_launchd_job_not_loaded_is_a_violation(studio):
    inventory, _, connection = studio
    connection.answers[f"launchctl print gui/501/{LABEL}"] = (
        113,
        "",
        (RECORDED / "macos-launchctl-print-not-found.txt").read_text(),
    )
    facts = gather(connection, inventory)
    result = unit_active.judge_unit(inventory.ports[2].unit, facts)
    assert result.outcome is Outcome.VIOLATED and "is not loaded" in result.render()


def test_macos_listeners_drift_is_found(studio):
    inventory, facts, _ = studio
    high = next(port for port in inventory.ports if port.port == 4040)
    bound = port_bound.judge_binding(high, facts)
    assert bound.outcome is Outcome.VIOLATED and "declared 0.0.0.0 only" in bound.summary
    reserved = reserved_port_free.judge_reserved(next(port for port in inventory.ports if port.port == 4042), facts)
    assert reserved.outcome is Outcome.VIOLATED and "taken by node[999] on [::1]" in reserved.summary
    strays = no_unexpected_listeners.judge_listeners(inventory.host("studio"), inventory, facts)
    assert strays.outcome is Outcome.VIOLATED
    assert "49152" in strays.summary and "7000" in strays.summary and ":22 " not in strays.summary


def test_macos_dual_stack_comes_from_netstat_tcp46(studio):
    _, facts, _ = studio
    by_port = {(item.port, item.family): item for item in facts.listeners}
    assert by_port[(4041, "ipv4")].address == "127.0.0.1"  # lsof says 127.0.0.1 for the high/balanced pair


def test_hf_cache_from_launchd_environment(studio):
    inventory, facts, _ = studio
    service = inventory.service("optillm-local")
    port = next(port for port in inventory.ports if port.port == 4040)
    env = instance_environment(facts, service, port)
    assert env["HF_HOME"] == "/Users/tester/.cache/huggingface"
    cache = hf_cache_of(env, facts, service)
    result = hf_cache_path.judge_cache(service, port, cache, facts)
    assert result.outcome is Outcome.VIOLATED
    assert "uses HF cache /Users/tester/.cache/huggingface/hub, not /Users/thestudio/models/hf/hub" in result.summary


def test_listener_belongs_to_launchd_job(studio):
    inventory, facts, _ = studio
    port = next(port for port in inventory.ports if port.port == 4040)
    result = port_served_by_unit.judge_owner(port, port.unit, facts)
    assert result.outcome is Outcome.PASSED, result.render()


# --- plists that cannot be read, and launchctl print blocks that cannot be placed ------------

REAL_BINARY_PLIST = "macos-binary-plist-loginitems.plist"  # written by macOS (see recorded/README.md)


def _unit_result(studio, plutil_answer):
    inventory, _, connection = studio
    connection.answers["plutil -convert xml1"] = plutil_answer
    facts = gather(connection, inventory)
    return unit_active.judge_unit(inventory.ports[2].unit, facts), facts


def test_binary_plist_that_arrives_as_text_is_could_not_check(studio):
    raw = (RECORDED / REAL_BINARY_PLIST).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the recording is what it claims: bytes that are not text
    # What the transport would make of it (it decodes output as UTF-8, replacing what is not).
    result, facts = _unit_result(studio, (0, raw.decode("utf-8", "replace"), ""))
    assert result.outcome is Outcome.BROKEN, result.render()
    assert PLIST in result.render() and "binary plist arrived as text" in result.render()
    assert any(PLIST in problem for problem in facts.problems)


def test_plist_plutil_cannot_convert_is_could_not_check(studio):
    stderr = f"{PLIST}: Property List error: Unexpected character b at line 1 / JSON error: Invalid value.\n"
    result, _ = _unit_result(studio, (1, "", stderr))
    assert result.outcome is Outcome.BROKEN, result.render()
    assert f"cannot read {PLIST}" in result.render() and "Property List error" in result.render()


def test_damaged_plist_never_crashes_the_gathering(studio):
    # A real launchd plist (mDNSResponder's) with a <key> before its <dict>: plistlib's XML
    # reader raises IndexError there, which used to escape the parser and end the gathering.
    real = (RECORDED / "macos-launchd-plist-mdnsresponder.plist").read_text()
    damaged = real.replace('<plist version="1.0">\n<dict>', '<plist version="1.0">\n<key>Label</key>\n<dict>', 1)
    result, _ = _unit_result(studio, (0, damaged, ""))
    assert result.outcome is Outcome.BROKEN, result.render()
    assert PLIST in result.render() and "not a valid plist" in result.render()


def test_launchctl_print_block_that_cannot_be_placed_is_named_in_the_evidence(studio):
    inventory, _, connection = studio
    # The recorded job, with the event triggers of a real macOS 27 capture (an XPC array in the
    # descriptor) and one line in that array that launchctl's grammar does not place.
    real = (RECORDED / "macos-27-launchctl-print-gui-watchpaths-array.txt").read_text()
    triggers = real[real.index("\tevent triggers = {\n") : real.index("\tevent channels = {\n")]
    triggers = triggers.replace('\t\t\t\t"WatchPaths" => [\n', '\t\t\t\t"WatchPaths" => [\n\t\t\t\t\t\t\tgarbage\n')
    recorded = (RECORDED / "macos-launchctl-print-gui.txt").read_text()
    printed = recorded.replace("\tspawn type = ", triggers + "\tspawn type = ", 1)
    connection.answers[f"launchctl print gui/501/{LABEL}"] = (0, printed, "")
    facts = gather(connection, inventory)
    unit = facts.units[LABEL]
    assert unit.active and unit.main_pid == 5150 and unit.environment["HF_HOME"] == "/Users/tester/.cache/huggingface"
    result = unit_active.judge_unit(inventory.ports[2].unit, facts)
    assert result.outcome is Outcome.PASSED, result.render()
    line_no = printed.splitlines().index("\t\t\t\t\t\t\tgarbage") + 1
    partial = result.evidence["partial read"]
    assert "block 'event triggers > com.apple.launchd.WatchPaths > descriptor > \"WatchPaths\"'" in partial
    assert f"line {line_no}" in partial
    port = next(port for port in inventory.ports if port.port == 4040)
    owner = port_served_by_unit.judge_owner(port, port.unit, facts)
    assert owner.evidence["partial read"] == partial


def test_not_found_text_on_stdout_is_not_loaded(studio):
    inventory, _, connection = studio
    stderr_text = (RECORDED / "macos-launchctl-print-not-found.txt").read_text()
    connection.answers[f"launchctl print gui/501/{LABEL}"] = (0, stderr_text, "")
    facts = gather(connection, inventory)
    result = unit_active.judge_unit(inventory.ports[2].unit, facts)
    assert result.outcome is Outcome.VIOLATED and "is not loaded" in result.render()
