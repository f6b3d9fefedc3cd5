"""Running the lab: bridge, overlay roots, nspawn containers, health, exec and state.

Each host's root is an overlay: lower = the golden rootfs in the cache, upper = a per-run
folder. `up` and `down` are therefore fast, and `down` throws the upper away, so the next
`up` starts from exactly the golden state.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import platform
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as c
from .build import golden_dir
from .util import LabError, LabUnsupported, log, run, wait_until

NSPAWN_STOP_GRACE = 30.0
BOOT_TIMEOUT = 60.0
HEALTH_TIMEOUT = 240.0
INSIDE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}

# Popen handles of containers started by this process, so stopping them also reaps them
# (a long-lived caller such as a pytest session would otherwise collect zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# --- preconditions ------------------------------------------------------------------------------


def require_supported() -> None:
    missing: list[str] = []
    if platform.system() != "Linux":
        missing.append(f"Linux (this is {platform.system()})")
    if os.geteuid() != 0:
        missing.append("root (run it with sudo or as root)")
    if missing:
        raise LabUnsupported("the lab needs " + " and ".join(missing))


def check_route_clash() -> None:
    """Refuse to create the bridge if the lab network overlaps anything already routed."""
    lab = ipaddress.ip_network(c.LAB_NET)
    out = run(["ip", "-j", "route", "show", "table", "all"], timeout=10).stdout
    for route in json.loads(out or "[]"):
        dst = route.get("dst", "")
        dev = route.get("dev", "")
        if (
            dev == c.BRIDGE
            or dst in ("", "default")
            or route.get("type") in ("local", "broadcast", "multicast", "anycast")
        ):
            continue
        try:
            net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        if net.version == 4 and net.overlaps(lab):
            raise LabError(
                f"the lab network {c.LAB_NET} clashes with the machine's route "
                f"'{dst} dev {dev}'; refusing to create {c.BRIDGE} (it would break routing)"
            )
    out = run(["ip", "-j", "-4", "addr", "show"], timeout=10).stdout
    for link in json.loads(out or "[]"):
        if link.get("ifname") == c.BRIDGE:
            continue
        for a in link.get("addr_info", []):
            if ipaddress.ip_address(a.get("local", "0.0.0.0")) in lab:
                raise LabError(
                    f"address {a['local']} on {link.get('ifname')} lies in the lab network "
                    f"{c.LAB_NET}; refusing to create {c.BRIDGE}"
                )


# --- state --------------------------------------------------------------------------------------


@dataclass
class HostRun:
    nspawn_pid: int = 0
    leader_pid: int = 0
    powered_off: bool = False


@dataclass
class LabState:
    hosts: dict[str, HostRun] = field(default_factory=dict)
    bridge: bool = False
    drifts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "hosts": {h: vars(r) for h, r in self.hosts.items()},
                "bridge": self.bridge,
                "drifts": self.drifts,
                "addresses": {h: s.addr for h, s in c.HOSTS.items()},
            },
            indent=2,
        )


def state_file() -> Path:
    return c.state_dir() / "state.json"


def load_state() -> LabState:
    try:
        raw = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return LabState()
    hosts = {h: HostRun(**v) for h, v in raw.get("hosts", {}).items() if h in c.HOSTS}
    return LabState(hosts=hosts, bridge=bool(raw.get("bridge")), drifts=raw.get("drifts", []))


def save_state(st: LabState) -> None:
    d = c.state_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / ".state.json.tmp"
    tmp.write_text(st.to_json() + "\n")
    tmp.replace(state_file())


# --- processes ----------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 (after the parenthesised name) is the state; a zombie has already exited.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_our_nspawn(pid: int, host: str) -> bool:
    argv = _cmdline(pid)
    return bool(argv) and argv[0].endswith("systemd-nspawn") and f"--machine={c.HOSTS[host].machine}" in argv


def find_nspawn(host: str) -> int:
    """PID of this host's nspawn process, found by its exact machine argument."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_our_nspawn(int(entry.name), host) and pid_alive(int(entry.name)):
            return int(entry.name)
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(x) for x in (task / "children").read_text().split()]
    return out


