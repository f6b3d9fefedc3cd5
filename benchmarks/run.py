"""Benchmark: the full suites against the lab, side by side with pytest's own start-up and
with a naive one-call-per-check baseline, all in one run.

Every figure is the median of several runs, interleaved (one run of each command in turn,
then again), so a slow spell of the machine hits every figure alike:

- the harness with ``pytest -n auto``, ``-n 0`` and ``-n 4`` (more workers than hosts);
- pytest's own start-up: 49 trivial tests (benchmarks/trivial_suite) with the same plugins
  loaded and configured for the lab (the harness plugin included: it loads the inventory
  and the registry; the tests name no host, so nothing is gathered), ``-n 0`` and
  ``-n auto``, and xdist starting two workers for them (``-n 2``);
- the naive baseline (benchmarks/naive_suite: one testinfra call per check over the same
  verified SSH backend, each worker with its own connection per host), ``-n auto`` and
  ``-n 0``.

It then prints the ratios the README quotes, SSH connections and remote executions per
host per run (from the audit log; for -n auto and -n 4), the CPU time of a harness run in
its process and on the whole machine (the lab hosts share its cores), an OpenSSH login to
each lab host timed without the harness (the hosts' own share of connecting), and the peak
memory (maximum resident set) of a harness run.

The commands run as a user's repeated runs do: with Python's bytecode cache (a machine that
sets ``PYTHONDONTWRITEBYTECODE`` would otherwise recompile every module of every command on
every run), after one unmeasured warm-up round, and each command keeps its own reports
folder from run to run (the system database and the bulletin exist after the first run, as
they do for the timer). Run as root:

    .venv/bin/python benchmarks/run.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.naive_baseline import naive_checks  # noqa: E402
from benchmarks.scale import machine_busy_seconds  # noqa: E402
from conformance.inventory.loader import load_inventory  # noqa: E402
from conformance.inventory.model import Inventory  # noqa: E402
from lab import lab_up, secrets_env  # noqa: E402
from lab.config import state_dir  # noqa: E402

LAB_INVENTORY = ROOT / "inventory" / "lab.yaml"
TRIVIAL_SUITE = ROOT / "benchmarks" / "trivial_suite"
NAIVE_SUITE = ROOT / "benchmarks" / "naive_suite"


@dataclass
class Figure:
    label: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the command's processes
    machine_cpu: list[float] = field(default_factory=list)  # every core of the machine, lab hosts included
    peak_kib: int = 0
    codes: set[int] = field(default_factory=set)
    audits: list[Path] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Timing:
    seconds: float
    code: int
    peak_kib: int  # maximum resident set of the command or one of its children
    cpu: float
    machine_cpu: float


def timed(command: list[str], env: dict[str, str]) -> Timing:
    """Wall time, exit code, peak memory and CPU time of one command, and the machine's CPU meanwhile."""
    started, busy = time.monotonic(), machine_busy_seconds()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    machine = machine_busy_seconds() - busy
    code = os.waitstatus_to_exitcode(status)
    return Timing(seconds, code, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, machine)


def openssh_logins(inventory: Inventory, runs: int) -> dict[str, float]:
    """Median wall time of an OpenSSH login running ``true`` on each lab host: the hosts' own
    share of every gathering (sshd's key exchange, authentication and session), measured
    without the harness. Empty when this machine has no OpenSSH client."""
    client = shutil.which("ssh")
    if client is None:
        return {}
    lab = state_dir()
    medians = {}
    for host in inventory.hosts:
        command = [
            client,
            "-i",
            str(lab / "monitor_ed25519"),
            "-o",
            f"UserKnownHostsFile={lab / 'known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            f"{host.ssh.user}@{host.address}",
            "true",
        ]
        times = []
        for _ in range(runs):
            started = time.monotonic()
            try:
                done = subprocess.run(command, capture_output=True, timeout=30, check=False)
            except subprocess.TimeoutExpired:
                break
            if done.returncode != 0:
                break  # not a login to time (no route, a refused key): the reference is left out
            times.append(time.monotonic() - started)
        else:
            medians[host.name] = statistics.median(times)
    return medians


def harness_command(workers: str, reports: Path, *paths: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:randomly",
        "-n",
        workers,
        "--inventory",
        str(LAB_INVENTORY),
        "--reports-dir",
        str(reports),
        "--bulletin",
        str(reports / "bulletin.jsonl"),
        *paths,
    ]


def naive_command(workers: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-n",
        workers,
        "-p",
        "no:conformance.plugin",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(NAIVE_SUITE),
        "-o",
        "addopts=",
        str(NAIVE_SUITE),
    ]


def _last_run_audit(audit: Path) -> Path:
    """The audit lines of the newest run only (the reports folder is kept from run to run)."""
    if not audit.exists():
        return audit  # a command that reaches no host (the baselines)
    lines = audit.read_text().splitlines()
    last_run = json.loads(lines[-1])["run"] if lines else None
    kept = audit.with_name(f"audit-{len(list(audit.parent.glob('audit-*.jsonl')))}.jsonl")
    kept.write_text("".join(f"{line}\n" for line in lines if json.loads(line)["run"] == last_run))
    return kept


