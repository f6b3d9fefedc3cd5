"""Every real recording in selftest/recorded/ is read by the reader the harness uses for it,
and none is refused whole.

The per-format tests pin what each recording says; this one guards the corpus as a whole: a
recording added without a reader here fails (so nothing is kept that nothing reads), and a
reader that starts refusing any recording of its format fails here, whichever recording it is.
Where a real output is an answer rather than a listing (``Could not find service``, sudo's
refusal, an ``ss`` that has no ``-H``), the test asserts the typed answer the gathering acts on.
"""

from __future__ import annotations

import json
import plistlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.facts.gather import _SS_WITHOUT_H
from conformance.facts.parsers import (
    LaunchdServiceNotFound,
    ParseError,
    parse_launchctl_print,
    parse_lsof,
    parse_lsof_fields,
    parse_netstat_linux,
    parse_plist,
    parse_ss,
    parse_systemctl_show_many,
    parse_unit_file,
)
from conformance.facts.parsers.launchd import label_from_target
from conformance.facts.parsers.listeners import parse_proc_net_tcp, read_netstat_macos
from conformance.facts.sudo_list import parse_sudo_list
from selftest.unit.parsers._recorded import RECORDED


def _launchctl(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if "Could not find service" in text:
        with pytest.raises(LaunchdServiceNotFound):
            parse_launchctl_print(text, "com.example.absent")
        return "not loaded"
    header = next(line for line in text.splitlines() if line.strip())
    job = parse_launchctl_print(text, label_from_target(header.split(" = ")[0].strip()))
    assert job.state, path.name
    return job


def _plist(path: Path) -> Any:
    data = path.read_bytes()
    loaded = plistlib.loads(data)  # XML or binary: plistlib reads both, as the gathering does
    if isinstance(loaded, dict) and "Label" in loaded:
        return parse_plist(data, path.name)  # a launchd job: read as the gathering reads it
    return loaded


def _ss(path: Path) -> Any:
    listeners = parse_ss(path.read_text(encoding="utf-8"))
    assert listeners, path.name
    return listeners


def _proc(family: str) -> Callable[[Path], Any]:
    def read(path: Path) -> Any:
        sockets = parse_proc_net_tcp(path.read_text(encoding="utf-8"), family)  # type: ignore[arg-type]
        assert sockets, path.name
        return sockets

    return read


def _listing(parse: Callable[[str], Any]) -> Callable[[Path], Any]:
    def read(path: Path) -> Any:
        found = parse(path.read_text(encoding="utf-8"))
        assert found, path.name
        return found

    return read


def _netstat_macos(path: Path) -> Any:
    # Two recordings hold only connected sockets: read, and no listener in them (pinned in
    # test_recorded_macos.py).
    return read_netstat_macos(path.read_text(encoding="utf-8"))


def _sudo(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.name.endswith(".stderr.txt"):
        assert "password is required" in text  # sudo's refusal: the doctor's answer, not a listing
        return text
    listing = parse_sudo_list(text)
    assert listing.commands, path.name
    return listing


def _ss_error(path: Path) -> Any:
    assert _SS_WITHOUT_H.search(path.read_text(encoding="utf-8")), "the gathering must tell an ss without -H"
    return "ss without -H"


def _systemctl(path: Path) -> Any:
    units = parse_systemctl_show_many(path.read_text(encoding="utf-8"))
    assert units and all(unit.get("Id") or unit.get("LoadState") for unit in units), path.name
    return units


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# (file name predicate, reader); the first that matches reads the file.
READERS: list[tuple[Callable[[str], bool], Callable[[Path], Any]]] = [
    (lambda name: name == "README.md", lambda path: None),
    (lambda name: "launchctl-print" in name, _launchctl),
    (lambda name: name.endswith(".plist"), _plist),
    (lambda name: "proc-net-tcp6" in name, _proc("ipv6")),
    (lambda name: "proc-net-tcp" in name, _proc("ipv4")),
    (lambda name: name.endswith(".err") and "-ss-" in name, _ss_error),
    (lambda name: "-ss-" in name or name.startswith("linux-ss-"), _ss),
    (lambda name: "lsof-F" in name, _listing(parse_lsof_fields)),
    (lambda name: "lsof" in name, _listing(parse_lsof)),
    (lambda name: name.startswith("linux-netstat"), _listing(parse_netstat_linux)),
    (lambda name: name.startswith("macos") and "netstat" in name, _netstat_macos),
    (lambda name: "sudo" in name, _sudo),
    (lambda name: "systemctl-show" in name, _systemctl),
    (lambda name: name.endswith(".service.txt"), lambda path: parse_unit_file(path.read_text(), path.name)),
    (lambda name: name.endswith(".json"), _json),
]


# Outputs that are ambiguous by themselves, kept to prove the reader refuses to guess: each is
# a command form the gathering never runs, or needs the second source it always reads beside
# it. The refusal names what would settle it (pinned in test_parsers_listeners.py).
AMBIGUOUS_ALONE = {
    # legacy ss prints ':::80' and '*:22'; the gathering reads /proc/net/tcp{,6} in the same round
    "centos7-ss-ntl-legacy.txt": "not read without the kernel's tables",
    # lsof -F without the t field: '*' is 0.0.0.0 or '::'; the gathering asks -Fpcnt
    "linux-lsof-Fpcn-lab.txt": "request the t field",
    # netstat without -W cuts IPv6 addresses; the gathering never runs netstat on Linux
    "linux-netstat-tlnp-truncated-lab.txt": "run netstat with -W",
}


def _recordings() -> list[Path]:
    return sorted(path for path in RECORDED.iterdir() if path.is_file())


def _reader(name: str) -> Callable[[Path], Any] | None:
    return next((read for matches, read in READERS if matches(name)), None)


def test_every_recording_has_a_reader():
    unread = [path.name for path in _recordings() if _reader(path.name) is None]
    assert not unread, f"recordings nothing reads (add their reader to READERS): {unread}"


@pytest.mark.parametrize("path", _recordings(), ids=lambda path: path.name)
def test_no_recording_is_refused_whole(path):
    reader = _reader(path.name)
    if reader is None:
        pytest.fail(f"{path.name}: no reader")
    if path.name in AMBIGUOUS_ALONE:
        with pytest.raises(ParseError, match=re.escape(AMBIGUOUS_ALONE[path.name])):
            reader(path)
        return
    reader(path)