def _leader_of(nspawn_pid: int) -> int:
    """The container's PID 1 (systemd): a child of nspawn in its own PID namespace."""
    own_ns = Path("/proc/self/ns/pid").readlink()
    for child in _children(nspawn_pid):
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{child}/comm").read_text().strip()
            if comm == "systemd" and Path(f"/proc/{child}/ns/pid").readlink() != own_ns:
                return child
    return 0


# --- mounts and bridge -----------------------------------------------------------------------


def run_dir(host: str) -> Path:
    return c.cache_dir() / "run" / host


def root_dir(host: str) -> Path:
    return run_dir(host) / "root"


def mounted(path: Path) -> bool:
    target = str(path)
    return any(line.split()[1] == target for line in Path("/proc/mounts").read_text().splitlines())


def mount_root(host: str, fresh: bool) -> None:
    rd = run_dir(host)
    root = root_dir(host)
    if mounted(root):
        return
    if fresh:
        wipe_run_dir(host)
    for sub in ("upper", "work", "root"):
        (rd / sub).mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={golden_dir(host)},upperdir={rd / 'upper'},workdir={rd / 'work'}"
    run(["mount", "-t", "overlay", f"gc-lab-{host}", "-o", opts, str(root)], timeout=30)


def unmount_root(host: str) -> None:
    root = root_dir(host)
    # nspawn leaves propagation mounts below the root on some paths; innermost first.
    prefix = str(root)
    targets = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
    for t in sorted((t for t in targets if t == prefix or t.startswith(prefix + "/")), key=len, reverse=True):
        if run(["umount", t], timeout=60, check=False).returncode != 0:
            run(["umount", "-l", t], timeout=60, check=False)


def wipe_run_dir(host: str) -> None:
    import shutil

    rd = run_dir(host)
    if mounted(root_dir(host)):
        raise LabError(f"{root_dir(host)} is still mounted; not wiping {rd}")
    if rd.exists():
        shutil.rmtree(rd)


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def ensure_bridge() -> bool:
    """Create gcbr0 with the lab address; True if this call created it."""
    created = False
    if not link_exists(c.BRIDGE):
        check_route_clash()
        run(["ip", "link", "add", c.BRIDGE, "type", "bridge"], timeout=10)
        created = True
    elif not Path(f"/sys/class/net/{c.BRIDGE}/bridge").exists():
        raise LabError(f"{c.BRIDGE} exists but is not a bridge; refusing to use it")
    addrs = run(["ip", "-4", "-o", "addr", "show", "dev", c.BRIDGE], timeout=10).stdout
    if f"{c.BRIDGE_ADDR}/{c.PREFIX_LEN}" not in addrs:
        run(["ip", "addr", "add", f"{c.BRIDGE_ADDR}/{c.PREFIX_LEN}", "dev", c.BRIDGE], timeout=10)
    run(["ip", "link", "set", c.BRIDGE, "up"], timeout=10)
    return created


def remove_bridge() -> None:
    if link_exists(c.BRIDGE):
        run(["ip", "link", "del", c.BRIDGE], timeout=10)


def veth_name(host: str) -> str:
    # systemd-nspawn names the machine-side end "vb-<machine>" (cut to 15 characters).
    return ("vb-" + c.HOSTS[host].machine)[:15]


# --- containers ---------------------------------------------------------------------------------


def console_log(host: str) -> Path:
    return c.state_dir() / "logs" / f"{host}-console.log"


