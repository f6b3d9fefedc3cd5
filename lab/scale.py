"""Scale hosts: N minimal extra lab hosts (gc-s01 .. gc-sNN) for the scale benchmark.

Each host boots real systemd (journald, networkd), sshd with the lab's `monitor` account,
and one stand-in listener (`standin.service`: an empty directory over HTTP on 8080, run by
an unprivileged account). benchmarks/scale.py describes them in a generated inventory and
times the full suites against 2, 10 and 22 hosts.

All hosts share ONE golden rootfs (cache/scale/golden, built once from the lab's base and
stamped like the other stages); each host is an overlay whose upper layer holds only its
identity (hostname, machine id, address, host key), so twenty hosts start in seconds and
cost a few MB of disk each.

This module never touches the main lab: its own cache folder, state file, lock, known_hosts
(.lab/scale_known_hosts) and machine names; processes are matched by PID *and* their exact
`--machine=gc-sNN` argument. It only shares the bridge (created with the main lab's
ensure_bridge and its route-clash check when missing).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import config as c
from . import files as f
from .build import STAMP_CONFIG, _digest, _rm_tree, base_key, chroot, ensure_base, logs_dir, os_chown
from .runtime import (
    INSIDE_ENV,
    _cmdline,
    _leader_of,
    ensure_bridge,
    http_get,
    link_exists,
    mounted,
    pid_alive,
    require_supported,
    tcp_open,
)
from .secrets import load_or_create_monitor_key
from .util import LabError, log, run, wait_until, write_file

MAX_HOSTS = 99  # two-digit names; addresses .21 .. .119 stay clear of the main hosts
ADDR_BASE = 20  # sNN has 198.51.100.(20 + NN)
MACHINE_RE = re.compile(r"^--machine=gc-s(\d{2})$")

STANDIN_USER = "standin"
STANDIN_UID = 1600
STANDIN_PORT = 8080
STANDIN_DIR = "/srv/empty"
STANDIN_UNIT = "standin.service"
STANDIN_UNIT_PATH = f"/etc/systemd/system/{STANDIN_UNIT}"

KNOWN_HOSTS = "scale_known_hosts"
STATE_FILE = "scale_state.json"

LEADER_TIMEOUT = 30.0
READY_TIMEOUT = 180.0
STOP_GRACE = 30.0
LOCK_TIMEOUT = 600.0

# Timers and services a minimal host does not need: they only cost memory and wake-ups.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-tmpfiles-clean.timer",
    "getty@tty1.service",
    "console-getty.service",
)
ENABLED_UNITS = ("systemd-networkd", "ssh", "standin")

# Popen handles of the containers this process started, reaped when they stop (a pytest
# session that runs `scale up` and `scale down` would otherwise collect zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ScaleHost:
    index: int

    @property
    def name(self) -> str:
        return f"s{self.index:02d}"

    @property
    def machine(self) -> str:
        return f"gc-{self.name}"

    @property
    def addr(self) -> str:
        return f"198.51.100.{ADDR_BASE + self.index}"

    @property
    def veth(self) -> str:
        # systemd-nspawn names the machine-side end "vb-<machine>" (cut to 15 characters).
        return ("vb-" + self.machine)[:15]


def scale_host(index: int) -> ScaleHost:
    if not 1 <= index <= MAX_HOSTS:
        raise LabError(f"scale hosts are numbered 1..{MAX_HOSTS}, not {index}")
    return ScaleHost(index)


# --- paths and state ------------------------------------------------------------------------------


def scale_dir() -> Path:
    return c.cache_dir() / "scale"


def golden_dir() -> Path:
    return scale_dir() / "golden"


def run_dir(h: ScaleHost) -> Path:
    return scale_dir() / "run" / h.name


def root_dir(h: ScaleHost) -> Path:
    return run_dir(h) / "root"


def host_key_path(h: ScaleHost) -> Path:
    return scale_dir() / "keys" / h.name / "ssh_host_ed25519_key"


def known_hosts_path() -> Path:
    return c.state_dir() / KNOWN_HOSTS


def state_path() -> Path:
    return c.state_dir() / STATE_FILE


def console_log(h: ScaleHost) -> Path:
    return c.state_dir() / "logs" / f"scale-{h.name}-console.log"


@dataclass
class ScaleRun:
    nspawn_pid: int = 0
    leader_pid: int = 0


@dataclass
class ScaleState:
    hosts: dict[str, ScaleRun] = field(default_factory=dict)
    bridge_created: bool = False


def load_state() -> ScaleState:
    try:
        raw = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return ScaleState()
    hosts = {n: ScaleRun(**v) for n, v in raw.get("hosts", {}).items() if re.fullmatch(r"s\d{2}", n)}
    return ScaleState(hosts=hosts, bridge_created=bool(raw.get("bridge_created")))


def save_state(st: ScaleState) -> None:
    d = c.state_dir()
    d.mkdir(parents=True, exist_ok=True)
    body = {
        "hosts": {n: asdict(r) for n, r in sorted(st.hosts.items())},
        "bridge_created": st.bridge_created,
        "addresses": {n: scale_host(int(n[1:])).addr for n in sorted(st.hosts)},
    }
    tmp = d / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(state_path())


@contextlib.contextmanager
def scale_lock(timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """One scale operation at a time; a lock of its own, so a long main-lab build never
    blocks it and it never blocks the main lab."""
    import fcntl

    path = scale_dir() / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait_until(deadline, 0.2):
                    raise LabError(f"another scale operation holds {path} for {timeout:.0f}s") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- golden rootfs --------------------------------------------------------------------------------

STANDIN_SERVICE = f"""\
[Unit]
Description=Stand-in listener for the scale benchmark (an empty directory over HTTP)
After=network.target

