"""Public Python API of the lab (the harness's self-tests call these)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import config as c
from .build import cold_build, golden_current, golden_dir
from .runtime import (
    HostRun,
    LabState,
    ensure_bridge,
    exec_in,
    find_nspawn,
    host_problems,
    host_running,
    lab_lock,
    link_exists,
    listeners,
    load_state,
    mount_root,
    mounted,
    pid_alive,
    remove_bridge,
    require_supported,
    root_dir,
    save_state,
    spawn_host,
    stop_nspawn,
    unit_states,
    unmount_root,
    veth_name,
    wait_healthy,
    wipe_run_dir,
)
from .secrets import load_or_create_secrets, monitor_key_paths
from .util import LabError, log, run, write_file

# Default state dir at import time (CONFORMANCE_LAB_STATE is read again by state_dir()).
STATE_DIR = c.state_dir()
KNOWN_HOSTS = "known_hosts"
MONITOR_KEY = "monitor_ed25519"
SECRETS_ENV = "secrets.env"


@dataclass(frozen=True)
class HostInfo:
    name: str
    machine: str
    addr: str
    nspawn_pid: int
    leader_pid: int


@dataclass(frozen=True)
class LabInfo:
    state_dir: Path
    hosts: dict[str, HostInfo]
    known_hosts: Path
    monitor_key: Path
    secrets_env: Path
    secrets: dict[str, str]
    seconds: float
    cold: bool
    changed: bool
    drifts: list[str] = field(default_factory=list)


def _write_state_files() -> None:
    """known_hosts, monitor key and secrets.env into the repo-local state dir."""
    d = c.state_dir()
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for host, spec in c.HOSTS.items():
        for pub in sorted((golden_dir(host) / "etc" / "ssh").glob("ssh_host_*_key.pub")):
            keytype, blob = pub.read_text().split()[:2]
            lines.append(f"{spec.addr} {keytype} {blob}\n")
    write_file(d / KNOWN_HOSTS, "".join(lines), 0o644)
    # The monitor inside the Mini reaches the Studio with the same pinned keys.
    mini_etc = root_dir(c.MINI) / c.HARNESS_ETC.lstrip("/")
    if mini_etc.is_dir():
        studio_lines = [line for line in lines if line.startswith(c.STUDIO_ADDR + " ")]
        write_file(mini_etc / KNOWN_HOSTS, "".join(studio_lines), 0o644)
    key, pub = monitor_key_paths()
    write_file(d / MONITOR_KEY, key.read_bytes(), 0o600)
    write_file(d / (MONITOR_KEY + ".pub"), pub.read_bytes(), 0o644)
    write_file(d / SECRETS_ENV, load_or_create_secrets().env_text(), 0o600)


def _info(st: LabState, seconds: float, cold: bool, changed: bool) -> LabInfo:
    d = c.state_dir()
    s = load_or_create_secrets()
    return LabInfo(
        state_dir=d,
        hosts={
            h: HostInfo(h, spec.machine, spec.addr, st.hosts[h].nspawn_pid, st.hosts[h].leader_pid)
            for h, spec in c.HOSTS.items()
            if h in st.hosts
        },
        known_hosts=d / KNOWN_HOSTS,
        monitor_key=d / MONITOR_KEY,
        secrets_env=d / SECRETS_ENV,
        secrets={
            "LITELLM_MASTER_KEY": s.litellm_master_key,
            "OPTILLM_LOCAL_API_KEY": s.optillm_local_api_key,
            "HF_TOKEN": s.hf_token,
        },
        seconds=seconds,
        cold=cold,
        changed=changed,
        drifts=[d_["name"] for d_ in st.drifts],
    )


def _lab_up_unlocked() -> LabInfo:
    """Bring the lab up (building what is missing) and wait until every host is healthy."""
    require_supported()
    t0 = time.monotonic()
    st = load_state()
    if all(host_running(st, h) for h in c.HOSTS) and not any(host_problems(h) for h in c.HOSTS):
        _write_state_files()
        return _info(st, time.monotonic() - t0, cold=False, changed=False)
    stale = [h for h in c.HOSTS if mounted(root_dir(h)) and not golden_current(h)]
    if stale:
        # Rebuilding a golden rootfs under a mounted overlay would corrupt the running host.
        raise LabError(
            f"the golden rootfs of {', '.join(stale)} is out of date but in use; "
            "run `conformance lab down` first, then `up`"
        )
    cold = cold_build()
    _write_state_files()
    if ensure_bridge():
        st.bridge = True
    started = []
    for host in c.HOSTS:
        if host_running(st, host):
            continue
        _adopt_or_clear(st, host)
        prev = st.hosts.get(host)
        # Fresh overlay unless the host was powered off on purpose (it keeps its state then).
        mount_root(host, fresh=not (prev and prev.powered_off))
        log(f"starting {host} ({c.HOSTS[host].machine}, {c.HOSTS[host].addr})")
        st.hosts[host] = spawn_host(host)
        save_state(st)
        started.append(host)
    if not any(st.hosts[h].powered_off for h in c.HOSTS) and len(started) == len(c.HOSTS):
        st.drifts = []  # a full start from fresh overlays carries no drift
    save_state(st)
    _write_state_files()  # again, now that the Mini's root is mounted (its known_hosts)
    wait_healthy(list(c.HOSTS))
    return _info(st, time.monotonic() - t0, cold=cold, changed=True)


def _adopt_or_clear(st: LabState, host: str) -> None:
    # A container left running by a lost state file must not be started twice.
    pid = find_nspawn(host)
    if pid:
        log(f"{host}: stopping an orphaned container (nspawn pid {pid})")
        stop_nspawn(pid, host)
    if not mounted(root_dir(host)):
        return
    if not (st.hosts.get(host) and st.hosts[host].powered_off):
        unmount_root(host)


def _stop_host_unlocked(name: str) -> None:
    """Power one host off (clean shutdown), keeping its overlay so start_host resumes it."""
    require_supported()
    if name not in c.HOSTS:
        raise LabError(f"unknown lab host {name!r}")
    st = load_state()
    run_ = st.hosts.get(name) or HostRun()
    pid = run_.nspawn_pid if pid_alive(run_.nspawn_pid) else find_nspawn(name)
    if pid:
        stop_nspawn(pid, name)
    _wait_leader_gone(run_.leader_pid)
    unmount_root(name)
    _remove_veth(name)
    st.hosts[name] = HostRun(powered_off=True)
    save_state(st)


def _start_host_unlocked(name: str) -> None:
    """Power a stopped host on again and wait until it is healthy."""
    require_supported()
    if name not in c.HOSTS:
        raise LabError(f"unknown lab host {name!r}")
    st = load_state()
    if host_running(st, name):
        return
    ensure_bridge()
    mount_root(name, fresh=False)
    st.hosts[name] = spawn_host(name)
    save_state(st)
    wait_healthy([name])


def _wait_leader_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _remove_veth(host: str) -> None:
    # nspawn deletes its veth with the container's netns; only a leftover is removed here.
    name = veth_name(host)
    if link_exists(name):
        run(["ip", "link", "del", name], timeout=10, check=False)


def _lab_down_unlocked() -> float:
    """Stop every host, remove mounts, veths and the bridge; no-op when already down."""
    require_supported()
    t0 = time.monotonic()
    st = load_state()
    for host in c.HOSTS:
        r = st.hosts.get(host) or HostRun()
        pid = r.nspawn_pid if pid_alive(r.nspawn_pid) else find_nspawn(host)
        if pid:
            log(f"stopping {host} (nspawn pid {pid})")
            stop_nspawn(pid, host)
        _wait_leader_gone(r.leader_pid)
        unmount_root(host)
        _remove_veth(host)
        if (c.cache_dir() / "run" / host).exists():
            wipe_run_dir(host)
    remove_bridge()
    sf = c.state_dir() / "state.json"
    sf.unlink(missing_ok=True)
    return time.monotonic() - t0


@dataclass(frozen=True)
class HostStatus:
    name: str
    machine: str
    addr: str
    running: bool
    units: dict[str, str]
    listening: list[tuple[str, int, str]]


def lab_status() -> dict[str, HostStatus]:
    require_supported()
    st = load_state()
    out: dict[str, HostStatus] = {}
    for host, spec in c.HOSTS.items():
        running = host_running(st, host)
        units: dict[str, str] = {}
        ports: list[tuple[str, int, str]] = []
        if running:
            try:
                units = unit_states(host, spec.units)
                ports = listeners(host)
            except (LabError, subprocess.TimeoutExpired):
                running = False
        out[host] = HostStatus(host, spec.machine, spec.addr, running, units, ports)
    return out


def lab_is_healthy() -> bool:
    st = load_state()
    return all(host_running(st, h) for h in c.HOSTS) and not any(host_problems(h) for h in c.HOSTS)


def lab_exec(host: str, argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run argv as root inside a lab host (nsenter into its systemd); captures output."""
    require_supported()
    return exec_in(host, argv, timeout=timeout)


