"""The plugin, driven through real pytest runs (pytester), as users run it."""

from __future__ import annotations

import json

import pytest

from conformance.bulletin.store import read_entries
from selftest.conftest import unreachable_site

SEED_IDS = [
    "mini/litellm-orch:4000",
    "mini/optillm-proxy:4020",
    "studio/optillm-local:4040",
    "studio/optillm-local:4041",
    "studio/optillm-local:4042",
]


def _collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_collection_covers_every_service_port_health_endpoint_and_contract(harness_project):
    result = harness_project.runpytest("--collect-only", "-q", "--inventory", "inventory/gateway.yaml")
    assert result.ret == 0
    ids = "\n".join(_collected(result))
    for port_id in SEED_IDS:
        assert port_id in ids, port_id
    for service in ("litellm-orch", "optillm-proxy", "optillm-local", "system-monitor"):
        assert f"/{service}" in ids, service
    for path in ("/health]", "/health/readiness]", "/health/liveliness]", "/v1/models]"):
        assert path in ids, path
    for contract in (
        "clients-call-litellm-only",
        "optillm-never-exposed",
        "optillm-upstream-litellm",
        "no-routing-loop",
        "gateway-never-runs-inference",
        "showroom-backroom",
        "transformers-pin",
        "hf-cache-path",
        "hf-token-for-gated-pulls",
        "dependencies-reachable",
    ):
        assert f"test_{contract.replace('-', '_')}[" in ids, contract
    assert "[3]" not in ids and "[0]" not in ids, "ids are readable, not indices"


def test_collection_is_identical_with_xdist(harness_project):
    plain = harness_project.runpytest("--collect-only", "-q")
    again = harness_project.runpytest("--collect-only", "-q")
    assert _collected(plain) == _collected(again)
    assert _collected(plain) == sorted(_collected(plain), key=_collected(plain).index)
    distributed = harness_project.runpytest_subprocess(
        "-n",
        "2",
        "--conformance-force-workers",
        "--inventory",
        "inventory/gateway.yaml",
        "-p",
        "no:randomly",
        "--co",
        "-q",
    )
    # xdist refuses to run when workers collect differently; --co on the controller lists
    # nothing itself, so compare each worker's count with the plain collection.
    assert distributed.ret == 0, distributed.stdout.str()
    assert f"{len(_collected(plain))} tests collected" in plain.stdout.str() or "tests collected" in plain.stdout.str()