def audit_figures(audit: Path) -> tuple[Counter[str], Counter[str], int]:
    connects: Counter[str] = Counter()
    execs: Counter[str] = Counter()
    processes = set()
    for line in audit.read_text().splitlines():
        entry = json.loads(line)
        processes.add(entry["pid"])
        (connects if entry["kind"] == "connect" else execs)[entry["host"]] += 1
    return connects, execs, len(processes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lab_up()
    env = {**os.environ, **secrets_env()}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    inventory = load_inventory(LAB_INVENTORY, environ=env)
    figures = {
        "auto": Figure("the harness, pytest -n auto"),
        "0": Figure("the harness, pytest -n 0"),
        "4": Figure("the harness, pytest -n 4"),
        "naive-auto": Figure(f"naive testinfra suite ({len(naive_checks(inventory))} checks), -n auto"),
        "naive-0": Figure("naive testinfra suite, -n 0"),
        "trivial-auto": Figure("49 trivial tests, same plugins, -n auto"),
        "trivial-0": Figure("49 trivial tests, same plugins, -n 0 (pytest's start-up)"),
        "trivial-2": Figure("49 trivial tests, same plugins, -n 2 (xdist's start-up)"),
    }
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(-1, args.runs):  # round -1: the warm-up, not measured
            for key, figure in figures.items():
                reports = Path(scratch) / key
                if key.startswith("naive-"):
                    command = naive_command(key.removeprefix("naive-"))
                elif key.startswith("trivial-"):
                    workers = key.removeprefix("trivial-")
                    # -n 2 measures xdist starting two workers: forced, or the plugin would run them here.
                    forced = ("--conformance-force-workers",) if workers == "2" else ()
                    command = harness_command(workers, reports, *forced, str(TRIVIAL_SUITE))
                else:
                    command = harness_command(key, reports)
                timing = timed(command, env)
                if index < 0:
                    continue
                figure.seconds.append(timing.seconds)
                figure.cpu.append(timing.cpu)
                figure.machine_cpu.append(timing.machine_cpu)
                figure.codes.add(timing.code)
                figure.peak_kib = max(figure.peak_kib, timing.peak_kib)
                figure.audits.append(_last_run_audit(reports / "audit.jsonl"))
        baselines = [figure for key, figure in figures.items() if key.startswith(("naive-", "trivial-"))]
        failed = [figure.label for figure in baselines if figure.codes != {0}]
        if failed:
            # A baseline that fails part-way is not a baseline: it would only look fast.
            raise SystemExit(f"not a valid comparison, these runs did not pass: {', '.join(failed)}")
        print(f"lab: {len(inventory.hosts)} hosts, {os.cpu_count()} CPUs; median of {args.runs} interleaved runs each")
        print(f"{'command':<62} {'median':>8}  runs (s)                              exit")
        for figure in figures.values():
            runs = ", ".join(f"{s:.2f}" for s in figure.seconds)
            print(f"{figure.label:<62} {figure.median:>6.2f} s  {runs:<37} {sorted(figure.codes)}")
        auto, serial, four = figures["auto"].median, figures["0"].median, figures["4"].median
        startup = figures["trivial-0"].median
        naive_auto, naive_serial = figures["naive-auto"].median, figures["naive-0"].median
        print()
        print(f"-n auto against pytest's own start-up (trivial, -n 0): {auto / startup:.2f}x  (goal: at most 1.5x)")
        print(f"naive -n auto against the harness -n auto: {naive_auto / auto:.2f}x faster  (goal: at least 2.5x)")
        print(f"naive best against harness best: {min(naive_auto, naive_serial) / min(auto, serial, four):.2f}x faster")
        print(f"-n 0 against -n auto: {serial / auto:.2f}x;  -n 4 against -n auto: {four / auto:.2f}x")
        for key in ("auto", "4"):
            connects, execs, processes = audit_figures(figures[key].audits[-1])
            per_host = ", ".join(
                f"{host}: {connects[host]} connection(s), {execs[host]} remote execution(s)"
                for host in sorted(set(connects) | set(execs))
            )
            print(f"-n {key}, one run: {per_host}; from {processes} process(es)")
        harness, trivial = figures["auto"], figures["trivial-0"]
        print(
            f"CPU per run (median): the harness -n auto {statistics.median(harness.cpu):.2f} s in its process, "
            f"{statistics.median(harness.machine_cpu):.2f} s on the whole machine ({os.cpu_count()} CPUs, the lab "
            f"hosts included); trivial -n 0 {statistics.median(trivial.cpu):.2f} s in its process"
        )
        logins = openssh_logins(inventory, args.runs)
        if logins:
            print(
                "reference, without the harness: an OpenSSH login running `true` takes "
                + ", ".join(f"{host} {seconds * 1000:.0f} ms" for host, seconds in logins.items())
                + " (median): the lab hosts' share of connecting, before any command"
            )
        print(
            f"peak memory (maximum resident set of one run): -n auto {figures['auto'].peak_kib / 1024:.0f} MiB, "
            f"-n 4 {figures['4'].peak_kib / 1024:.0f} MiB (largest single process)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
