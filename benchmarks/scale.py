"""Benchmark: full-suite wall time against host count (2, 10, 22 hosts) with pytest -n auto.

The two lab hosts (gc-mini, gc-studio) plus 0, 8 or 20 scale hosts (`conformance lab
scale up`: minimal systemd + sshd hosts, each with one stand-in listener), described in
inventories generated here that extend inventory/lab.yaml. Each figure is the median of
several runs; the ratio is to the 2-host time. The harness gathers every host once,
concurrently, in the process that runs the tests (``-n auto`` starts no workers), so the
time should grow with the local CPU each host costs, not with the number of checks.
As in benchmarks/run.py, the runs use Python's bytecode cache, start after one unmeasured
warm-up round, and each host count keeps its reports folder from run to run. From the
per-host costs measured here (wall time, and the CPU time of the run's processes), it
prints what 200 hosts would take and which limit is reached first. Run as root:

    .venv/bin/python benchmarks/scale.py [--runs 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import lab_up, secrets_env  # noqa: E402
from lab import scale as lab_scale  # noqa: E402
from lab.config import state_dir  # noqa: E402

LAB_INVENTORY = ROOT / "inventory" / "lab.yaml"
HOST_COUNTS = (2, 10, 22)
MAIN_HOSTS = 2
SCALE_GOAL = 1.15  # the largest run against the machine-CPU floor
SUITE_TIMEOUT = 1200
# Variables that would silently amend the generated inventory or move the outputs.
SCRUBBED_ENV = re.compile(r"^CONFORMANCE_(SITE|INVENTORY|REPORTS|BULLETIN|HOST_.*)$")


def scale_inventory(extra: int) -> dict[str, object]:
    """The lab inventory plus scale hosts s01..s<extra>, as a document that extends it."""
    lab_state = state_dir()
    identity = str(lab_state / "monitor_ed25519")
    hosts: list[dict[str, object]] = [
        # The lab's own relative key paths (../.lab/...) are resolved by the loader against
        # the *extending* file, i.e. this temp dir, not against inventory/lab.yaml (a harness
        # bug, reported with this benchmark); absolute paths here keep the mini and studio
        # records pointing at the real files.
        {"name": name, "ssh": {"identity_file": identity, "known_hosts": str(lab_state / "known_hosts")}}
        for name in ("mini", "studio")
    ]
    services: list[dict[str, object]] = []
    ports: list[dict[str, object]] = []
    checks: list[dict[str, object]] = []
    for index in range(1, extra + 1):
        host = lab_scale.scale_host(index)
        service = f"standin-{host.name}"
        hosts.append(
            {
                "name": host.name,
                "title": f"Scale stand-in host {host.name}",
                "role": "gateway",
                "os": "linux",
                "service_manager": "systemd",
                "address": host.addr,
                "hostname": host.name,
                "stand_in": "Minimal lab host for the scale benchmark: systemd, sshd and one stand-in listener.",
                "ssh": {
                    "user": "monitor",
                    "identity_file": identity,
                    "known_hosts": str(lab_scale.known_hosts_path()),
                    # ss -p needs root for the process names; sudoers allows exactly that.
                    "sudo": True,
                },
                "allowed_listeners": [{"port": 22, "reason": "SSH for administration and for this monitor."}],
            }
        )
        services.append(
            {
                "name": service,
                "title": f"Stand-in listener on {host.name}",
                "kind": "generic",
                "host": host.name,
                "tier": "tools",
                "role": "Stand-in listener (an empty directory over HTTP)",
                "owner": "gateway-agent",
                "user": lab_scale.STANDIN_USER,
                "unit": {
                    "manager": "systemd",
                    "name": lab_scale.STANDIN_UNIT,
                    "path": lab_scale.STANDIN_UNIT_PATH,
                },
            }
        )
        ports.append(
            {
                "port": lab_scale.STANDIN_PORT,
                "host": host.name,
                "service": service,
                "bind": "0.0.0.0",
                "exposure": "lan",
            }
        )
        checks.append(
            {
                "id": f"{service}-root",
                "service": service,
                "port": lab_scale.STANDIN_PORT,
                "path": "/",
                "vantage": "lan",
                "expect_status": [200],
            }
        )
    document: dict[str, object] = {"extends": str(LAB_INVENTORY), "hosts": hosts}
    if extra:
        document.update(services=services, ports=ports, health_checks=checks)
    return document


def write_inventory(folder: Path, total: int) -> Path:
    path = folder / f"scale-{total}.yaml"
    header = f"# Generated by benchmarks/scale.py: the lab plus {total - MAIN_HOSTS} scale host(s).\n"
    path.write_text(header + yaml.safe_dump(scale_inventory(total - MAIN_HOSTS), sort_keys=False))
    return path


def check_inventory(path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "import sys; from conformance.cli import main; sys.exit(main())",
        "inventory",
        "check",
        str(path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SystemExit(f"generated inventory {path} is invalid:\n{done.stdout}{done.stderr}")
    print(done.stdout.strip())


def machine_busy_seconds() -> float:
    """CPU time every core of this machine has spent busy since boot (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class SuiteRun:
    seconds: float
    cpu_seconds: float
    # What the whole machine spent during the run: the run's processes, the lab hosts
    # (sshd, the commands, the services answering probes) and anything else running.
    machine_cpu_seconds: float
    code: int
    tests: int
    failed: int
    errors: int
    workers: int
    gather_seconds: float  # one host's gathering (connect and its executions), median over hosts
    output: str


def suite_run(inventory: Path, reports: Path, env: dict[str, str]) -> SuiteRun:
    # "-c pyproject.toml": pytest picks its rootdir and ini file from the path-like
    # arguments, option values included; with the inventory and the reports both in a temp
    # dir it would settle there, lose testpaths and markers, and collect the whole checkout.
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(ROOT / "pyproject.toml"),
        "-n",
        "auto",
        "-q",
        "-p",
        "no:randomly",
        "--inventory",
        str(inventory),
        "--reports-dir",
        str(reports),
        "--bulletin",
        str(reports / "bulletin.jsonl"),
    ]
    started, busy = time.monotonic(), machine_busy_seconds()
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            raise
        seconds = time.monotonic() - started
        machine_cpu = machine_busy_seconds() - busy
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    suite = ET.parse(reports / "junit.xml").getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    # Processes that opened an SSH connection: the one that gathers, whatever the workers.
    audit = reports / "audit.jsonl"
    entries = [json.loads(line) for line in audit.read_text().splitlines()] if audit.is_file() else []
    last_run = entries[-1]["run"] if entries else None
    workers = {entry["pid"] for entry in entries if entry["run"] == last_run}
    per_host: dict[str, float] = {}
    for entry in entries:
        if entry["run"] == last_run:
            per_host[entry["host"]] = per_host.get(entry["host"], 0.0) + float(entry["seconds"] or 0.0)
    # pytest's own final line, not junit: there an error raised in a test's call phase
    # counts as a failure, while pytest (and the harness) report it as an error.
    tail = text.strip().splitlines()[-1] if text.strip() else ""
    failed, errors = (re.search(rf"(\d+) {word}", tail) for word in ("failed", "error"))
    return SuiteRun(
        seconds,
        usage.ru_utime + usage.ru_stime,
        machine_cpu,
        process.returncode,
        int(suite.get("tests", 0)),
        int(failed.group(1)) if failed else 0,
        int(errors.group(1)) if errors else 0,
        len(workers),
        statistics.median(per_host.values()) if per_host else 0.0,
        text,
    )