def test_collection_does_no_network_io(harness_project, monkeypatch):
    # Addresses that would hang for the whole connect timeout if anything tried to reach them.
    monkeypatch.setenv("CONFORMANCE_HOST_MINI_ADDRESS", "203.0.113.250")
    monkeypatch.setenv("CONFORMANCE_HOST_STUDIO_ADDRESS", "203.0.113.251")
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("collection tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    result = harness_project.runpytest("--collect-only", "-q")
    assert result.ret == 0
    assert not (harness_project.path / "reports" / "audit.jsonl").exists()


def test_broken_inventory_is_a_usage_error(harness_project):
    broken = harness_project.path / "inventory" / "broken.yaml"
    text = (harness_project.path / "inventory" / "gateway.yaml").read_text()
    broken.write_text(text.replace("    exposure: local", "    exposre: local", 1))
    result = harness_project.runpytest("--inventory", str(broken))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "broken.yaml:" in result.stderr.str() and "ports[1].exposre" in result.stderr.str()
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()


def test_inventory_from_environment_variable(harness_project, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_INVENTORY", "inventory/does-not-exist.yaml")
    result = harness_project.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "does-not-exist.yaml: file not found" in result.stderr.str()


def test_host_and_service_selection_compose_with_k_and_m(harness_project):
    result = harness_project.runpytest(
        "--collect-only",
        "-q",
        "--conformance-host",
        "mini",
        "--conformance-service",
        "optillm-proxy",
        "-m",
        "hosts",
        "-k",
        "bound",
    )
    ids = _collected(result)
    assert ids == ["tests_hosts/test_hosts.py::test_port_bound[mini/optillm-proxy:4020]"]


def test_disabled_and_planned_services_are_skipped_with_reason(harness_project):
    result = harness_project.runpytest(
        "-q", "-rs", "--conformance-service", "optillm-local", "-k", "bound or transformers_pin"
    )
    result.assert_outcomes(skipped=3)
    assert "optillm-local is disabled: currently disabled by default (seed)" in result.stdout.str()


def test_unreachable_host_is_one_error_cause_not_a_failure(harness_project, monkeypatch, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    monkeypatch.setenv("CONFORMANCE_HOST_MINI_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("CONFORMANCE_HOST_MINI_USER", "nobody")
    monkeypatch.setenv("CONFORMANCE_HOST_MINI_KNOWN_HOSTS", str(known_hosts))
    # Port 1 on loopback refuses at once: an unreachable host without waiting for a timeout.
    site = tmp_path / "site.yaml"
    site.write_text("hosts:\n  - name: mini\n    ssh: {port: 1}\n")
    result = harness_project.runpytest(
        "-q",
        f"--site={site}",
        "--conformance-host",
        "mini",
        "-m",
        "hosts",
        f"--bulletin={tmp_path / 'bulletin.jsonl'}",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes.get("error", outcomes.get("errors", 0)) >= 5
    assert "cannot reach 127.0.0.1:1" in result.stdout.str()
    audit = (harness_project.path / "reports" / "audit.jsonl").read_text().splitlines()
    assert sum('"kind": "connect"' in line for line in audit) == 1, "one connect attempt, then the cause is reused"
    bulletin = read_entries(tmp_path / "bulletin.jsonl")  # the escalations, bookkeeping left out
    assert len(bulletin) == 1 and bulletin[0]["fingerprint"] == "gateway/host-identity/mini/-"
    junit = (harness_project.path / "reports" / "junit.xml").read_text()
    assert "<failure" not in junit and junit.count("<error") >= 5
    assert 'failures="0"' in junit
    # Each problem's message leads with its kind's marker, which the Allure categories match.
    assert "[blocked by root cause]" in junit and "[could not check]" in junit
    allure_results = harness_project.path / "reports" / "allure-results"
    categories = json.loads((allure_results / "categories.json").read_text())
    assert [category["name"] for category in categories][:3] == [
        "Contract violated",
        "Could not check",
        "Blocked by a root cause",
    ]
    assert json.loads((allure_results / "executor.json").read_text())["name"]


def test_two_runs_at_once_write_each_entry_once(harness_project, tmp_path):
    """Two -n 2 runs against one bulletin, both finding the same unreachable hosts."""
    import subprocess
    import sys

    site = unreachable_site(tmp_path)
    bulletin = tmp_path / "bulletin.jsonl"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        "2",
        "--conformance-force-workers",
        "-q",
        "-p",
        "no:randomly",
        f"--site={site}",
        f"--bulletin={bulletin}",
        "-m",
        "hosts or contracts",
    ]
    runs = [
        subprocess.Popen(command, cwd=harness_project.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert all(run.returncode == 1 for run in runs), outputs
    lines = bulletin.read_text().splitlines()
    import json

    entries = [json.loads(line) for line in lines]  # every line whole
    fingerprints = [entry["fingerprint"] for entry in entries if entry["event"] == "opened"]
    assert sorted(fingerprints) == ["gateway/host-identity/mini/-", "gateway/host-identity/studio/-"], entries


def test_a_run_that_cannot_write_its_bulletin_does_not_exit_zero(harness_project, tmp_path):
    """Every check skipped (exit 0 on its own), but the bulletin's directory is a file."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = harness_project.runpytest(
        "-q", "--conformance-service", "optillm-local", "-k", "bound", f"--bulletin={blocker / 'bulletin.jsonl'}"
    )
    result.assert_outcomes(skipped=2)
    assert "bulletin NOT written" in result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR


def test_yaml_alias_bomb_inventory_is_a_usage_error(harness_project):
    from selftest.unit.test_inventory import BILLION_LAUGHS

    bomb = harness_project.path / "inventory" / "bomb.yaml"
    text = (harness_project.path / "inventory" / "gateway.yaml").read_text()
    bomb.write_text(text + "\nnotes_bomb:\n" + "".join(f"  {line}\n" for line in BILLION_LAUGHS.splitlines()))
    result = harness_project.runpytest("--inventory", str(bomb))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "alias bomb" in result.stderr.str() and len(result.stderr.str()) < 5000


KILL_WORKER_CONFTEST = """
import os
import signal


def pytest_runtest_setup(item):
    # kill -9 of the worker process while it runs one of the named host's tests
    host = os.environ.get("KILL_WORKER_ON_HOST")
    if host and hasattr(item.config, "workerinput") and f"[{host}" in item.nodeid:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_worker_killed_mid_run_loses_no_bulletin_entry(harness_project, tmp_path):
    """Open entries whose checks died with a worker stay open: a crash is not a resolution."""
    import os
    import subprocess
    import sys

    with (harness_project.path / "conftest.py").open("a") as handle:
        handle.write(KILL_WORKER_CONFTEST)
    site, bulletin = unreachable_site(tmp_path), tmp_path / "bulletin.jsonl"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", f"--site={site}", f"--bulletin={bulletin}"]

    def run(*args: str, kill: str | None = None) -> str:
        env = {key: value for key, value in os.environ.items() if key != "KILL_WORKER_ON_HOST"}
        if kill:
            env["KILL_WORKER_ON_HOST"] = kill
        done = subprocess.run(
            [*command, *args], cwd=harness_project.path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1, done.stdout + done.stderr
        return done.stdout

    run("-n", "0")
    from conformance.bulletin.store import read_entries

    opened = {entry["fingerprint"] for entry in read_entries(bulletin)}  # escalations, not bookkeeping
    assert opened == {"gateway/host-identity/mini/-", "gateway/host-identity/studio/-"}
    output = run("-n", "2", "--conformance-force-workers", "--max-worker-restart=0", kill="mini")
    assert "crashed" in output, output
    events = [(entry["event"], entry["fingerprint"]) for entry in read_entries(bulletin)]
    assert [event for event, _ in events].count("resolved") == 0, events
    assert len(events) == 2, events


def test_workers_read_the_controllers_facts_one_connection_per_host(harness_project, tmp_path):
    """-n 3: each host is reached once, by the controller; the private snapshot is gone after."""
    import json
    import os
    import subprocess
    import sys

    site, scratch = unreachable_site(tmp_path), tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "pytest", "-p", "no:randomly", f"--site={site}", "-m", "hosts or contracts"]
    env = {**os.environ, "TMPDIR": str(scratch)}
    done = subprocess.run(
        [*command, "-n", "3", "--conformance-force-workers"],
        cwd=harness_project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "3 workers" in done.stdout, done.stdout
    audit = [json.loads(line) for line in (harness_project.path / "reports" / "audit.jsonl").read_text().splitlines()]
    connects = sorted(entry["host"] for entry in audit if entry["kind"] == "connect")
    assert connects == ["mini", "studio"], audit
    assert len({entry["pid"] for entry in audit}) == 1
    assert "could not be checked" in done.stdout
    assert not list(scratch.iterdir()), "the snapshot directory is removed at the end of the run"
    auto = subprocess.run(
        [*command, "-n", "auto"], cwd=harness_project.path, env=env, capture_output=True, text=True, timeout=120
    )
    assert "-n auto: the " in auto.stdout and "checks run in this process" in auto.stdout, auto.stdout
    assert " workers [" not in auto.stdout, auto.stdout
    # More workers than hosts, asked out of habit: the plugin still runs the checks here.
    four = subprocess.run(
        [*command, "-n", "4"], cwd=harness_project.path, env=env, capture_output=True, text=True, timeout=120
    )
    assert "-n 4: the " in four.stdout and " workers [" not in four.stdout, four.stdout


_WHEN_GATHERING_STARTED = """
import os

import pytest

from conformance.plugin import PREFETCH_KEY


@pytest.hookimpl(trylast=True)
def pytest_load_initial_conftests(early_config):
    # After the plugin's: the command line is pre-parsed, pytest has read nothing else yet.
    with open(os.environ["GATHERING_REPORT"], "a") as handle:
        handle.write(f"at-preparse={PREFETCH_KEY in early_config.stash}\\n")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    # After every wrapper's first half (the plugin's), before pytest configures the plugins.
    with open(os.environ["GATHERING_REPORT"], "a") as handle:
        handle.write(f"before-configure={PREFETCH_KEY in config.stash}\\n")


def pytest_unconfigure(config):
    import sys

    with open(os.environ["GATHERING_REPORT"], "a") as handle:
        handle.write(f"store-imported={'conformance.store.session' in sys.modules}\\n")
"""


def _gathering_report(harness_project, monkeypatch, tmp_path, *args: str) -> list[str]:
    report = tmp_path / "gathering.txt"
    monkeypatch.setenv("GATHERING_REPORT", str(report))
    # When the harness's own tests run under xdist, the run below would inherit the marker
    # of an xdist worker and, rightly, never gather.
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    harness_project.makepyfile(when_gathering_started=_WHEN_GATHERING_STARTED)
    harness_project.runpytest_subprocess(
        "-p",
        "when_gathering_started",
        f"--site={unreachable_site(tmp_path)}",
        "--rootdir",
        str(harness_project.path),
        *args,
    )
    return report.read_text().splitlines()


def test_a_single_process_run_starts_gathering_before_pytest_configures(harness_project, monkeypatch, tmp_path):
    # The plan is known once the options are parsed: the hosts' answers then overlap with
    # configuring the other plugins and collecting.
    lines = _gathering_report(harness_project, monkeypatch, tmp_path, "-n", "0", "--conformance-host", "mini")
    # Started as soon as pytest has pre-parsed the command line, before it reads the rest.
    assert lines[:2] == ["at-preparse=True", "before-configure=True"]
    audit = (harness_project.path / "reports" / "audit.jsonl").read_text().splitlines()
    assert sum('"kind": "connect"' in line for line in audit) == 1


def test_a_run_narrowed_by_keyword_plans_from_what_was_collected(harness_project, monkeypatch, tmp_path):
    lines = _gathering_report(harness_project, monkeypatch, tmp_path, "-n", "0", "-k", "host_identity and mini")
    assert lines[:2] == ["at-preparse=False", "before-configure=False"]
    audit = (harness_project.path / "reports" / "audit.jsonl").read_text().splitlines()
    assert [line for line in audit if '"kind": "connect"' in line and '"host": "mini"' in line]
    assert not [line for line in audit if '"host": "studio"' in line], "only the collected tests' host"


def test_tests_that_name_no_host_never_load_the_store(harness_project, monkeypatch, tmp_path):
    harness_project.makepyfile(test_plain="def test_plain():\n    assert True\n")
    lines = _gathering_report(harness_project, monkeypatch, tmp_path, "-n", "0", "test_plain.py")
    assert lines == ["at-preparse=False", "before-configure=False", "store-imported=False"]