[Service]
Type=simple
User={STANDIN_USER}
Group={STANDIN_USER}
ExecStart=/usr/bin/python3 -m http.server {STANDIN_PORT} --bind 0.0.0.0 --directory {STANDIN_DIR}
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"""

# Only the ed25519 key: each host gets its own at start, and sshd must not look for the
# RSA/ECDSA keys the golden rootfs deliberately lacks.
SSHD_SCALE = "HostKey /etc/ssh/ssh_host_ed25519_key\n"

# The journal lives in /run (tmpfs, i.e. memory); twenty hosts must not each keep the default.
JOURNALD_SCALE = "[Journal]\nStorage=volatile\nRuntimeMaxUse=4M\n"

SUDOERS_SCALE = (
    "# gateway lab (scale host): the one privileged read-only command the harness uses\n"
    f"{c.MONITOR_USER} ALL=(root) NOPASSWD: /usr/bin/ss -Htlnp\n"
)


def golden_files(monitor_pub: str) -> list[f.FileSpec]:
    return [
        f.FileSpec("/etc/resolv.conf", f.RESOLV_CONF, 0o644),
        f.FileSpec("/etc/ssh/sshd_config.d/10-lab.conf", f.SSHD_CONFIG, 0o644),
        f.FileSpec("/etc/ssh/sshd_config.d/20-scale.conf", SSHD_SCALE, 0o644),
        f.FileSpec("/etc/systemd/journald.conf.d/10-scale.conf", JOURNALD_SCALE, 0o644),
        f.FileSpec("/home/monitor/.ssh/authorized_keys", monitor_pub + "\n", 0o600, c.MONITOR_USER),
        f.FileSpec("/etc/sudoers.d/monitor", SUDOERS_SCALE, 0o440),
        f.FileSpec(STANDIN_UNIT_PATH, STANDIN_SERVICE, 0o644),
    ]


def golden_key(monitor_pub: str) -> str:
    return _digest(
        base_key(),
        "scale-v1",
        repr(golden_files(monitor_pub)),
        repr(ENABLED_UNITS),
        repr(MASKED_UNITS),
        str(c.MONITOR_UID),
        str(STANDIN_UID),
    )


def golden_ready() -> bool:
    stamp = golden_dir() / STAMP_CONFIG
    key = golden_key(load_or_create_monitor_key())
    return stamp.is_file() and stamp.read_text().strip() == key


def _uid(name: str) -> int:
    return {"root": 0, c.MONITOR_USER: c.MONITOR_UID, STANDIN_USER: STANDIN_UID}[name]


def build_golden(monitor_pub: str) -> None:
    gold = golden_dir()
    tmp = gold.with_name("golden.tmp")
    logf = logs_dir() / "build-scale.log"
    logf.unlink(missing_ok=True)
    _rm_tree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log(f"scale: building the golden rootfs for the scale hosts (log: {logf})")
    run(["cp", "-a", str(ensure_base()), str(tmp)], timeout=600)
    (tmp / ".gc-lab-base").unlink(missing_ok=True)
    for name, uid, home, shell, system in (
        (c.MONITOR_USER, c.MONITOR_UID, "/home/monitor", "/bin/bash", False),
        (STANDIN_USER, STANDIN_UID, STANDIN_DIR, "/usr/sbin/nologin", True),
    ):
        chroot(tmp, ["groupadd", "--gid", str(uid), name], log_file=logf)
        argv = [
            "useradd",
            "--uid",
            str(uid),
            "--gid",
            str(uid),
            "--home-dir",
            home,
            "--shell",
            shell,
            "--no-create-home",
        ]
        chroot(tmp, [*argv, *(["--system"] if system else []), name], log_file=logf)
        # "*" rather than the locked "!", which sshd would hold against key logins too.
        chroot(tmp, ["usermod", "-p", "*", name], log_file=logf)
    for path, mode, owner in (
        ("/home/monitor", 0o750, c.MONITOR_USER),
        ("/home/monitor/.ssh", 0o700, c.MONITOR_USER),
        (STANDIN_DIR, 0o755, "root"),
    ):
        p = tmp / path.lstrip("/")
        p.mkdir(parents=True, exist_ok=True)
        p.chmod(mode)
        os_chown(p, _uid(owner))
    # Host keys and machine id are per host (written into each overlay at start).
    for key in (tmp / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (tmp / "etc" / "machine-id").write_text("")
    for spec in golden_files(monitor_pub):
        target = tmp / spec.path.lstrip("/")
        if target.is_symlink():
            target.unlink()
        uid = _uid(spec.owner)
        write_file(target, spec.content, spec.mode, uid, uid)
    chroot(tmp, ["systemctl", "enable", *ENABLED_UNITS], log_file=logf, timeout=120)
    chroot(tmp, ["systemctl", "mask", *MASKED_UNITS], log_file=logf, timeout=120)
    (tmp / STAMP_CONFIG).write_text(golden_key(monitor_pub) + "\n")
    _rm_tree(gold)
    tmp.rename(gold)
    log("scale: golden rootfs ready")


def ensure_golden() -> bool:
    """Build the shared golden rootfs if missing or stale; True if it was built."""
    if golden_ready():
        return False
    busy = [p for p in (scale_dir() / "run").glob("s*/root") if mounted(p)]
    if busy:
        # Rebuilding under a mounted overlay would corrupt the running hosts.
        raise LabError("the scale golden rootfs is out of date but in use; run `conformance lab scale down` first")
    build_golden(load_or_create_monitor_key())
    return True


# --- one host -------------------------------------------------------------------------------------


def _ensure_host_key(h: ScaleHost) -> Path:
    # Kept in the cache, so a host keeps its key across up/down and known_hosts stays valid.
    key = host_key_path(h)
    if not (key.is_file() and key.with_suffix(".pub").is_file()):
        key.parent.mkdir(parents=True, exist_ok=True)
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{h.name}", "-f", str(key)], timeout=30)
    return key


def is_scale_nspawn(pid: int, h: ScaleHost | None = None) -> bool:
    """pid is a live systemd-nspawn of a scale host (of h, if given), judged by its argv."""
    argv = _cmdline(pid)
    if not argv or not argv[0].endswith("systemd-nspawn") or not pid_alive(pid):
        return False
    machines = [m.group(1) for a in argv if (m := MACHINE_RE.match(a))]
    if not machines:
        return False
    return h is None or int(machines[0]) == h.index


def find_nspawns() -> dict[int, int]:
    """index -> nspawn PID of every running scale host (recorded in the state or not)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if is_scale_nspawn(pid):
            m = next(m for a in _cmdline(pid) if (m := MACHINE_RE.match(a)))
            found[int(m.group(1))] = pid
    return found