def problem_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]


def on_scale_host(line: str) -> bool:
    """A FAILED/ERROR line about a scale host (their case ids start with the host name)."""
    return re.search(r"\[(?:[a-z-]+/)?s\d{2}[/\]]", line) is not None


def main_lab_drifts() -> list[str]:
    """Drifts applied to the main lab (by someone else's tests): they explain its failures."""
    try:
        return [d["name"] for d in json.loads((state_dir() / "state.json").read_text()).get("drifts", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def print_projection(results: dict[int, list[SuiteRun]], hosts: int = 200) -> None:
    """What ``hosts`` hosts would take, from the measured cost of each host beyond the first two.

    Gathering is I/O in threads (at most PREFETCH_THREADS hosts at once), so a host's wall
    time mostly overlaps; what does not overlap is the CPU each host costs the one process
    that runs the checks (handshake, parsing, its checks, the sinks). Beyond the workers
    threshold the plugin starts workers, which share the checking but not the gathering.
    """
    from conformance.runtime import PREFETCH_THREADS
    from conformance.workers import WORKER_START_SECONDS, choose, usable_cpus

    small, large = min(HOST_COUNTS), max(HOST_COUNTS)
    wall = {total: statistics.median(r.seconds for r in results[total]) for total in (small, large)}
    cpu = {total: statistics.median(r.cpu_seconds for r in results[total]) for total in (small, large)}
    tests = {total: results[total][0].tests for total in (small, large)}
    extra = large - small
    wall_per_host = (wall[large] - wall[small]) / extra
    cpu_per_host = (cpu[large] - cpu[small]) / extra
    checks_per_host = (tests[large] - tests[small]) / extra
    checks = int(tests[small] + (hosts - small) * checks_per_host)
    cpus = usable_cpus()
    workers = choose("auto", checks, cpus)
    serial_cpu = cpu[small] + (hosts - small) * cpu_per_host
    waves = -(-hosts // PREFETCH_THREADS)
    gather = statistics.median(r.gather_seconds for r in results[large])
    io_seconds = waves * gather
    print()
    print(
        f"per extra host: {wall_per_host * 1000:.0f} ms wall, {cpu_per_host * 1000:.0f} ms CPU of the run's "
        f"process, {checks_per_host:.1f} checks; one host's gathering takes {gather * 1000:.0f} ms (median)"
    )
    print(
        f"{hosts} hosts on this machine ({cpus} CPUs), on paper: {checks} checks; about "
        f"{wall[small] + (hosts - small) * wall_per_host:.0f} s at the measured wall time per host; "
        f"{serial_cpu:.0f} s of CPU in the process that gathers and checks; the hosts' answers "
        f"{io_seconds:.1f} s ({waves} waves of at most {PREFETCH_THREADS} hosts); "
        f"-n auto would start {workers} workers ({WORKER_START_SECONDS:g} s of start-up each)"
    )
    limit = "the CPU of that one process" if serial_cpu > io_seconds else "the hosts' answers"
    print(f"the first limit reached: {limit}")
    # On the lab, the hosts run on this machine's cores too: whatever the harness does, a run
    # cannot take less than all the CPU the machine spends on it spread over every core.
    machine = {total: statistics.median(r.machine_cpu_seconds for r in results[total]) for total in (small, large)}
    floor = machine[large] / cpus
    print(
        f"the whole machine's CPU per run: {machine[small]:.2f} s at {small} hosts, {machine[large]:.2f} s at "
        f"{large} hosts ({(machine[large] - machine[small] - (cpu[large] - cpu[small])) / extra * 1000:.0f} ms "
        f"per extra host outside the run's processes: the lab host's sshd, commands and services)"
    )
    print(
        f"so on this machine {large} hosts cannot take less than {floor:.2f} s ({machine[large]:.2f} s of CPU "
        f"over {cpus} CPUs), against {wall[small] * 1.3:.2f} s for 1.3x the {small}-host time"
    )
    verdict = "holds" if wall[large] <= SCALE_GOAL * floor else "does NOT hold"
    print(
        f"{large} hosts: {wall[large]:.2f} s = {wall[large] / floor:.2f}x that machine-CPU floor (goal: at most "
        f"{SCALE_GOAL}x: {verdict}); of the machine's CPU, the run's own process {cpu[large]:.2f} s (serial, one "
        f"interpreter), the hosts {machine[large] - cpu[large]:.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per host count (median; default 3)")
    parser.add_argument("--keep", action="store_true", help="leave the scale hosts up afterwards")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("benchmarks/scale.py needs root (it runs the lab)")
    info = lab_up()
    print(f"lab up ({info.seconds:.1f} s, changed={info.changed})")
    extra = max(HOST_COUNTS) - MAIN_HOSTS
    up = lab_scale.scale_up(extra)
    print(f"scale up {extra}: {up.seconds:.1f} s ({len(up.started)} started, golden built: {up.golden_built})")
    env = {k: v for k, v in os.environ.items() if not SCRUBBED_ENV.match(k)}
    env.update(secrets_env())
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    results: dict[int, list[SuiteRun]] = {}
    failed = False
    try:
        with tempfile.TemporaryDirectory(prefix="gc-scale-") as scratch:
            folder = Path(scratch)
            inventories = {total: write_inventory(folder, total) for total in HOST_COUNTS}
            for path in inventories.values():
                check_inventory(path)
            # Interleaved (2, 10, 22, 2, 10, 22, ...) so a slow spell of the machine hits
            # every host count alike instead of one figure.
            for total, path in inventories.items():  # the warm-up round, not measured
                suite_run(path, folder / f"reports-{total}", env)
            for index in range(args.runs):
                for total, path in inventories.items():
                    drifts = set(main_lab_drifts())
                    run = suite_run(path, folder / f"reports-{total}", env)
                    drifts |= set(main_lab_drifts())
                    results.setdefault(total, []).append(run)
                    print(
                        f"  run {index + 1}/{args.runs}, {total:>2} hosts: {run.seconds:6.2f} s "
                        f"({run.cpu_seconds:.2f} s CPU, machine {run.machine_cpu_seconds:.2f} s), exit {run.code}, "
                        f"{run.tests} tests, {run.failed} failed, {run.errors} errors, {run.workers} connecting"
                        + (f"; main lab drifts applied meanwhile: {', '.join(sorted(drifts))}" if drifts else "")
                    )
                    if run.code != 0:
                        failed = True
                        lines = problem_lines(run.output)
                        scale_lines = [line for line in lines if on_scale_host(line)]
                        print(f"    {len(scale_lines)} of {len(lines)} failure/error lines are on scale hosts")
                        for line in lines or run.output.splitlines()[-15:]:
                            print(f"    {line}")
    finally:
        if not args.keep:
            done, secs = lab_scale.scale_down()
            print(f"scale down: {len(done)} host(s) removed ({secs:.1f} s)")
    base = statistics.median(r.seconds for r in results[MAIN_HOSTS])
    workers = {r.workers for runs in results.values() for r in runs}
    print()
    print(
        f"full suites, pytest -n auto, {'/'.join(str(w) for w in sorted(workers))} connecting process(es), "
        f"median of {args.runs} run(s); {os.cpu_count()} CPUs"
    )
    print(f"{'hosts':>5}  {'tests':>5}  {'wall time (median)':>18}  {'ratio to 2 hosts':>16}  runs")
    for total in HOST_COUNTS:
        runs = results[total]
        median = statistics.median(r.seconds for r in runs)
        print(
            f"{total:>5}  {runs[0].tests:>5}  {median:>16.2f} s  {median / base:>15.2f}x  "
            f"{', '.join(f'{r.seconds:.2f}' for r in runs)}"
        )
    print_projection(results)
    last = results[max(HOST_COUNTS)]
    bad = [r for r in last if r.code != 0 or r.failed or r.errors]
    print(
        f"{max(HOST_COUNTS)}-host runs: {sum(r.failed for r in last)} failures, "
        f"{sum(r.errors for r in last)} errors, exit codes {sorted({r.code for r in last})}"
    )
    return 1 if failed or bad else 0


if __name__ == "__main__":
    sys.exit(main())
