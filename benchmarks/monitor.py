"""Benchmark: the System monitor with the state of 200 hosts, against an idle static file server.

1. A day of simulated history (the clock is simulated; nothing waits): the scheduled suites
   every 15 minutes with ``--hosts`` hosts' worth of results (25 checks a host, 2 % of them
   failing, one in ten of those changing each run), and the monitor's own health polls every
   30 s, both written through the real store (``record_run``, ``record_poll``). Printed: the
   database's size after the day, i.e. its growth per day, and what the retention rule keeps.
2. ``conformance monitor --no-poll`` on that database, on loopback: its resident memory once it
   has read the day (``VmRSS``), then 20 concurrent clients for 10 s on each of ``/metrics``,
   ``/api/v1/status`` and ``/`` (wrk, a new connection per request), side by side with
   ``python -m http.server`` serving a static file of the same size: the floor.
3. With the lab up: the deployed monitor's CPU in the lab Mini over 60 s, as a share of one core.

Every load is bounded in count and time and stops by itself; only loopback is targeted.

    .venv/bin/python benchmarks/monitor.py [--hosts 200] [--hours 24] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.engine import make_url  # noqa: E402

from conformance.bulletin.flapping import policy_from_inventory  # noqa: E402
from conformance.inventory.loader import load_inventory  # noqa: E402
from conformance.monitor.poller import health_subject  # noqa: E402
from conformance.results import Outcome, Result, Subject  # noqa: E402
from conformance.store.db import make_engine, upgrade  # noqa: E402
from conformance.store.records import RunInfo, record_poll, record_run  # noqa: E402

CHECKS = (
    "host-identity",
    "unit-active",
    "port-bound",
    "port-served-by-unit",
    "service-account",
    "no-unexpected-listeners",
    "file-parses",
    "health-endpoint",
    "dependencies-reachable",
)
ENDPOINTS = ("/metrics", "/api/v1/status", "/")


def subjects(hosts: int) -> list[Subject]:
    """25 checks a host, with the shapes of the suites' fingerprints."""
    out = []
    for index in range(hosts):
        host = f"h{index:03}"
        for number in range(25):
            check = CHECKS[number % len(CHECKS)]
            out.append(
                Subject(
                    check=check,
                    host=host,
                    service=f"svc{number % 3}",
                    port=4000 + number,
                    item=f"item-{number}",
                    owner=("gateway-agent", "litellm-orch", "optillm-proxy")[number % 3],
                    severity=("critical", "major", "minor")[number % 3],
                    layer="gateway",
                )
            )
    return out