def _mount(h: ScaleHost) -> None:
    rd = run_dir(h)
    _unmount(h)
    if rd.exists():
        shutil.rmtree(rd)  # always fresh: a scale host carries no state between runs
    for sub in ("upper", "work", "root"):
        (rd / sub).mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={golden_dir()},upperdir={rd / 'upper'},workdir={rd / 'work'}"
    run(["mount", "-t", "overlay", f"gc-scale-{h.name}", "-o", opts, str(root_dir(h))], timeout=30)


def _unmount(h: ScaleHost) -> None:
    prefix = str(root_dir(h))
    targets = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
    for t in sorted((t for t in targets if t == prefix or t.startswith(prefix + "/")), key=len, reverse=True):
        if run(["umount", t], timeout=60, check=False).returncode != 0:
            run(["umount", "-l", t], timeout=60, check=False)


def _write_identity(h: ScaleHost) -> None:
    """What makes a host itself, written into its overlay's upper layer before boot."""
    root = root_dir(h)
    for spec in (
        f.FileSpec("/etc/hostname", f"{h.name}\n", 0o644),
        f.FileSpec("/etc/hosts", f.hosts_file(h.name), 0o644),
        f.FileSpec("/etc/machine-id", uuid.uuid4().hex + "\n", 0o444),
        f.FileSpec("/etc/systemd/network/10-lab-host0.network", f.network_file(h.addr), 0o644),
    ):
        target = root / spec.path.lstrip("/")
        if target.is_symlink():
            target.unlink()
        write_file(target, spec.content, spec.mode)
    key = _ensure_host_key(h)
    write_file(root / "etc/ssh/ssh_host_ed25519_key", key.read_bytes(), 0o600)
    write_file(root / "etc/ssh/ssh_host_ed25519_key.pub", key.with_suffix(".pub").read_bytes(), 0o644)


