"""The plugin's choice of xdist workers (conformance.workers)."""

from __future__ import annotations

import pytest

from conformance.workers import WorkerChoice, choose, threshold


@pytest.mark.parametrize("asked", ["auto", 4, 2, 64])
def test_a_lab_sized_run_starts_no_worker_whatever_n_says(asked):
    # 51 checks: two workers would cost 1.6 s of start-up to save about 0.13 s of checking.
    assert choose(asked, 51, cpus=2) == 0
    assert choose(asked, threshold() - 1, cpus=16) == 0


def test_many_checks_get_workers_up_to_the_cpus_and_the_ceiling():
    assert choose("auto", 1400, cpus=16) == 8  # 1400 checks x 5 ms pay for 8 start-ups of 0.8 s
    assert choose("auto", 1400, cpus=4) == 4
    assert choose(3, 1400, cpus=16) == 3, "-n N is a ceiling"
    assert choose(1, 1400, cpus=16) == 0, "one worker only adds its start-up to the same work"
    assert choose("auto", 100_000, cpus=1) == 0


def test_the_header_says_what_was_chosen_and_how_to_override():
    line = WorkerChoice("4", 0, 51).header()
    assert "-n 4" in line and "51 checks run in this process" in line and "--conformance-force-workers" in line
    assert "kept as asked" in WorkerChoice("4", 4, 0, forced=True).header()
    assert "8 workers for 1400 checks" in WorkerChoice("auto", 8, 1400).header()
