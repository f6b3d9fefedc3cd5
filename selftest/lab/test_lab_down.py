"""`down` leaves nothing behind, and `up` works again afterwards (runs last: slowest)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import lab_skip_reason

_reason = lab_skip_reason()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def nspawn_machines() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"systemd-nspawn"):
            found += [a.decode() for a in argv if a.startswith(b"--machine=gc-")]
    return found


def test_down_leaves_nothing_then_up_again(lab):
    from lab import cache_dir, lab_down, lab_is_healthy, lab_up

    secs = lab_down()
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, timeout=10, check=True).stdout
    assert "gcbr0" not in links
    assert "vb-gc-" not in links
    assert nspawn_machines() == []
    run_root = str(cache_dir() / "run")
    mounts = Path("/proc/mounts").read_text()
    assert run_root not in mounts
    assert "gc-lab-" not in mounts
    assert not Path(run_root, "mini").exists()
    assert lab_down() < 5  # down on a stopped lab is a no-op

    info = lab_up()
    print(f"down {secs:.1f} s; warm up after down {info.seconds:.1f} s")
    assert info.changed and not info.cold
    assert info.seconds < 60
    assert lab_is_healthy()