# With --keep-unit and no systemd on the machine, nspawn puts the container's tree under
# its *own* cgroup (".../payload"). Started from the same cgroup, every container would
# share one tree: their systemds then create and remove the same unit cgroups
# (/payload/system.slice/ssh.service, ...) and race, so that short-lived boot units fail
# with "Failed to attach to cgroup ...: No such file or directory" and a host stays in
# "booting, no logins". Each scale host therefore starts from a cgroup of its own, in the
# hierarchies that systemd uses (name=systemd and, on a hybrid machine, the unified one).
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
CGROUP_PARENT = "gc-scale"


def _cgroup_dirs(h: ScaleHost) -> list[Path]:
    roots = [r for r in CGROUP_ROOTS if (r / "cgroup.procs").is_file()]
    return [r / CGROUP_PARENT / h.name for r in roots]


def _remove_cgroups(h: ScaleHost) -> None:
    for top in _cgroup_dirs(h):
        if not top.is_dir():
            continue
        # Only empty directories can go, innermost first (cgroup files vanish with them).
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


# The kernel keeps at most 128 inotify instances per user by default; every container's
# systemd, journald, logind ... holds a few, so twenty hosts exhaust it (logind then fails
# with "Too many open files", and so would the main lab's units). Raised, never lowered.
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_HOST = 24
INOTIFY_FLOOR = 1024


def _ensure_inotify(n: int) -> None:
    want = max(INOTIFY_FLOOR, 256 + INOTIFY_PER_HOST * n)
    with contextlib.suppress(OSError, ValueError):
        have = int(INOTIFY_INSTANCES.read_text())
        if have < want:
            log(f"scale: raising fs.inotify.max_user_instances from {have} to {want} (many systemd hosts)")
            INOTIFY_INSTANCES.write_text(f"{want}\n")


