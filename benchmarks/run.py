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

- one OpenSSH login running ``true`` on each lab host, timed without the harness, in every
  round: with pytest's start-up it makes the floor of a run that must log in (the
  critical-path goal: ``-n auto`` within 1.25x of it);
- the cost of one more check, as the slope of the run time over the check count: the
  harness (``-n 0``) on the lab and on the lab with ``EXTRA_CHECKS`` more health checks
  (copies of one that share its probe, so only checks are added), with every sink on,
  without Allure's results (``-p no:allure_pytest``) and without JUnit (``-p no:junitxml``),
  against the trivial suite at 49 and 49 + ``EXTRA_CHECKS`` tests (the per-check goal:
  within 1.5x of a trivial test's).

It then prints the ratios the README quotes, SSH connections and remote executions per
host per run (from the audit log; for -n auto and -n 4), the CPU time of a harness run in
its process and on the whole machine (the lab hosts share its cores), an OpenSSH login to
each lab host timed without the harness (the hosts' own share of connecting), and the peak
memory (maximum resident set) of a harness run.

The commands run as a user's repeated runs do: with Python's bytecode cache (a machine that
sets ``PYTHONDONTWRITEBYTECODE`` would otherwise recompile every module of every command on
every run), after one unmeasured warm-up round, and each command keeps its own reports
folder from run to run (the system database and the bulletin exist after the first run, as
they do for the timer), in a scratch folder under the project's reports/, where a run
writes. A running lab is used as it is; one that carries drifts is refused,
and a round during which a drift was applied (the lab may be shared) is measured again.
Run as root:

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
from lab import secrets_env  # noqa: E402
from lab.api import lab_for_run  # noqa: E402
from lab.config import state_dir  # noqa: E402
from lab.runtime import load_state  # noqa: E402

LAB_INVENTORY = ROOT / "inventory" / "lab.yaml"
TRIVIAL_SUITE = ROOT / "benchmarks" / "trivial_suite"
NAIVE_SUITE = ROOT / "benchmarks" / "naive_suite"
TRIVIAL_TESTS = 49
# Checks added for the per-check slope: well below the threshold at which -n auto would
# start workers (conformance.workers), so every size runs in one process.
EXTRA_CHECKS = 200
CRITICAL_PATH_GOAL = 1.25  # -n auto against pytest's start-up + one SSH login
PER_CHECK_GOAL = 1.5  # one more check against one more trivial test, every sink on
# What only a run that checks hosts loads, beyond pytest's start-up with the same plugins:
# the SSH transport (paramiko and its cryptography: the stack's SSH library) and the system
# database (SQLAlchemy and its SQLite dialect). The trivial run loads neither (the plugin
# tests check it). Timed in a bare interpreter, without the harness, as a floor term.
CHECKING_RUN_LIBRARIES = ("paramiko", "sqlalchemy", "sqlalchemy.dialects.sqlite")
DRIFT_WAIT = 600.0  # seconds a round waits, at most, for a drift on the shared lab to go


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


def login_command(client: str, user: str, address: str) -> list[str]:
    lab = state_dir()
    return [
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
        f"{user}@{address}",
        "true",
    ]


def openssh_login(client: str, user: str, address: str) -> float | None:
    """Wall time of one OpenSSH login running ``true``: a host's own share of every gathering
    (sshd's key exchange, authentication and session), measured without the harness. None
    for a login that fails or hangs (no route, a refused key): it is no reference."""
    started = time.monotonic()
    try:
        done = subprocess.run(login_command(client, user, address), capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return None
    return time.monotonic() - started if done.returncode == 0 else None


def slope_inventory(folder: Path, extra: int) -> Path:
    """The lab inventory with ``extra`` more health checks: copies of the LiteLLM liveliness
    check, each its own check and result in every sink, all sharing that check's one probe
    (the probe is keyed by its URL), so the run gathers and probes exactly what the lab's does."""
    lab_state = state_dir()
    ssh = {"identity_file": str(lab_state / "monitor_ed25519"), "known_hosts": str(lab_state / "known_hosts")}
    document = {
        "extends": str(LAB_INVENTORY),
        # Absolute key paths: relative ones are resolved against the extending file's folder.
        "hosts": [{"name": name, "ssh": ssh} for name in ("mini", "studio")],
        "health_checks": [
            {
                "id": f"litellm-liveliness-copy-{index:03d}",
                "service": "litellm-orch",
                "port": 4000,
                "path": "/health/liveliness",
                "vantage": "lan",
                "expect_json": "I'm alive!",
            }
            for index in range(1, extra + 1)
        ],
    }
    path = folder / f"lab-plus-{extra}-checks.yaml"
    path.write_text(json.dumps(document, indent=1))  # JSON is YAML
    return path


def file_creation_seconds(folder: Path, count: int = 300) -> float:
    """Mean wall time of making one small file in ``folder`` (write it, as the writer does),
    timed without the harness. The mean, not the median: a run pays for every file, and on
    a disk whose file creation is slow (this VM's project folder: 0.02-0.3 ms from one hour
    to the next, /var/tmp's 0.01-0.03 ms) the mean is what is paid."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for index in range(count):
        (folder / f"{index}-attachment.txt").write_text("x" * 400, encoding="utf-8")
    seconds = (time.monotonic() - started) / count
    shutil.rmtree(folder)
    return seconds


def allure_files_per_check(results: Path) -> float:
    """Files allure-pytest wrote per test (results, fixture containers, attachments)."""
    tests = len(list(results.glob("*-result.json")))
    return len([path for path in results.iterdir() if path.suffix != ".properties"]) / tests if tests else 0.0


def wait_for_no_drift() -> None:
    """Wait until the shared lab carries no drift (another run applies and reverts them)."""
    deadline = time.monotonic() + DRIFT_WAIT
    while load_state().drifts and time.monotonic() < deadline:
        time.sleep(2)


def slope(small: Figure, large: Figure, added: int) -> float:
    """Seconds per added test, from the medians of two sizes."""
    return (large.median - small.median) / added


def harness_command(workers: str, reports: Path, *paths: str, inventory: Path = LAB_INVENTORY) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        # pytest takes its rootdir and ini file from the path-like arguments, option values
        # included: with the inventory and the reports in a temp dir it would settle there.
        "-c",
        str(ROOT / "pyproject.toml"),
        "-q",
        "-p",
        "no:randomly",
        "-n",
        workers,
        "--inventory",
        str(inventory),
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


SLOPE_VARIANTS = {
    # key: (label, pytest arguments that turn a sink off)
    "sinks": ("every sink on (bulletin, DB, JUnit, Allure)", ()),
    "noallure": ("without Allure's results", ("-p", "no:allure_pytest")),
    "nojunit": ("without JUnit", ("-p", "no:junitxml")),
}


def command_for(key: str, reports: Path, slope_lab: Path) -> tuple[list[str], dict[str, str]]:
    """The command of one figure, and the variables it adds to the environment."""
    if key == "import-libraries":
        return [sys.executable, "-c", f"import {', '.join(CHECKING_RUN_LIBRARIES)}"], {}
    if key == "import-nothing":
        return [sys.executable, "-c", "pass"], {}
    if key.startswith("naive-"):
        return naive_command(key.removeprefix("naive-")), {}
    if key.startswith("trivial-"):
        workers, _, size = key.removeprefix("trivial-").partition("-")
        # -n 2 measures xdist starting two workers: forced, or the plugin would run them here.
        forced = ("--conformance-force-workers",) if workers == "2" else ()
        tests = TRIVIAL_TESTS + (EXTRA_CHECKS if size == "large" else 0)
        return harness_command(workers, reports, *forced, str(TRIVIAL_SUITE)), {"TRIVIAL_TESTS": str(tests)}
    if key.startswith("slope-"):
        variant, _, size = key.removeprefix("slope-").partition("-")
        inventory = slope_lab if size == "large" else LAB_INVENTORY
        return harness_command("0", reports, *SLOPE_VARIANTS[variant][1], inventory=inventory), {}
    return harness_command(key, reports), {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    # A running lab is used as it is, never started again or waited on: a drift another run
    # applied stays. Only a lab that is down (and carries no drift) is brought up.
    readiness = lab_for_run()
    if readiness.drifts:
        raise SystemExit(
            f"the lab carries drifts ({', '.join(readiness.drifts)}): the benchmark measures a conformant lab"
        )
    env = {**os.environ, **secrets_env()}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("TRIVIAL_TESTS", None)
    inventory = load_inventory(LAB_INVENTORY, environ=env)
    figures = {
        "auto": Figure("the harness, pytest -n auto"),
        "0": Figure("the harness, pytest -n 0"),
        "4": Figure("the harness, pytest -n 4"),
        "naive-auto": Figure(f"naive testinfra suite ({len(naive_checks(inventory))} checks), -n auto"),
        "naive-0": Figure("naive testinfra suite, -n 0"),
        "trivial-auto": Figure(f"{TRIVIAL_TESTS} trivial tests, same plugins, -n auto"),
        "trivial-0": Figure(f"{TRIVIAL_TESTS} trivial tests, same plugins, -n 0 (pytest's start-up)"),
        "trivial-2": Figure(f"{TRIVIAL_TESTS} trivial tests, same plugins, -n 2 (xdist's start-up)"),
        "trivial-0-large": Figure(f"{TRIVIAL_TESTS + EXTRA_CHECKS} trivial tests, same plugins, -n 0"),
        "import-libraries": Figure(f"python -c 'import {', '.join(CHECKING_RUN_LIBRARIES)}'"),
        "import-nothing": Figure("python -c pass"),
    }
    for variant, (label, _) in SLOPE_VARIANTS.items():
        figures[f"slope-{variant}-small"] = Figure(f"the harness -n 0, {label}")
        figures[f"slope-{variant}-large"] = Figure(f"  the same, {EXTRA_CHECKS} more checks")
    client = shutil.which("ssh")
    logins = {host.name: Figure(f"OpenSSH login running `true` on {host.name}") for host in inventory.hosts}
    # The reports go where a run writes them, under the project's reports/ (git-ignored): on
    # the lab's VM a file made under /tmp costs about four times as much (1.1 ms against
    # 0.24 ms), which would charge every per-test file four times over to both sides.
    (ROOT / "reports").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "reports", prefix="benchmark-") as scratch:
        slope_lab = slope_inventory(Path(scratch), EXTRA_CHECKS)
        measured, rounds, again = 0, 0, 0
        file_seconds: list[float] = []  # mean time to make one file in reports/, per round
        # The first round is the warm-up, not measured. The lab may be shared: a round during
        # which a drift was applied, or whose commands did not all pass, is measured again, at
        # most 3 x --runs times; then what was measured is printed, with a note. A round
        # starts once the lab carries no drift (DRIFT_WAIT at most).
        while measured < args.runs:
            rounds += 1
            wait_for_no_drift()
            drifted = bool(load_state().drifts)
            timings = {}
            for key in figures:
                reports = Path(scratch) / key
                command, added = command_for(key, reports, slope_lab)
                timings[key] = timed(command, {**env, **added}), reports
            seconds = {
                host.name: openssh_login(client, host.ssh.user, host.address) if client else None
                for host in inventory.hosts
            }
            # Making a file costs what the disk costs at that moment: timed in every round.
            per_file_now = file_creation_seconds(Path(scratch) / "files")
            drifted = drifted or bool(load_state().drifts)
            passed = all(timing.code == 0 for timing, _ in timings.values())
            if rounds == 1:
                continue
            if (drifted or not passed) and again < 3 * args.runs:
                again += 1
                continue
            measured += 1
            for key, (timing, reports) in timings.items():
                figure = figures[key]
                figure.seconds.append(timing.seconds)
                figure.cpu.append(timing.cpu)
                figure.machine_cpu.append(timing.machine_cpu)
                figure.codes.add(timing.code)
                figure.peak_kib = max(figure.peak_kib, timing.peak_kib)
                figure.audits.append(_last_run_audit(reports / "audit.jsonl"))
            for host, login in seconds.items():
                if login is not None:
                    logins[host].seconds.append(login)
            file_seconds.append(per_file_now)
        if again:
            print(f"{again} round(s) measured again: a drift was applied meanwhile, or a command did not pass")
        baselines = [figure for key, figure in figures.items() if key.startswith(("naive-", "trivial-"))]
        failed = [figure.label for figure in baselines if figure.codes != {0}]
        if failed:
            # A baseline that fails part-way is not a baseline: it would only look fast.
            raise SystemExit(f"not a valid comparison, these runs did not pass: {', '.join(failed)}")
        print(f"lab: {len(inventory.hosts)} hosts, {os.cpu_count()} CPUs; median of {args.runs} interleaved runs each")
        print(f"{'command':<62} {'median':>8}  runs (s)                              exit")
        for figure in [*figures.values(), *(login for login in logins.values() if login.seconds)]:
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
        print_critical_path(figures, logins)
        per_file = statistics.median(file_seconds)
        per_check = allure_files_per_check(Path(scratch) / "slope-sinks-large" / "allure-results")
        files_floor = per_check * per_file
        print_per_check(figures, files_floor)
        print(
            f"floor of Allure's results, without the harness: {per_check:.1f} files per check (results, fixture "
            f"containers, attachments) x {per_file * 1000:.2f} ms to make one file in reports/ (mean of 300, "
            f"median of the rounds) = {files_floor * 1000:.2f} ms per check on this machine's disk"
        )
        if any(figures[key].codes != {0} for key in figures if key.startswith(("auto", "slope-"))):
            print(
                "note: some harness runs did not pass (a drift applied to the lab?): re-measure on the conformant lab"
            )
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
        print(
            f"peak memory (maximum resident set of one run): -n auto {figures['auto'].peak_kib / 1024:.0f} MiB, "
            f"-n 4 {figures['4'].peak_kib / 1024:.0f} MiB (largest single process)"
        )
    return 0


def verdict(measured: float, floor: float, goal: float) -> str:
    """Whether ``measured`` is within ``goal`` times ``floor``, as the printed lines say it."""
    return "holds" if measured <= goal * floor else "does NOT hold"


def print_critical_path(figures: dict[str, Figure], logins: dict[str, Figure]) -> None:
    """The critical-path goal: -n auto against pytest's start-up plus one SSH login (the
    slowest host's: the run logs in to every host at once), both measured in this run."""
    timed_logins = [login.median for login in logins.values() if login.seconds]
    if not timed_logins:
        print("critical path: no OpenSSH login could be timed (no client, or no host answered): no floor")
        return
    startup, login, auto = figures["trivial-0"].median, max(timed_logins), figures["auto"].median
    floor = startup + login
    print(
        f"critical path: pytest's start-up {startup:.2f} s + one SSH login {login:.2f} s = floor {floor:.2f} s; "
        f"-n auto {auto:.2f} s = {auto / floor:.2f}x the floor "
        f"(goal: at most {CRITICAL_PATH_GOAL}x: {verdict(auto, floor, CRITICAL_PATH_GOAL)}); "
        f"the run's own share beyond the floor: {auto - floor:.2f} s"
    )
    libraries = max(0.0, figures["import-libraries"].median - figures["import-nothing"].median)
    loaded = floor + libraries
    print(
        f"critical path with what only a checking run loads ({', '.join(CHECKING_RUN_LIBRARIES)}: "
        f"{libraries:.2f} s in a bare interpreter, without the harness): floor {loaded:.2f} s; -n auto = "
        f"{auto / loaded:.2f}x it ({CRITICAL_PATH_GOAL}x: {verdict(auto, loaded, CRITICAL_PATH_GOAL)}); "
        f"beyond it: {auto - loaded:.2f} s"
    )


def print_per_check(figures: dict[str, Figure], files_floor: float) -> None:
    """The per-check goal: one more check against one more trivial test, and each sink's share;
    then against its floor: a trivial test plus the files Allure's report is made of (one
    result, one fixture container and the attachments per check), made without the harness."""
    trivial = slope(figures["trivial-0"], figures["trivial-0-large"], EXTRA_CHECKS)
    slopes = {
        variant: slope(figures[f"slope-{variant}-small"], figures[f"slope-{variant}-large"], EXTRA_CHECKS)
        for variant in SLOPE_VARIANTS
    }
    ratio = slopes["sinks"] / trivial if trivial > 0 else float("inf")
    print(
        f"per check (slope over {EXTRA_CHECKS} added): a trivial test {trivial * 1000:.1f} ms; a check with every "
        f"sink on {slopes['sinks'] * 1000:.1f} ms = {ratio:.2f}x "
        f"(goal: at most {PER_CHECK_GOAL}x: {verdict(ratio, 1.0, PER_CHECK_GOAL)})"
    )
    allure = slopes["sinks"] - slopes["noallure"]
    junit = slopes["sinks"] - slopes["nojunit"]
    rest = slopes["sinks"] - allure - junit
    print(
        f"per check, by sink: Allure results {allure * 1000:.1f} ms, JUnit {junit * 1000:.1f} ms; the check itself "
        f"with the bulletin, the DB and the terminal line {rest * 1000:.1f} ms "
        f"({(rest - trivial) * 1000:.1f} ms beyond a trivial test's)"
    )
    floor = trivial + files_floor
    print(
        f"per check against its floor, a trivial test + Allure's files ({trivial * 1000:.1f} + "
        f"{files_floor * 1000:.1f} = {floor * 1000:.1f} ms, without the harness): "
        f"{slopes['sinks'] / floor:.2f}x ({PER_CHECK_GOAL}x: {verdict(slopes['sinks'], floor, PER_CHECK_GOAL)})"
    )


if __name__ == "__main__":
    sys.exit(main())