def spawn_host(host: str) -> HostRun:
    spec = c.HOSTS[host]
    logf = console_log(host)
    logf.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "systemd-nspawn",
        f"--directory={root_dir(host)}",
        "--boot",
        f"--machine={spec.machine}",
        f"--hostname={host}",
        f"--network-bridge={c.BRIDGE}",
        # No system bus on this machine: without these two nspawn fails to start.
        "--register=no",
        "--keep-unit",
        "--console=passive",
        # The rootfs carries its own offline resolv.conf and timezone; don't overwrite them.
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
    ]
    if host == c.MINI:
        # The scheduled monitor (deploy/) runs this very checkout, read-only.
        argv.append(f"--bind-ro={c.repo_root()}:{c.HARNESS_SRC}")
    with logf.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C on the CLI must not kill the lab
        )
    _CHILDREN[proc.pid] = proc
    deadline = time.monotonic() + BOOT_TIMEOUT
    leader = 0
    while not leader:
        if proc.poll() is not None:
            tail = logf.read_text(errors="replace")[-1500:]
            raise LabError(f"systemd-nspawn for {host} exited with {proc.returncode}:\n{tail}")
        leader = _leader_of(proc.pid)
        if not leader and not wait_until(deadline, 0.05):
            raise LabError(f"{host}: container init did not appear within {BOOT_TIMEOUT:.0f}s")
    return HostRun(nspawn_pid=proc.pid, leader_pid=leader)


def host_running(st: LabState, host: str) -> bool:
    r = st.hosts.get(host)
    return bool(
        r
        and not r.powered_off
        and pid_alive(r.nspawn_pid)
        and pid_alive(r.leader_pid)
        and is_our_nspawn(r.nspawn_pid, host)
    )


def stop_nspawn(pid: int, host: str) -> None:
    """SIGTERM the nspawn process (clean poweroff inside), then SIGKILL if it lingers."""
    if not pid_alive(pid) or not is_our_nspawn(pid, host):
        _reap(pid)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + NSPAWN_STOP_GRACE
    while pid_alive(pid):
        _reap(pid)
        if not wait_until(deadline, 0.1):
            log(f"{host}: nspawn {pid} ignored SIGTERM for {NSPAWN_STOP_GRACE:.0f}s; SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while pid_alive(pid) and wait_until(kill_deadline, 0.1):
                _reap(pid)
            break
    _reap(pid)


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        _CHILDREN.pop(pid, None)


# --- inside the hosts ------------------------------------------------------------------------


def leader(host: str) -> int:
    st = load_state()
    if not host_running(st, host):
        raise LabError(f"lab host {host!r} is not running (try: conformance lab up)")
    return st.hosts[host].leader_pid


def exec_in(
    host: str,
    argv: Sequence[str],
    *,
    timeout: float,
    capture: bool = True,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv as root inside the host's namespaces (no SSH involved)."""
    if host not in c.HOSTS:
        raise LabError(f"unknown lab host {host!r}; known: {', '.join(c.HOSTS)}")
    pid = leader(host)
    full_env = dict(INSIDE_ENV)
    full_env.update(env or {})
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-a", "--", *argv],
        timeout=timeout,
        env=full_env,
        text=True,
        capture_output=capture,
        input=input_text,
        check=False,
    )


def inside_ok(host: str, argv: Sequence[str], timeout: float = 15) -> bool:
    try:
        return exec_in(host, argv, timeout=timeout).returncode == 0
    except (subprocess.TimeoutExpired, LabError):
        return False


def unit_states(host: str, units: Sequence[str]) -> dict[str, str]:
    out = exec_in(host, ["systemctl", "is-active", *units], timeout=15).stdout.split()
    return {u: (out[i] if i < len(out) else "unknown") for i, u in enumerate(units)}


def listeners(host: str) -> list[tuple[str, int, str]]:
    """(address, port, process) of every TCP listener inside the host."""
    res = exec_in(host, ["ss", "-Htlnp"], timeout=15)
    found: list[tuple[str, int, str]] = []
    for line in res.stdout.splitlines():
        cols = line.split()
        if len(cols) < 4:
            continue
        local = cols[3]
        addr, _, port = local.rpartition(":")
        proc = ""
        if "users:((" in line:
            proc = line.split('users:(("', 1)[1].split('"', 1)[0]
        with contextlib.suppress(ValueError):
            found.append((addr.strip("[]"), int(port), proc))
    return found


def http_get(url: str, timeout: float = 3.0, headers: Mapping[str, str] | None = None) -> tuple[int, str]:
    """GET a lab address (never anything else); (status, body) or (0, error)."""
    req = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - lab http
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError) as exc:
        return 0, str(exc)