def _spawn(h: ScaleHost) -> subprocess.Popen[bytes]:
    logf = console_log(h)
    logf.parent.mkdir(parents=True, exist_ok=True)
    cgroups = _cgroup_dirs(h)
    for d in cgroups:
        d.mkdir(parents=True, exist_ok=True)
    # A shell moves itself into the host's cgroups, then becomes nspawn (same PID).
    enter = [
        "/bin/sh",
        "-c",
        'for g in "$@"; do case "$g" in --) shift; break;; esac; '
        'echo $$ > "$g/cgroup.procs" || exit 97; shift; done; exec "$@"',
        "sh",
        *(str(d) for d in cgroups),
        "--",
    ]
    argv = [
        "systemd-nspawn",
        f"--directory={root_dir(h)}",
        "--boot",
        f"--machine={h.machine}",
        f"--hostname={h.name}",
        f"--network-bridge={c.BRIDGE}",
        # Same reasons as runtime.spawn_host: no system bus here, own resolv.conf and zone.
        "--register=no",
        "--keep-unit",
        "--console=passive",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
    ]
    with logf.open("ab") as out:
        proc = subprocess.Popen(
            [*enter, *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )  # a Ctrl-C on the CLI must not kill the hosts
    _CHILDREN[proc.pid] = proc
    return proc


def _wait_leaders(procs: dict[ScaleHost, subprocess.Popen[bytes]]) -> dict[ScaleHost, int]:
    deadline = time.monotonic() + LEADER_TIMEOUT
    leaders: dict[ScaleHost, int] = {}
    while len(leaders) < len(procs):
        for h, proc in procs.items():
            if h in leaders:
                continue
            if proc.poll() is not None:
                tail = console_log(h).read_text(errors="replace")[-1500:]
                raise LabError(f"systemd-nspawn for {h.machine} exited with {proc.returncode}:\n{tail}")
            leader = _leader_of(proc.pid)
            if leader:
                leaders[h] = leader
        if len(leaders) < len(procs) and not wait_until(deadline, 0.05):
            late = ", ".join(h.machine for h in procs if h not in leaders)
            raise LabError(f"container init did not appear within {LEADER_TIMEOUT:.0f}s: {late}")
    return leaders


def _system_state(leader: int) -> tuple[str, str]:
    """(systemctl is-system-running, failed units) inside the host, via its PID 1."""
    base = ["nsenter", "-t", str(leader), "-a", "--", "systemctl"]
    try:
        state = subprocess.run(
            [*base, "is-system-running"], capture_output=True, text=True, timeout=10, env=INSIDE_ENV, check=False
        ).stdout.strip()
        failed = ""
        if state == "degraded":
            failed = subprocess.run(
                [*base, "--failed", "--no-legend", "--plain"],
                capture_output=True,
                text=True,
                timeout=10,
                env=INSIDE_ENV,
                check=False,
            ).stdout.strip()
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"unknown ({exc})", ""
    return state or "unknown", failed


def host_problem(h: ScaleHost, leader: int) -> str | None:
    """None when the host has booted cleanly, answers SSH and its stand-in answers 200."""
    # Until boot has finished, pam_nologin refuses every SSH login ("System is booting up"),
    # so an open port 22 alone is not ready; a degraded boot is a problem, not a wait.
    state, failed = _system_state(leader)
    if state != "running":
        return f"{h.name}: system is {state}" + (f"; failed: {' '.join(failed.split())}" if failed else "")
    if not tcp_open(h.addr, 22):
        return f"{h.name}: ssh ({h.addr}:22) does not answer"
    status, body = http_get(f"http://{h.addr}:{STANDIN_PORT}/", timeout=3.0)
    if status != 200:
        return f"{h.name}: GET http://{h.addr}:{STANDIN_PORT}/ -> {status or body}"
    return None


def _wait_ready(hosts: list[ScaleHost], st: ScaleState, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    pending = list(hosts)
    while pending:
        problems = {h: p for h in pending if (p := host_problem(h, st.hosts[h.name].leader_pid))}
        pending = list(problems)
        broken = [p for p in problems.values() if " is degraded" in p]
        if broken:
            raise LabError(f"{len(broken)} scale host(s) booted degraded; first: {broken[0]}")
        if pending and not wait_until(deadline, 0.25):
            first = next(iter(problems.values()))
            raise LabError(f"{len(pending)} scale host(s) not ready after {timeout:.0f}s; first: {first}")


def _stop(pids: dict[ScaleHost, int]) -> None:
    """SIGTERM every nspawn at once (a clean poweroff inside), SIGKILL the ones that linger."""
    live = {h: pid for h, pid in pids.items() if is_scale_nspawn(pid, h)}
    for pid in live.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while any(pid_alive(p) for p in live.values()):
        _reap()
        if not wait_until(deadline, 0.1):
            for h, pid in live.items():
                if pid_alive(pid) and is_scale_nspawn(pid, h):
                    log(f"{h.machine}: nspawn {pid} ignored SIGTERM for {STOP_GRACE:.0f}s; SIGKILL")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while any(pid_alive(p) for p in live.values()) and wait_until(kill_deadline, 0.1):
                _reap()
            break
    _reap()


def _reap() -> None:
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            _CHILDREN.pop(pid, None)


def _clean(h: ScaleHost, leader: int) -> None:
    """Everything a stopped host leaves: its mounts, a stray veth, its run folder."""
    wait = time.monotonic() + 10
    while pid_alive(leader) and wait_until(wait, 0.1):
        pass
    _unmount(h)
    if link_exists(h.veth):
        run(["ip", "link", "del", h.veth], timeout=10, check=False)
    _remove_cgroups(h)
    rd = run_dir(h)
    if mounted(root_dir(h)):
        raise LabError(f"{root_dir(h)} is still mounted; not wiping {rd}")
    if rd.exists():
        shutil.rmtree(rd)


def _reattach(h: ScaleHost) -> None:
    # `conformance lab down` deletes the bridge; a later `up` makes a new one, to which the
    # veths of hosts that kept running are no longer attached. Put them back.
    master = Path(f"/sys/class/net/{h.veth}/master")
    if link_exists(h.veth) and not (master.exists() and master.resolve().name == c.BRIDGE):
        log(f"scale: re-attaching {h.veth} to {c.BRIDGE}")
        run(["ip", "link", "set", h.veth, "master", c.BRIDGE, "up"], timeout=10)


def host_running(st: ScaleState, h: ScaleHost) -> bool:
    r = st.hosts.get(h.name)
    return bool(r and is_scale_nspawn(r.nspawn_pid, h) and pid_alive(r.leader_pid))


def _write_known_hosts(st: ScaleState) -> None:
    lines = []
    for name in sorted(st.hosts):
        h = scale_host(int(name[1:]))
        keytype, blob = host_key_path(h).with_suffix(".pub").read_text().split()[:2]
        lines.append(f"{h.addr} {keytype} {blob}\n")
    write_file(known_hosts_path(), "".join(lines), 0o644)


# --- the operations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleInfo:
    hosts: list[str]
    started: list[str]
    stopped: list[str]
    seconds: float
    golden_built: bool
    known_hosts: Path


def scale_up(n: int) -> ScaleInfo:
    """Exactly hosts s01..sNN running and ready (extra ones are stopped); idempotent."""
    require_supported()
    if not 0 <= n <= MAX_HOSTS:
        raise LabError(f"scale up takes 0..{MAX_HOSTS} hosts, not {n}")
    t0 = time.monotonic()
    with scale_lock():
        st = load_state()
        wanted = [scale_host(i) for i in range(1, n + 1)]
        found = find_nspawns()
        # First away: extra hosts (a larger earlier `up`), orphans (a lost state file) and
        # recorded hosts that died; the wanted ones among them start again below.
        stale = {
            scale_host(int(name[1:])): r.nspawn_pid
            for name, r in st.hosts.items()
            if int(name[1:]) > n or not host_running(st, scale_host(int(name[1:])))
        }
        stale |= {scale_host(i): pid for i, pid in found.items() if i > n or not host_running(st, scale_host(i))}
        stopped = _down_hosts(stale, st)
        built = ensure_golden()
        todo = [h for h in wanted if not host_running(st, h)]
        if wanted and ensure_bridge():
            st.bridge_created = True
        for h in wanted:
            if h not in todo:
                _reattach(h)
        if todo:
            _ensure_inotify(n + len(c.HOSTS))
            for h in todo:
                _mount(h)
                _write_identity(h)
            procs = {h: _spawn(h) for h in todo}
            try:
                leaders = _wait_leaders(procs)
            except LabError:
                _stop({h: p.pid for h, p in procs.items()})
                for h in todo:
                    _clean(h, 0)
                raise
            for h, proc in procs.items():
                st.hosts[h.name] = ScaleRun(proc.pid, leaders[h])
            save_state(st)
            log(f"scale: started {len(todo)} host(s) ({todo[0].name}..{todo[-1].name}); waiting until ready")
        _write_known_hosts(st)
        save_state(st)
        _wait_ready(wanted, st)
        return ScaleInfo(
            [h.name for h in wanted],
            [h.name for h in todo],
            [h.name for h in stopped if h not in wanted],
            time.monotonic() - t0,
            built,
            known_hosts_path(),
        )


def _down_hosts(pids: dict[ScaleHost, int], st: ScaleState) -> list[ScaleHost]:
    if not pids:
        return []
    leaders = {h: st.hosts[h.name].leader_pid if h.name in st.hosts else 0 for h in pids}
    _stop(pids)
    for h in pids:
        _clean(h, leaders[h])
        st.hosts.pop(h.name, None)
    save_state(st)
    return sorted(pids, key=lambda h: h.index)


def scale_down() -> tuple[list[str], float]:
    """Stop and remove every scale host (and only those); no-op when none exist."""
    require_supported()
    t0 = time.monotonic()
    with scale_lock():
        st = load_state()
        pids: dict[ScaleHost, int] = {}
        for name, r in st.hosts.items():
            pids[scale_host(int(name[1:]))] = r.nspawn_pid
        for i, pid in find_nspawns().items():
            pids[scale_host(i)] = pid
        # Leftovers of a crashed run: run folders (mounted or not) without a process.
        for rd in (scale_dir() / "run").glob("s[0-9][0-9]"):
            pids.setdefault(scale_host(int(rd.name[1:])), 0)
        done = _down_hosts(pids, st)
        for root in CGROUP_ROOTS:
            with contextlib.suppress(OSError):
                (root / CGROUP_PARENT).rmdir()
        if st.bridge_created:
            _maybe_remove_bridge()
        state_path().unlink(missing_ok=True)
        known_hosts_path().unlink(missing_ok=True)
        return [h.name for h in done], time.monotonic() - t0


def _maybe_remove_bridge() -> None:
    # The bridge belongs to the main lab; it goes only if scale-up created it, nothing is
    # attached to it any more and the main lab is not running.
    if not link_exists(c.BRIDGE):
        return
    attached = list(Path(f"/sys/class/net/{c.BRIDGE}/brif").iterdir())
    main_state = c.state_dir() / "state.json"
    if attached or main_state.exists():
        return
    run(["ip", "link", "del", c.BRIDGE], timeout=10, check=False)


@dataclass(frozen=True)
class ScaleHostStatus:
    name: str
    machine: str
    addr: str
    running: bool
    problem: str | None


def scale_status() -> list[ScaleHostStatus]:
    """Every scale host in the state or found running, with what keeps it from being ready."""
    require_supported()
    st = load_state()
    indices = {int(n[1:]) for n in st.hosts} | set(find_nspawns())
    out = []
    for i in sorted(indices):
        h = scale_host(i)
        running = host_running(st, h)
        problem = host_problem(h, st.hosts[h.name].leader_pid) if running else "not running"
        out.append(ScaleHostStatus(h.name, h.machine, h.addr, running, problem))
    return out
