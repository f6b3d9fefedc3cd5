"""Cold build of the lab: debootstrap base, golden per-host rootfs, cached drift wheels.

Layout under the cache (see config.cache_dir):
  base/                  debootstrap minbase rootfs, shared by both hosts
  golden/<host>/         per-host rootfs with accounts, venvs, models and config files
  wheels/                transformers wheels for the transformers-5 drift and its reset
  secrets.env, keys/     generated once; the golden config embeds them
  logs/                  build logs
Each stage writes a stamp (hash of its inputs) and is redone only when its inputs change.
Stages build into "<name>.tmp" and are renamed when complete, so an interrupted build
never leaves a half-made stage that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from . import config as c
from . import files as f
from .secrets import LabSecrets, load_or_create_monitor_key, load_or_create_secrets
from .util import LabError, log, run, write_file

CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MACHINE_CA = Path("/etc/ssl/certs/ca-certificates.crt")
WHEELS_SRC = Path("/opt/wheels")
STAMP_BASE = ".gc-lab-base"
STAMP_HEAVY = ".gc-lab-heavy"
STAMP_CONFIG = ".gc-lab-config"
MODEL_BUILDER = "build_tiny_model.py"
PIP_TIMEOUT = 1800.0


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def base_dir() -> Path:
    return c.cache_dir() / "base"


def golden_dir(host: str) -> Path:
    return c.cache_dir() / "golden" / host


def wheels_dir() -> Path:
    return c.cache_dir() / "wheels"


def logs_dir() -> Path:
    return c.cache_dir() / "logs"


def _stamp_ok(root: Path, name: str, key: str) -> bool:
    stamp = root / name
    return stamp.is_file() and stamp.read_text().strip() == key


# --- machine tools ------------------------------------------------------------------------


def ensure_machine_tools() -> None:
    """Install the machine packages the lab drives, if missing (fresh CI machines)."""
    missing = sorted({pkg for tool, pkg in c.MACHINE_TOOLS.items() if not shutil.which(tool)})
    if not missing:
        return
    log(f"installing machine packages: {' '.join(missing)}")
    env = {"PATH": CHROOT_PATH, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
    run(["apt-get", "update"], timeout=600, env=env, log_file=logs_dir() / "apt.log")
    run(
        ["apt-get", "install", "-y", "--no-install-recommends", *missing],
        timeout=900,
        env=env,
        log_file=logs_dir() / "apt.log",
    )


# --- base -----------------------------------------------------------------------------------


def base_key() -> str:
    return _digest("base-v1", c.SUITE, c.MIRROR, ",".join(c.BASE_PACKAGES))


def ensure_base() -> Path:
    root = base_dir()
    key = base_key()
    if _stamp_ok(root, STAMP_BASE, key):
        return root
    tmp = root.with_name("base.tmp")
    _rm_tree(tmp)
    log(f"debootstrap {c.SUITE} into {tmp} (about a minute)")
    run(
        ["debootstrap", "--variant=minbase", "--include=" + ",".join(c.BASE_PACKAGES), c.SUITE, str(tmp), c.MIRROR],
        timeout=1800,
        log_file=logs_dir() / "debootstrap.log",
    )
    (tmp / STAMP_BASE).write_text(key + "\n")
    _rm_tree(root)
    tmp.rename(root)
    return root


def _rm_tree(path: Path) -> None:
    # Only ever called on paths under the lab cache; refuse anything else outright.
    cache = c.cache_dir().resolve()
    if not path.exists() and not path.is_symlink():
        return
    if cache not in path.resolve().parents:
        raise LabError(f"refusing to delete {path}: not under the lab cache {cache}")
    _unmount_under(path)
    shutil.rmtree(path)


def _unmount_under(path: Path) -> None:
    # A crashed build may leave chroot bind mounts; deleting through them would hit the
    # machine's /dev or /opt/wheels.
    prefix = str(path.resolve())
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m == prefix or m.startswith(prefix + "/")), key=len, reverse=True):
        run(["umount", "-l", m], timeout=30, check=False)


# --- chroot ---------------------------------------------------------------------------------


@contextlib.contextmanager
def chroot_mounts(root: Path, bind_wheels: bool) -> Iterator[None]:
    """proc/sys/dev (and /opt/wheels) for pip and torch inside the chroot; always undone."""
    done: list[Path] = []
    try:
        for src, rel, opts in (
            ("proc", "proc", ["-t", "proc"]),
            ("/sys", "sys", ["--bind", "-o", "ro"]),
            ("/dev", "dev", ["--bind"]),
        ):
            target = root / rel
            target.mkdir(exist_ok=True)
            run(["mount", *opts, src, str(target)], timeout=30)
            done.append(target)
        if bind_wheels:
            if not (WHEELS_SRC / "").is_dir():
                raise LabError(f"{WHEELS_SRC} is missing: the CPU torch wheel is expected there")
            target = root / "opt" / "wheels"
            target.mkdir(parents=True, exist_ok=True)
            run(["mount", "--bind", "-o", "ro", str(WHEELS_SRC), str(target)], timeout=30)
            done.append(target)
        # TLS to the registries is re-signed by a local CA; pip inside needs the bundle,
        # and DNS needs the machine's resolver while building (hosts run without it).
        shutil.copyfile(MACHINE_CA, root / "tmp" / "gc-ca.crt")
        resolv = root / "etc" / "resolv.conf"
        resolv.unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", resolv)
        yield
    finally:
        for target in reversed(done):
            if run(["umount", str(target)], timeout=60, check=False).returncode != 0:
                run(["umount", "-l", str(target)], timeout=60, check=False)
        if bind_wheels:
            with contextlib.suppress(OSError):
                (root / "opt" / "wheels").rmdir()
        (root / "tmp" / "gc-ca.crt").unlink(missing_ok=True)
        (root / "etc" / "resolv.conf").write_text(f.RESOLV_CONF)


def chroot(
    root: Path, argv: list[str], *, log_file: Path, timeout: float = 600, extra_env: dict[str, str] | None = None
) -> None:
    env = {
        "PATH": CHROOT_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_CERT": "/tmp/gc-ca.crt",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_DEFAULT_TIMEOUT": "180",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_NO_INPUT": "1",
    }
    env.update(extra_env or {})
    run(["chroot", str(root), *argv], timeout=timeout, env=env, log_file=log_file)


# --- golden (heavy part) ----------------------------------------------------------------------


def _model_builder_text() -> str:
    return resources.files("lab").joinpath("assets", MODEL_BUILDER).read_text()


def heavy_key(host: str) -> str:
    parts = [base_key(), "heavy-v1", repr(f.ACCOUNTS[host])]
    if host == c.MINI:
        parts += [f.LITELLM_REQUIREMENTS, f.OPTILLM_PROXY_REQUIREMENTS, c.OPTILLM_SPEC, f.harness_requirements()]
    else:
        parts += [f.STUDIO_REQUIREMENTS, _model_builder_text(), repr(c.LOCAL_INSTANCES)]
    return _digest(*parts)


def golden_ready(host: str) -> bool:
    return _stamp_ok(golden_dir(host), STAMP_HEAVY, heavy_key(host))


def _create_accounts(root: Path, host: str, logf: Path) -> None:
    for acc in f.ACCOUNTS[host]:
        chroot(root, ["groupadd", "--gid", str(acc.uid), acc.name], log_file=logf)
        argv = [
            "useradd",
            "--uid",
            str(acc.uid),
            "--gid",
            str(acc.uid),
            "--home-dir",
            acc.home,
            "--shell",
            acc.shell,
            "--no-create-home",
        ]
        if acc.system:
            argv.append("--system")
        chroot(root, [*argv, acc.name], log_file=logf)
        for group in acc.groups:
            chroot(root, ["usermod", "-a", "-G", group, acc.name], log_file=logf)
        # "*" instead of the default "!": no password, but not "locked", which sshd
        # would otherwise hold against key logins too.
        chroot(root, ["usermod", "-p", "*", acc.name], log_file=logf)
        home = root / acc.home.lstrip("/")
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(acc.home_mode)
        os_chown(home, acc.uid)


def os_chown(path: Path, uid: int, gid: int | None = None) -> None:
    import os

    os.chown(path, uid, uid if gid is None else gid)


def _gid_of(root: Path, group: str) -> int:
    for line in (root / "etc" / "group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == group:
            return int(fields[2])
    raise LabError(f"group {group!r} does not exist in {root}")


def _apply_dirs(root: Path, host: str) -> None:
    for d in f.host_dirs(host):
        p = root / d.path.lstrip("/")
        p.mkdir(parents=True, exist_ok=True)
        p.chmod(d.mode)
        os_chown(p, f.uid_of(host, d.owner), _gid_of(root, d.group) if d.group else None)


def _build_mini(root: Path, logf: Path) -> None:
    write_file(root / "tmp/gc-req-litellm.txt", f.LITELLM_REQUIREMENTS, 0o644)
    write_file(root / "tmp/gc-req-optillm-proxy.txt", f.OPTILLM_PROXY_REQUIREMENTS, 0o644)
    chroot(root, ["python3", "-m", "venv", c.LITELLM_VENV], log_file=logf)
    chroot(
        root,
        [f"{c.LITELLM_VENV}/bin/pip", "install", "-r", "/tmp/gc-req-litellm.txt"],
        log_file=logf,
        timeout=PIP_TIMEOUT,
    )
    chroot(root, ["python3", "-m", "venv", c.OPTILLM_PROXY_VENV], log_file=logf)
    pip = f"{c.OPTILLM_PROXY_VENV}/bin/pip"
    chroot(root, [pip, "install", "--no-deps", c.OPTILLM_SPEC], log_file=logf, timeout=PIP_TIMEOUT)
    chroot(root, [pip, "install", "-r", "/tmp/gc-req-optillm-proxy.txt"], log_file=logf, timeout=PIP_TIMEOUT)
    _build_harness_venv(root, logf)


def _build_harness_venv(root: Path, logf: Path) -> None:
    """The scheduled monitor's dependencies (its source is bound in at run time)."""
    write_file(root / "tmp/gc-req-harness.txt", f.harness_requirements(), 0o644)
    chroot(root, ["python3", "-m", "venv", c.HARNESS_VENV], log_file=logf)
    chroot(
        root,
        [f"{c.HARNESS_VENV}/bin/pip", "install", "-r", "/tmp/gc-req-harness.txt"],
        log_file=logf,
        timeout=PIP_TIMEOUT,
    )


