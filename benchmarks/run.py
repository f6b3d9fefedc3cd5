"""Benchmark: the full suites against the lab, against a naive one-call-per-check baseline.

Prints the figures the README quotes: wall time with -n auto and -n 0 (median of several
runs), SSH connections and remote executions per host (from the audit log), peak memory,
and the naive baseline's time on the same lab in the same run. Run as root:

    .venv/bin/python benchmarks/run.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.naive_baseline import naive_checks  # noqa: E402
from conformance.inventory.loader import load_inventory  # noqa: E402
from lab import lab_up, secrets_env  # noqa: E402

LAB_INVENTORY = ROOT / "inventory" / "lab.yaml"


def suite_run(workers: str, reports: Path, env: dict[str, str], inventory: Path = LAB_INVENTORY) -> tuple[float, int]:
    command = [
        sys.executable,
        "-m",
        "pytest",
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
    ]
    started = time.monotonic()
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    return time.monotonic() - started, completed.returncode


def naive_run(workers: str, env: dict[str, str]) -> float:
    """The naive baseline suite (benchmarks/naive_suite), run by pytest like the real one."""
    command = [
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
        str(ROOT / "benchmarks" / "naive_suite"),
        "-o",
        "addopts=",
        str(ROOT / "benchmarks" / "naive_suite"),
    ]
    started = time.monotonic()
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"naive baseline failed:\n{completed.stdout[-2000:]}")
    return time.monotonic() - started


def audit_figures(audit: Path) -> tuple[Counter[str], Counter[str], int]:
    connects: Counter[str] = Counter()
    execs: Counter[str] = Counter()
    workers = set()
    for line in audit.read_text().splitlines():
        entry = json.loads(line)
        workers.add(entry["pid"])
        (connects if entry["kind"] == "connect" else execs)[entry["host"]] += 1
    return connects, execs, len(workers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lab_up()
    env = {**os.environ, **secrets_env()}
    figures: dict[str, list[float]] = {"auto": [], "0": []}
    codes = set()
    last_reports = Path()
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(args.runs):
            for workers in ("auto", "0"):
                reports = Path(scratch) / f"{workers}-{index}"
                seconds, code = suite_run(workers, reports, env)
                figures[workers].append(seconds)
                codes.add(code)
                if workers == "auto":
                    last_reports = reports
        connects, execs, worker_count = audit_figures(last_reports / "audit.jsonl")
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    inventory = load_inventory(LAB_INVENTORY, environ=env)
    naive_calls = len(naive_checks(inventory))
    naive = {workers: [naive_run(workers, env) for _ in range(args.runs)] for workers in ("auto", "0")}
    naive_auto, naive_serial = statistics.median(naive["auto"]), statistics.median(naive["0"])
    auto, serial = statistics.median(figures["auto"]), statistics.median(figures["0"])
    print(f"lab: {len(inventory.hosts)} hosts; runs per figure: {args.runs}; suite exit codes: {sorted(codes)}")
    print(
        f"full suites, pytest -n auto : median {auto:.2f} s  (runs: {', '.join(f'{s:.2f}' for s in figures['auto'])})"
    )
    print(f"full suites, pytest -n 0    : median {serial:.2f} s  (runs: {', '.join(f'{s:.2f}' for s in figures['0'])})")
    for host in sorted(set(connects) | set(execs)):
        print(
            f"  {host}: {connects[host]} SSH connection(s), {execs[host]} remote execution(s) "
            f"in one -n auto run ({worker_count} worker processes)"
        )
    print(f"peak memory (largest process of the suite runs): {peak_kib / 1024:.0f} MiB")
    print(
        f"naive baseline (one testinfra call per check, {naive_calls} checks): "
        f"median {naive_serial:.2f} s with -n 0, {naive_auto:.2f} s with -n auto"
    )
    best, naive_best = min(auto, serial), min(naive_auto, naive_serial)
    print(
        f"speed-up vs naive: {naive_serial / serial:.1f}x with -n 0, {naive_auto / auto:.1f}x with -n auto, "
        f"{naive_best / best:.1f}x best against best"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