def tcp_open(addr: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Problem:
    host: str
    what: str
    unit: str = ""


def host_problems(host: str) -> list[Problem]:
    """Everything that keeps a host from being healthy, cheapest checks first."""
    spec = c.HOSTS[host]
    try:
        states = unit_states(host, spec.units)
    except (LabError, subprocess.TimeoutExpired) as exc:
        return [Problem(host, f"not reachable: {exc}")]
    probs = [Problem(host, f"unit {u} is {s}", u) for u, s in states.items() if s != "active"]
    if probs:
        return probs
    try:
        listening = {(a, p) for a, p, _ in listeners(host)}
    except (LabError, subprocess.TimeoutExpired) as exc:
        return [Problem(host, f"ss failed: {exc}")]
    for addr, port in spec.ports:
        if (addr, port) not in listening:
            return [Problem(host, f"nothing listens on {addr}:{port}", _unit_for_port(port))]
    for url, unit in health_urls(host):
        status, body = http_get(url)
        if status != 200:
            return [Problem(host, f"GET {url} -> {status or body}", unit)]
    if host == c.MINI and not inside_ok(
        host, ["curl", "-fsS", "-m", "3", f"http://127.0.0.1:{c.OPTILLM_PROXY_PORT}/health"]
    ):
        return [Problem(host, "inside: GET 127.0.0.1:4020/health failed", c.OPTILLM_PROXY_UNIT)]
    return []


def _unit_for_port(port: int) -> str:
    if port == c.LITELLM_PORT:
        return c.LITELLM_UNIT
    if port == c.OPTILLM_PROXY_PORT:
        return c.OPTILLM_PROXY_UNIT
    for inst in c.LOCAL_INSTANCES:
        if inst.port == port:
            return inst.unit
    return "ssh"


def health_urls(host: str) -> list[tuple[str, str]]:
    if host == c.MINI:
        return [(f"http://{c.MINI_ADDR}:{c.LITELLM_PORT}/health/liveliness", c.LITELLM_UNIT)]
    return [(f"http://{c.STUDIO_ADDR}:{i.port}/health", i.unit) for i in c.LOCAL_INSTANCES]


def journal_tail(host: str, unit: str, lines: int = 25) -> str:
    try:
        res = exec_in(
            host, ["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "short-precise"], timeout=20
        )
        return res.stdout
    except (LabError, subprocess.TimeoutExpired) as exc:
        return f"(journal unavailable: {exc})"


def wait_healthy(hosts: Sequence[str], timeout: float = HEALTH_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    pending = list(hosts)
    last: list[Problem] = []
    while pending:
        last = []
        for h in list(pending):
            probs = host_problems(h)
            if probs:
                last += probs
            else:
                pending.remove(h)
        if pending and not wait_until(deadline, 0.25):
            p = last[0]
            msg = f"lab not healthy after {timeout:.0f}s: {p.host}: {p.what}"
            if p.unit:
                msg += f"\n--- journalctl -u {p.unit} (last lines) on {p.host} ---\n"
                msg += journal_tail(p.host, p.unit)
            raise LabError(msg)


# --- one lab operation at a time -----------------------------------------------------------

_LOCK_DEPTH = 0
_LOCK_FD = -1


@contextlib.contextmanager
def lab_lock(timeout: float = 900.0) -> Iterator[None]:
    """Serialise lab operations across processes (e.g. pytest-xdist workers calling up).

    Re-entrant within a process: a drift that powers a host off calls stop_host while
    already holding the lock.
    """
    import fcntl

    global _LOCK_DEPTH, _LOCK_FD
    if _LOCK_DEPTH:
        _LOCK_DEPTH += 1
        try:
            yield
        finally:
            _LOCK_DEPTH -= 1
        return
    path = c.cache_dir() / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if not wait_until(deadline, 0.2):
                os.close(fd)
                raise LabError(f"another lab operation holds {path} for {timeout:.0f}s") from None
    _LOCK_FD, _LOCK_DEPTH = fd, 1
    try:
        yield
    finally:
        _LOCK_DEPTH = 0
        _LOCK_FD = -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