def secrets_env() -> dict[str, str]:
    s = load_or_create_secrets()
    return {
        "LITELLM_MASTER_KEY": s.litellm_master_key,
        "OPTILLM_LOCAL_API_KEY": s.optillm_local_api_key,
        "HF_TOKEN": s.hf_token,
    }


def host_root(host: str) -> Path:
    """The running host's root as seen from the machine (the overlay mount)."""
    return root_dir(host)


@dataclass(frozen=True)
class RunReadiness:
    """What ``lab_for_run`` found or did: the suites then run at once, whatever the lab's health."""

    started: bool
    drifts: list[str]
    note: str


def lab_for_run() -> RunReadiness:
    """The lab as the suites should find it, for ``conformance run``.

    A lab that carries drifts is never waited on (it is not meant to be healthy: the run is
    there to report what the drifts broke) and never brought up (starting a host would undo
    a drift that stopped it). A running lab is used as it is, healthy or not. Only a lab with
    a host not running and no drift is brought up, waiting for health as ``lab up`` does.
    The secrets file the lab inventory names is written if it is missing (0600).
    """
    require_supported()
    st = load_state()
    drifts = [d_["name"] for d_ in st.drifts]
    if drifts or all(host_running(st, h) for h in c.HOSTS):
        secrets_file = c.state_dir() / SECRETS_ENV
        if not secrets_file.exists():
            write_file(secrets_file, load_or_create_secrets().env_text(), 0o600)
        state = f"carries drifts ({', '.join(drifts)})" if drifts else "is running"
        return RunReadiness(False, drifts, f"the lab {state}: running the suites against it now")
    info = lab_up()
    return RunReadiness(True, [], f"lab up in {info.seconds:.1f} s")


def lab_up() -> LabInfo:
    """Bring the lab up (building what is missing) and wait until every host is healthy.

    Holds the lab lock, so concurrent callers (xdist workers) run one at a time.
    """
    require_supported()
    with lab_lock():
        return _lab_up_unlocked()


def stop_host(name: str) -> None:
    """Power one host off (clean shutdown), keeping its overlay so start_host resumes it.

    Holds the lab lock, so concurrent callers (xdist workers) run one at a time.
    """
    require_supported()
    with lab_lock():
        return _stop_host_unlocked(name)


def start_host(name: str) -> None:
    """Power a stopped host on again and wait until it is healthy.

    Holds the lab lock, so concurrent callers (xdist workers) run one at a time.
    """
    require_supported()
    with lab_lock():
        return _start_host_unlocked(name)


def lab_down() -> float:
    """Stop every host, remove mounts, veths and the bridge; no-op when already down.

    Holds the lab lock, so concurrent callers (xdist workers) run one at a time.
    """
    require_supported()
    with lab_lock():
        return _lab_down_unlocked()
