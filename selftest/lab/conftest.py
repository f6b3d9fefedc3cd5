"""Fixtures for the lab self-tests: one lab for the whole session, drifts reset after use."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator

import pytest


def lab_skip_reason() -> str | None:
    if platform.system() != "Linux" or os.geteuid() != 0:
        return "the lab needs Linux and root"
    from lab.build import golden_current

    # Never cold-build inside a test run: that takes minutes; `conformance lab up` does it.
    missing = [h for h in ("mini", "studio") if not golden_current(h)]
    if missing:
        return f"lab not built for {', '.join(missing)}; run `conformance lab up` first"
    return None


@pytest.fixture(scope="session")
def lab() -> Iterator[object]:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from lab import drift_reset, lab_up

    info = lab_up()
    print(f"\nlab up in {info.seconds:.1f} s (cold={info.cold}, changed={info.changed})")
    yield info
    drift_reset()


@pytest.fixture
def clean_drifts(lab: object) -> Iterator[None]:
    from lab import drift_reset

    drift_reset()
    yield
    drift_reset()