def simulate(db: Path, hosts: int, hours: float) -> tuple[float, int, int]:
    """A day of runs and polls into ``db``; returns (seconds taken, runs, polls)."""
    inventory = load_inventory(ROOT / "inventory" / "lab.yaml", environ={})
    policy = policy_from_inventory(inventory)
    engine = make_engine(make_url(f"sqlite:///{db}"))
    upgrade(engine)
    every = subjects(hosts)
    rng = random.Random(7)
    failing = set(rng.sample(range(len(every)), max(1, len(every) // 50)))
    checks = [c for c in inventory.health_checks if c.id != "system-monitor-healthz" and not c.calls_models]
    start = datetime.now(UTC) - timedelta(hours=hours)
    runs = polls = 0
    began = time.monotonic()
    moment = start
    end = start + timedelta(hours=hours)
    next_run = start
    while moment < end:
        if moment >= next_run:
            # one in ten failing checks changes each run: the bulletin opens and resolves
            for index in rng.sample(sorted(failing), max(1, len(failing) // 10)):
                failing.discard(index)
                failing.add(rng.randrange(len(every)))
            results = [
                Result(
                    Outcome.VIOLATED if i in failing else Outcome.PASSED,
                    f"{subject.check} on {subject.host}: {'violated' if i in failing else 'holds'}",
                    subject=subject,
                    latency_ms=3.0,
                )
                for i, subject in enumerate(every)
            ]
            at = moment
            record_run(
                engine,
                inventory,
                results,
                RunInfo(f"run-{runs:04}", "mini-timer", "bench", True, at - timedelta(seconds=40), at),
                policy=policy,
                now=at,
            )
            runs += 1
            next_run += timedelta(minutes=15)
        polled = [
            Result(Outcome.PASSED, f"{check.path} answered", subject=health_subject(inventory, check), latency_ms=2.0)
            for check in checks
        ]
        record_poll(engine, inventory, polled, f"monitor-{polls:05}", policy, now=moment)
        polls += 1
        moment += timedelta(seconds=30)
    engine.dispose()
    return time.monotonic() - began, runs, polls


def rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def wait_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, requests/s) from wrk's latency distribution."""
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", "Connection: close", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    text = done.stdout

    def millis(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    return millis("50"), millis("99"), float(rate.group(1)) if rate else float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lab_cpu(seconds: float) -> str:
    try:
        from lab import lab_exec
    except ImportError:
        return "lab not importable"
    pid = lab_exec("mini", ["systemctl", "show", "-p", "MainPID", "--value", "gateway-conformance-monitor"], timeout=15)
    main = pid.stdout.strip()
    if pid.returncode != 0 or main in ("", "0"):
        return "the lab's monitor is not running (conformance lab up)"
    hertz = os.sysconf("SC_CLK_TCK")

    def ticks() -> int:
        stat = lab_exec("mini", ["cat", f"/proc/{main}/stat"], timeout=15).stdout
        fields = stat.rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    first, began = ticks(), time.monotonic()
    time.sleep(seconds)
    used = (ticks() - first) / hertz
    wall = time.monotonic() - began
    return f"{100 * used / wall:.2f}% of one core ({used:.2f} s CPU in {wall:.0f} s, polling every 5 s in the lab)"


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress, as it comes
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--cpu-seconds", type=float, default=60.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="gc-monitor-bench-"))
    db = work / "conformance.db"
    try:
        took, runs, polls = simulate(db, args.hosts, args.hours)
        size = sum(path.stat().st_size for path in work.glob("conformance.db*"))
        per_day = size * 24 / args.hours
        print(
            f"simulated {args.hours:g} h: {runs} suite runs x {args.hosts * 25} results, {polls} health polls "
            f"(written in {took:.0f} s)"
        )
        print(
            f"database after the day: {size / 2**20:.1f} MiB, i.e. {per_day / 2**20:.1f} MiB/day; retention "
            f"keeps 30 days of runs: at most {30 * per_day / 2**30:.2f} GiB; the monitor's poll bookkeeping is "
            "pruned to the flap window (22 events), its health rows are updated in place"
        )
        port = free_port()
        env = dict(os.environ, CONFORMANCE_REPORTS=str(work))
        monitor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conformance",
                "monitor",
                "--inventory",
                str(ROOT / "inventory" / "lab.yaml"),
                "--db",
                f"sqlite:///{db}",
                "--bulletin",
                str(work / "bulletin.jsonl"),
                "--port",
                str(port),
                "--no-poll",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/healthz")
            time.sleep(6)  # one refresh after the first read: the steady state
            print(
                f"monitor resident memory with {args.hours:g} h of {args.hosts} hosts read: "
                f"{rss_kib(monitor.pid) / 1024:.1f} MiB"
            )
            import httpx

            static = work / "static"
            static.mkdir()
            for endpoint in ENDPOINTS:
                body = httpx.get(f"{base}{endpoint}", timeout=10).content
                (static / (endpoint.strip("/").replace("/", "_") or "index.html")).write_bytes(body)
            floor_port = free_port()
            floor = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    str(floor_port),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    str(static),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_http(f"http://127.0.0.1:{floor_port}/index.html")
                print(f"\n{args.connections} concurrent clients, {args.seconds} s each, a new connection per request:")
                print(
                    f"{'endpoint':18} {'bytes':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} | "
                    f"{'floor p50':>9} {'floor p99':>9} {'req/s':>8}  goal p99"
                )
                for endpoint in ENDPOINTS:
                    name = endpoint.strip("/").replace("/", "_") or "index.html"
                    size = (static / name).stat().st_size
                    p50, p99, rate = wrk(f"{base}{endpoint}", args.seconds, args.connections)
                    f50, f99, frate = wrk(f"http://127.0.0.1:{floor_port}/{name}", args.seconds, args.connections)
                    goal = 150 if endpoint == "/" else 50
                    verdict = "met" if p99 < goal else "NOT met"
                    print(
                        f"{endpoint:18} {size:>8} {p50:>8.2f} {p99:>8.2f} {rate:>8.0f} | "
                        f"{f50:>9.2f} {f99:>9.2f} {frate:>8.0f}  < {goal} ms: {verdict}"
                    )
            finally:
                floor.terminate()
                floor.wait(timeout=10)
            print(f"monitor resident memory after the load: {rss_kib(monitor.pid) / 1024:.1f} MiB")
        finally:
            monitor.terminate()
            monitor.wait(timeout=20)
        print(f"\nsteady-state CPU of the deployed monitor: {lab_cpu(args.cpu_seconds)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