def _build_studio(root: Path, logf: Path) -> None:
    _apply_dirs(root, c.STUDIO)
    reqs = [
        ln
        for ln in f.STUDIO_REQUIREMENTS.splitlines()
        if ln.strip() and not ln.startswith("#") and not ln.startswith("optillm")
    ]
    write_file(root / "tmp/gc-req-studio.txt", "\n".join(reqs) + "\n", 0o644)
    write_file(root / "tmp" / MODEL_BUILDER, _model_builder_text(), 0o644)
    venv = c.OPTILLM_LOCAL_VENV
    wheels = {"PIP_FIND_LINKS": "/opt/wheels"}
    chroot(root, ["python3", "-m", "venv", venv], log_file=logf)
    chroot(
        root,
        [f"{venv}/bin/pip", "install", "--no-deps", c.OPTILLM_SPEC],
        log_file=logf,
        timeout=PIP_TIMEOUT,
        extra_env=wheels,
    )
    chroot(
        root,
        [f"{venv}/bin/pip", "install", "-r", "/tmp/gc-req-studio.txt"],
        log_file=logf,
        timeout=PIP_TIMEOUT,
        extra_env=wheels,
    )
    models = [f"{i.model}={i.name}" for i in c.LOCAL_INSTANCES]
    chroot(
        root,
        [f"{venv}/bin/python", f"/tmp/{MODEL_BUILDER}", c.HF_HUB_CACHE, *models],
        log_file=logf,
        timeout=600,
        extra_env={"HF_HUB_OFFLINE": "1"},
    )
    uid = str(c.STUDIO_UID)
    run(["chown", "-R", f"{uid}:{uid}", str(root / c.STUDIO_HOME.lstrip("/"))], timeout=300)


