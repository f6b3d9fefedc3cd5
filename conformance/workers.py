"""How many xdist workers a run of the suites should start: the plugin picks, not the habit.

The controller gathers every host's facts once, in threads, and the checks that remain
are pure and cheap, so a worker only pays off when there are enough checks to spread. The
figures come from ``benchmarks/run.py`` and ``benchmarks/scale.py`` on the lab (README,
Performance): a worker's start-up (interpreter, pytest, plugins, inventory, collection)
costs about 0.8 s of CPU, and a check about 5 ms in one process once its facts are there.
A run of ``n`` checks on ``w`` workers then takes about ``0.8 + n * 0.005 / w`` seconds
against ``n * 0.005`` in one process: two workers start to pay off above about 320 checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

WORKER_START_SECONDS = 0.8
CHECK_SECONDS = 0.005


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's or a cgroup's cpuset included)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class WorkerChoice:
    asked: str  # what -n said: "auto", "logical" or a number
    workers: int
    checks: int
    forced: bool = False

    def header(self) -> str:
        """The one line the run prints about it."""
        if self.forced:
            return f"conformance: -n {self.asked} kept as asked (--conformance-force-workers): {self.workers} workers"
        if self.workers == 0:
            return (
                f"conformance: -n {self.asked}: the {self.checks} checks run in this process (facts are gathered "
                f"once per run, in threads; below {threshold()} checks a worker costs more than it saves; "
                "--conformance-force-workers keeps -n N)"
            )
        return (
            f"conformance: -n {self.asked}: {self.workers} workers for {self.checks} checks "
            "(facts are gathered once per run and shared with the workers)"
        )


def threshold() -> int:
    """The fewest checks for which two workers beat one process."""
    return int(2 * WORKER_START_SECONDS / CHECK_SECONDS)


def choose(asked: str | int, checks: int, cpus: int) -> int:
    """Workers for ``checks`` checks: none below the threshold, else as many as pay off.

    ``asked`` is a ceiling: ``-n 4`` never starts more than 4 workers, ``-n auto`` never
    more than the usable CPUs.
    """
    ceiling = cpus if isinstance(asked, str) else max(0, asked)
    if checks < threshold() or ceiling < 2 or cpus < 2:
        return 0
    # Each worker must save more than its own start-up: n * c / w >= s, so w <= n * c / s.
    paying = int(checks * CHECK_SECONDS / WORKER_START_SECONDS)
    return max(2, min(ceiling, cpus, paying))