def build_golden(host: str) -> None:
    gold = golden_dir(host)
    tmp = gold.with_name(f"{host}.tmp")
    logf = logs_dir() / f"build-{host}.log"
    logf.unlink(missing_ok=True)
    _rm_tree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log(f"{host}: building golden rootfs (log: {logf})")
    run(["cp", "-a", str(base_dir()), str(tmp)], timeout=600)
    (tmp / STAMP_BASE).unlink(missing_ok=True)
    _create_accounts(tmp, host, logf)
    # Every host gets its own host keys (debootstrap made one set for the shared base).
    for key in (tmp / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    chroot(tmp, ["ssh-keygen", "-A"], log_file=logf)
    with chroot_mounts(tmp, bind_wheels=host == c.STUDIO):
        if host == c.MINI:
            _build_mini(tmp, logf)
        else:
            _build_studio(tmp, logf)
    for leftover in (tmp / "tmp").glob("gc-*"):
        leftover.unlink()
    (tmp / "tmp" / MODEL_BUILDER).unlink(missing_ok=True)
    shutil.rmtree(tmp / "root" / ".cache", ignore_errors=True)
    (tmp / STAMP_HEAVY).write_text(heavy_key(host) + "\n")
    _rm_tree(gold)
    tmp.rename(gold)
    log(f"{host}: golden rootfs ready")


def ensure_goldens() -> list[str]:
    """Build missing golden rootfs (both hosts in parallel); return the hosts built."""
    todo = [h for h in c.HOST_NAMES if not golden_ready(h)]
    errors: dict[str, BaseException] = {}

    def worker(h: str) -> None:
        try:
            build_golden(h)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            errors[h] = exc

    threads = [threading.Thread(target=worker, args=(h,)) for h in todo]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        msgs = "; ".join(f"{h}: {e}" for h, e in errors.items())
        raise LabError(f"golden build failed: {msgs}")
    return todo


# --- golden config (cheap part, re-applied when its rendering changes) ------------------------


def config_key(host: str, s: LabSecrets, monitor_pub: str) -> str:
    parts = [
        heavy_key(host),
        "config-v1",
        repr(f.host_dirs(host)),
        repr(f.host_files(host, s, monitor_pub)),
        repr(f.enabled_units(host)),
    ]
    return _digest(*parts)


def golden_current(host: str) -> bool:
    """Golden rootfs built and its config up to date (so `up` would change nothing on disk)."""
    if not golden_ready(host):
        return False
    key = config_key(host, load_or_create_secrets(), load_or_create_monitor_key())
    return _stamp_ok(golden_dir(host), STAMP_CONFIG, key)


def apply_config(host: str, s: LabSecrets, monitor_pub: str) -> bool:
    """Write the conformant config into the golden rootfs; False if it was already there."""
    root = golden_dir(host)
    key = config_key(host, s, monitor_pub)
    if _stamp_ok(root, STAMP_CONFIG, key):
        return False
    logf = logs_dir() / f"config-{host}.log"
    _apply_dirs(root, host)
    for spec in f.host_files(host, s, monitor_pub):
        uid = f.uid_of(host, spec.owner)
        target = root / spec.path.lstrip("/")
        if target.is_symlink():
            target.unlink()  # e.g. a resolv.conf symlink must not redirect our write
        write_file(target, spec.content, spec.mode, uid, uid)
    chroot(root, ["systemctl", "enable", *f.enabled_units(host)], log_file=logf, timeout=120)
    (root / STAMP_CONFIG).write_text(key + "\n")
    return True


# --- drift wheels -----------------------------------------------------------------------------


def installed_version(root: Path, venv: str, dist: str) -> str:
    site = next((root / venv.lstrip("/") / "lib").glob("python3*/site-packages"))
    for meta in site.glob("*.dist-info/METADATA"):
        name = version = ""
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Name:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("Version:"):
                version = line.split(":", 1)[1].strip()
            elif not line:
                break
        if name.lower().replace("_", "-") == dist:
            return version
    raise LabError(f"{dist} is not installed in {venv}")


def transformers_wheels() -> tuple[Path, Path]:
    """(original 4.x wheel, 5.x wheel) in the cache; downloaded once, used offline."""
    d = wheels_dir()
    orig_ver = installed_version(golden_dir(c.STUDIO), c.OPTILLM_LOCAL_VENV, "transformers")
    orig = sorted(d.glob(f"transformers-{orig_ver}-*.whl"))
    five = sorted(d.glob("transformers-5.*.whl"))
    if orig and five:
        return orig[0], five[-1]
    d.mkdir(parents=True, exist_ok=True)
    logf = logs_dir() / "wheels.log"
    pip = [_machine_python(), "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(d)]
    if not orig:
        run([*pip, f"transformers=={orig_ver}"], timeout=600, log_file=logf)
    if not five:
        run([*pip, c.TRANSFORMERS_5_SPEC], timeout=600, log_file=logf)
    orig = sorted(d.glob(f"transformers-{orig_ver}-*.whl"))
    five = sorted(d.glob("transformers-5.*.whl"))
    if not (orig and five):
        raise LabError(f"transformers wheels missing in {d} after download; see {logf}")
    return orig[0], five[-1]


def _machine_python() -> str:
    import sys

    # Any Python with pip will do; the machine's pip knows the local CA already.
    if (
        subprocess.run(
            [sys.executable, "-m", "pip", "--version"], capture_output=True, timeout=60, check=False
        ).returncode
        == 0
    ):
        return sys.executable
    found = shutil.which("python3")
    if not found:
        raise LabError("no Python with pip on the machine to download wheels")
    return found


def cold_build() -> bool:
    """Everything `up` needs on disk; True if anything slow had to be built."""
    ensure_machine_tools()
    built_base = not _stamp_ok(base_dir(), STAMP_BASE, base_key())
    ensure_base()
    secrets = load_or_create_secrets()
    monitor_pub = load_or_create_monitor_key()
    built = ensure_goldens()
    for h in c.HOST_NAMES:
        apply_config(h, secrets, monitor_pub)
    transformers_wheels()
    return built_base or bool(built)
