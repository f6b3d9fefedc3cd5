"""Named, realistic breakages of the conformant lab, and their exact reversal.

Every drift edits the running hosts (through their overlay roots or inside them) and
waits until the breakage is in effect. Reverting restores files byte for byte from the
golden rootfs (content, mode and owner), so `reset` lands exactly on the conformant state.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as c
from .build import golden_dir, transformers_wheels
from .runtime import (
    exec_in,
    http_get,
    journal_tail,
    lab_lock,
    listeners,
    load_state,
    root_dir,
    save_state,
    wait_healthy,
)
from .util import LabError, log

WAIT = 120.0
Data = dict[str, Any]


# --- helpers ---------------------------------------------------------------------------------


def live(host: str, path: str) -> Path:
    return root_dir(host) / path.lstrip("/")


def inside(host: str, *argv: str, timeout: float = 60) -> str:
    res = exec_in(host, list(argv), timeout=timeout)
    if res.returncode != 0:
        raise LabError(
            f"{host}: {' '.join(argv)} failed ({res.returncode}): {(res.stderr or res.stdout).strip()[-1500:]}"
        )
    return res.stdout


def edit_text(host: str, path: str, fn: Callable[[str], str]) -> None:
    """Rewrite a live file in place (same inode, so its mode and owner stay)."""
    p = live(host, path)
    old = p.read_text()
    new = fn(old)
    if new == old:
        raise LabError(f"{host}:{path}: the drift edit changed nothing")
    with p.open("w") as fh:
        fh.write(new)


def set_env(key: str, value: str) -> Callable[[str], str]:
    def fn(text: str) -> str:
        lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key}=")]
        # Keep the variable where it was when it existed, else append it.
        for i, ln in enumerate(text.splitlines()):
            if ln.startswith(f"{key}="):
                lines.insert(i, f"{key}={value}")
                break
        else:
            lines.append(f"{key}={value}")
        return "\n".join(lines) + "\n"

    return fn


def del_env(key: str) -> Callable[[str], str]:
    def fn(text: str) -> str:
        return "".join(ln + "\n" for ln in text.splitlines() if not ln.startswith(f"{key}="))

    return fn


def restore(host: str, path: str) -> None:
    """Put the golden version of a file back: content, mode and owner."""
    src = golden_dir(host) / path.lstrip("/")
    dst = live(host, path)
    st = src.stat()
    with dst.open("wb") as fh:
        fh.write(src.read_bytes())
    shutil.chown(dst, st.st_uid, st.st_gid)
    dst.chmod(st.st_mode & 0o7777)


def wait_for(cond: Callable[[], bool], what: str, host: str, unit: str = "", timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            msg = f"{host}: timed out after {timeout:.0f}s waiting for {what}"
            if unit:
                msg += f"\n--- journalctl -u {unit} ---\n{journal_tail(host, unit)}"
            raise LabError(msg)
        time.sleep(0.25)


def listening(host: str, addr: str, port: int) -> bool:
    return any(a == addr and p == port for a, p, _ in listeners(host))


def port_free(host: str, port: int) -> bool:
    return not any(p == port for _, p, _ in listeners(host))


def unit_active(host: str, unit: str) -> bool:
    return exec_in(host, ["systemctl", "is-active", "--quiet", unit], timeout=15).returncode == 0


def restart_and_wait(host: str, unit: str, ready: Callable[[], bool], what: str) -> None:
    inside(host, "systemctl", "restart", unit, timeout=90)
    wait_for(lambda: unit_active(host, unit) and ready(), what, host, unit)


def litellm_alive() -> bool:
    url = f"http://{c.MINI_ADDR}:{c.LITELLM_PORT}/health/liveliness"
    return http_get(url)[0] == 200


def proxy_ready(addr: str = "127.0.0.1") -> Callable[[], bool]:
    return lambda: listening(c.MINI, addr, c.OPTILLM_PROXY_PORT)


def local_ready(inst: c.LocalInstance) -> Callable[[], bool]:
    return lambda: http_get(f"http://{c.STUDIO_ADDR}:{inst.port}/health")[0] == 200


def instance(name: str) -> c.LocalInstance:
    return next(i for i in c.LOCAL_INSTANCES if i.name == name)


# --- drifts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What the harness must report while a drift is applied (proved by selftest/e2e/test_drifts.py).

    ``test``: a substring of the failing test's node id (contract test and subject);
    ``outcome``: "violated" (a failed test) or "broken" (could not check);
    ``phrases``: what the owner must read in the message; ``owner``: the bulletin entry's owner;
    ``pytest_args``: options the suites need to see it (an opt-in check such as ``--probe-routes``),
    given to both runs, the drifted one and the one after the reset.
    ``entries``: how many bulletin entries the drift opens (one change, one entry: violations
    sharing a cause are one incident, checks blocked by a root cause are listed in its entry).
    """

    test: str
    outcome: str
    phrases: tuple[str, ...]
    owner: str
    pytest_args: tuple[str, ...] = ()
    entries: int = 1


@dataclass(frozen=True)
class Drift:
    name: str
    host: str
    summary: str
    apply: Callable[[], Data]
    revert: Callable[[Data], None]
    expect: Expected | None = None  # None: proved by its own test (an outage, not a contract)


def _proxy_env_drift(key: str, value: str, addr: str) -> tuple[Callable[[], Data], Callable[[Data], None]]:
    def apply() -> Data:
        edit_text(c.MINI, c.OPTILLM_PROXY_ENV, set_env(key, value))
        restart_and_wait(
            c.MINI, c.OPTILLM_PROXY_UNIT, proxy_ready(addr), f"optillm-proxy on {addr}:{c.OPTILLM_PROXY_PORT}"
        )
        return {}

    def revert(_: Data) -> None:
        restore(c.MINI, c.OPTILLM_PROXY_ENV)
        restart_and_wait(c.MINI, c.OPTILLM_PROXY_UNIT, proxy_ready(), "optillm-proxy back on 127.0.0.1:4020")

    return apply, revert


def _upstream_apply() -> Data:
    studio = f"http://{c.STUDIO_ADDR}:{instance('high').port}/v1"
    edit_text(c.MINI, c.OPTILLM_PROXY_ENV, set_env("OPTILLM_BASE_URL", studio))
    edit_text(
        c.MINI,
        c.OPTILLM_PROXY_CONFIG,
        lambda t: (
            "\n".join(f"    base_url: {studio}" if ln.strip().startswith("base_url:") else ln for ln in t.splitlines())
            + "\n"
        ),
    )
    restart_and_wait(c.MINI, c.OPTILLM_PROXY_UNIT, proxy_ready(), "optillm-proxy restarted")
    return {}


def _upstream_revert(_: Data) -> None:
    restore(c.MINI, c.OPTILLM_PROXY_ENV)
    restore(c.MINI, c.OPTILLM_PROXY_CONFIG)
    restart_and_wait(c.MINI, c.OPTILLM_PROXY_UNIT, proxy_ready(), "optillm-proxy restarted")


def _router_drift(handle: str, model: str, api_base: str) -> tuple[Callable[[], Data], Callable[[Data], None]]:
    entry = (
        f"  - model_name: {handle}\n    litellm_params:\n      model: {model}\n"
        f"      api_base: {api_base}\n      api_key: os.environ/LITELLM_MASTER_KEY\n"
    )
    return _router_edit_drift(_add_router_entry(entry))


def _router_edit_drift(edit: Callable[[str], str]) -> tuple[Callable[[], Data], Callable[[Data], None]]:
    """Any edit of router.yaml, in effect once LiteLLM has restarted on it."""

    def apply() -> Data:
        edit_text(c.MINI, c.ROUTER_YAML, edit)
        restart_and_wait(c.MINI, c.LITELLM_UNIT, litellm_alive, "LiteLLM liveliness")
        return {}

    def revert(_: Data) -> None:
        restore(c.MINI, c.ROUTER_YAML)
        restart_and_wait(c.MINI, c.LITELLM_UNIT, litellm_alive, "LiteLLM liveliness")

    return apply, revert


def _add_router_setting(line: str) -> Callable[[str], str]:
    """A line (or block) under router_settings:, first in the section."""

    def edit(text: str) -> str:
        return text.replace("\nrouter_settings:\n", f"\nrouter_settings:\n{line.rstrip()}\n", 1)

    return edit


def _add_router_entry(entry: str) -> Callable[[str], str]:
    """A model_list entry appended to the end of model_list (the blank line that closes it)."""

    def edit(text: str) -> str:
        head, sep, tail = text.partition("\n\nrouter_settings:")
        return head + "\n" + entry.rstrip("\n") + sep + tail

    return edit


def _high_entry(port: int, model: str) -> Callable[[str], str]:
    """studio-high's deployment pointed at another instance and model."""
    high = instance("high")

    def edit(text: str) -> str:
        return text.replace(
            f"      model: openai/{high.model}\n      api_base: http://{c.STUDIO_ADDR}:{high.port}/v1\n",
            f"      model: openai/{model}\n      api_base: http://{c.STUDIO_ADDR}:{port}/v1\n",
            1,
        )

    return edit


def _stale_router() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    """LiteLLM runs a router.yaml that is no longer on disk: started with studio-high pointed at
    the balanced instance, then the file put back (byte for byte) without a restart. The files
    and the live table are read as before; only a request shows where LiteLLM really sends it."""
    balanced = instance("balanced")

    def wrong_live_route() -> bool:
        from .secrets import load_or_create_secrets

        status, body = http_get(
            f"http://{c.MINI_ADDR}:{c.LITELLM_PORT}/model/info",
            headers={"Authorization": f"Bearer {load_or_create_secrets().litellm_master_key}"},
        )
        return status == 200 and f"{c.STUDIO_ADDR}:{balanced.port}/v1" in body and "tiny-chat-high" not in body

    def apply() -> Data:
        edit_text(c.MINI, c.ROUTER_YAML, _high_entry(balanced.port, balanced.model))
        restart_and_wait(c.MINI, c.LITELLM_UNIT, litellm_alive, "LiteLLM liveliness")
        wait_for(wrong_live_route, "LiteLLM serving studio-high from the balanced instance", c.MINI, c.LITELLM_UNIT)
        restore(c.MINI, c.ROUTER_YAML)
        return {}

    def revert(_: Data) -> None:
        restore(c.MINI, c.ROUTER_YAML)
        restart_and_wait(c.MINI, c.LITELLM_UNIT, litellm_alive, "LiteLLM liveliness")

    return apply, revert


def _proxy_provider_drift(provider: str) -> tuple[Callable[[], Data], Callable[[Data], None]]:
    """A provider added to the proxy plugin's proxy_config.yaml (in the proxy service user's
    ~/.optillm/), OPTILLM_BASE_URL left pointing at LiteLLM."""

    def add(text: str) -> str:
        head, sep, tail = text.partition("\nrouting:")
        return head + "\n" + provider.rstrip("\n") + sep + tail

    def apply() -> Data:
        edit_text(c.MINI, c.OPTILLM_PROXY_CONFIG, add)
        restart_and_wait(c.MINI, c.OPTILLM_PROXY_UNIT, proxy_ready(), "optillm-proxy restarted")
        return {}

    def revert(_: Data) -> None:
        restore(c.MINI, c.OPTILLM_PROXY_CONFIG)
        restart_and_wait(c.MINI, c.OPTILLM_PROXY_UNIT, proxy_ready(), "optillm-proxy restarted")

    return apply, revert


def _stop_drift(
    host: str, unit: str, port: int, ready: Callable[[], bool]
) -> tuple[Callable[[], Data], Callable[[Data], None]]:
    def apply() -> Data:
        inside(host, "systemctl", "stop", unit, timeout=90)
        wait_for(lambda: port_free(host, port), f"port {port} to close", host, unit)
        return {}

    def revert(_: Data) -> None:
        inside(host, "systemctl", "start", unit, timeout=90)
        wait_for(lambda: unit_active(host, unit) and ready(), f"{unit} healthy", host, unit)

    return apply, revert


def _unit_disabled() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    def apply() -> Data:
        inside(c.MINI, "systemctl", "disable", c.OPTILLM_PROXY_UNIT)
        return {}

    def revert(_: Data) -> None:
        inside(c.MINI, "systemctl", "enable", c.OPTILLM_PROXY_UNIT)

    return apply, revert


def _high_loopback_only() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    """The 'high' instance binds 127.0.0.1: running and healthy inside, unreachable from the Mini."""
    high = instance("high")

    def apply() -> Data:
        edit_text(c.STUDIO, high.env_file, set_env("OPTILLM_HOST", "127.0.0.1"))
        restart_and_wait(
            c.STUDIO,
            high.unit,
            lambda: listening(c.STUDIO, "127.0.0.1", high.port),
            f"{high.unit} on 127.0.0.1:{high.port}",
        )
        return {}

    def revert(_: Data) -> None:
        restore(c.STUDIO, high.env_file)
        restart_and_wait(c.STUDIO, high.unit, local_ready(high), f"{high.unit} healthy")

    return apply, revert


def _start_http_listener(host: str, unit: str, port: int, bind: str) -> None:
    # As nobody, serving an empty folder: a stray listener, not a data leak.
    inside(
        host,
        "systemd-run",
        f"--unit={unit}",
        "--uid=nobody",
        "--gid=nogroup",
        "--property=TemporaryFileSystem=/srv/empty",
        "--working-directory=/",
        "python3",
        "-m",
        "http.server",
        str(port),
        "--bind",
        bind,
        "--directory",
        "/srv/empty",
    )
    wait_for(lambda: listening(host, bind, port), f"{bind}:{port}", host, unit)


def _stop_transient(host: str, unit: str) -> None:
    exec_in(host, ["systemctl", "stop", unit], timeout=60)
    exec_in(host, ["systemctl", "reset-failed", unit], timeout=30)


def _port_impostor() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    """The proxy moves to 4021 and another process takes 127.0.0.1:4020 in its place."""
    unit = "gc-drift-impostor"

    def apply() -> Data:
        edit_text(c.MINI, c.OPTILLM_PROXY_ENV, set_env("OPTILLM_PORT", "4021"))
        inside(c.MINI, "systemctl", "restart", c.OPTILLM_PROXY_UNIT, timeout=90)
        wait_for(lambda: listening(c.MINI, "127.0.0.1", 4021), "optillm-proxy on 127.0.0.1:4021", c.MINI)
        _start_http_listener(c.MINI, unit, c.OPTILLM_PROXY_PORT, "127.0.0.1")
        return {}

    def revert(_: Data) -> None:
        _stop_transient(c.MINI, unit)
        restore(c.MINI, c.OPTILLM_PROXY_ENV)
        restart_and_wait(c.MINI, c.OPTILLM_PROXY_UNIT, proxy_ready(), "optillm-proxy back on 127.0.0.1:4020")

    return apply, revert


def _transient_listener(host: str, unit: str, port: int) -> tuple[Callable[[], Data], Callable[[Data], None]]:
    def apply() -> Data:
        _start_http_listener(host, unit, port, "0.0.0.0")
        return {}

    def revert(_: Data) -> None:
        _stop_transient(host, unit)
        wait_for(lambda: port_free(host, port), f"port {port} to close", host)

    return apply, revert


def _pip_as_studio(wheel: Path) -> None:
    """Install one cached wheel into the studio venv offline, as its owner."""
    staged = live(c.STUDIO, "/var/tmp/gc-drift") / wheel.name
    staged.parent.mkdir(exist_ok=True)
    shutil.copyfile(wheel, staged)
    try:
        inside(
            c.STUDIO,
            "runuser",
            "-u",
            c.STUDIO_USER,
            "--",
            "env",
            f"HOME={c.STUDIO_HOME}",
            "PIP_NO_CACHE_DIR=1",
            "PIP_DISABLE_PIP_VERSION_CHECK=1",
            f"{c.OPTILLM_LOCAL_VENV}/bin/pip",
            "install",
            "--no-deps",
            "--no-index",
            f"/var/tmp/gc-drift/{wheel.name}",
            timeout=600,
        )
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    _drop_direct_url(wheel)


def _drop_direct_url(wheel: Path) -> None:
    # A file install leaves direct_url.json (PEP 610), so pip freeze would show
    # "transformers @ file://..."; an index install has none. Remove it and its RECORD line.
    version = wheel.name.split("-")[1]
    site = next(live(c.STUDIO, c.OPTILLM_LOCAL_VENV).glob("lib/python3*/site-packages"))
    info = site / f"transformers-{version}.dist-info"
    (info / "direct_url.json").unlink(missing_ok=True)
    record = info / "RECORD"
    if record.is_file():
        keep = [ln for ln in record.read_text().splitlines() if not ln.split(",", 1)[0].endswith("/direct_url.json")]
        with record.open("w") as fh:
            fh.write("\n".join(keep) + "\n")


def _transformers5() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    def apply() -> Data:
        five = transformers_wheels()[1]
        _pip_as_studio(five)
        return {"installed": five.name}

    def revert(_: Data) -> None:
        _pip_as_studio(transformers_wheels()[0])

    return apply, revert


def _requirements_unpinned() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    def apply() -> Data:
        edit_text(
            c.STUDIO,
            c.OPTILLM_LOCAL_REQUIREMENTS,
            lambda t: "".join(
                ("transformers\n" if ln.strip() == "transformers<5" else ln + "\n") for ln in t.splitlines()
            ),
        )
        return {}

    def revert(_: Data) -> None:
        restore(c.STUDIO, c.OPTILLM_LOCAL_REQUIREMENTS)

    return apply, revert


def _hf_cache_moved() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    high = instance("high")

    def apply() -> Data:
        # Remember the outermost folder that did not exist, to remove exactly that later.
        created = ""
        parts = Path(c.HF_HUB_CACHE_MOVED).relative_to(c.STUDIO_HOME).parts
        for i in range(len(parts)):
            sub = str(Path(c.STUDIO_HOME, *parts[: i + 1]))
            if not live(c.STUDIO, sub).exists():
                created = sub
                break
        inside(c.STUDIO, "runuser", "-u", c.STUDIO_USER, "--", "mkdir", "-p", c.HF_HUB_CACHE_MOVED)
        for inst in c.LOCAL_INSTANCES:
            folder = "models--" + inst.model.replace("/", "--")
            inside(
                c.STUDIO,
                "runuser",
                "-u",
                c.STUDIO_USER,
                "--",
                "cp",
                "-a",
                f"{c.HF_HUB_CACHE}/{folder}",
                f"{c.HF_HUB_CACHE_MOVED}/",
            )
        edit_text(c.STUDIO, high.env_file, set_env("HF_HUB_CACHE", c.HF_HUB_CACHE_MOVED))
        restart_and_wait(c.STUDIO, high.unit, local_ready(high), f"{high.unit} healthy")
        return {"created": created}

    def revert(data: Data) -> None:
        restore(c.STUDIO, high.env_file)
        restart_and_wait(c.STUDIO, high.unit, local_ready(high), f"{high.unit} healthy")
        created = str(data.get("created", ""))
        if created.startswith(c.STUDIO_HOME + "/"):
            shutil.rmtree(live(c.STUDIO, created), ignore_errors=True)

    return apply, revert


def _hf_token_missing() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    def apply() -> Data:
        for inst in c.LOCAL_INSTANCES:
            edit_text(c.STUDIO, inst.env_file, del_env("HF_TOKEN"))
        for inst in c.LOCAL_INSTANCES:
            restart_and_wait(c.STUDIO, inst.unit, local_ready(inst), f"{inst.unit} healthy")
        return {}

    def revert(_: Data) -> None:
        for inst in c.LOCAL_INSTANCES:
            restore(c.STUDIO, inst.env_file)
        for inst in c.LOCAL_INSTANCES:
            restart_and_wait(c.STUDIO, inst.unit, local_ready(inst), f"{inst.unit} healthy")

    return apply, revert


def _studio_down() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    from . import api

    def apply() -> Data:
        api.stop_host(c.STUDIO)
        return {}

    def revert(_: Data) -> None:
        api.start_host(c.STUDIO)

    return apply, revert


MONITOR_SUDOERS = "/etc/sudoers.d/monitor"


def _monitor_sudo_revoked() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    """The Mini's sudoers drop-in for the monitor is gone: sudo reads its rules on every call, so
    the next ``sudo -n`` is refused at once (no service to restart)."""

    def apply() -> Data:
        live(c.MINI, MONITOR_SUDOERS).unlink()
        return {}

    def revert(_: Data) -> None:
        restore(c.MINI, MONITOR_SUDOERS)

    return apply, revert


MONITOR_DROPIN = f"/etc/systemd/system/{c.MONITOR_UNIT}.service.d/drift.conf"
MONITOR_EXPOSED_SITE = f"{c.HARNESS_ETC}/site-exposed.yaml"
MONITOR_DB = f"{c.HARNESS_REPORTS}/conformance.db"


def monitor_healthz() -> tuple[int, str]:
    """The System monitor's /healthz, asked from inside the Mini (it serves loopback only)."""
    res = exec_in(
        c.MINI,
        ["curl", "-s", "-m", "5", "-o", "-", "-w", "\\n%{http_code}", f"http://127.0.0.1:{c.MONITOR_PORT}/healthz"],
        timeout=15,
    )
    body, _, code = res.stdout.rpartition("\n")
    return (int(code) if code.strip().isdigit() else 0), body


def monitor_ready() -> bool:
    return monitor_healthz()[0] == 200


def _monitor_exposed() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    """The monitor's own site file declares its port on 0.0.0.0 and its unit passes
    --allow-non-loopback: both keys of the monitor's bind rule turned, so it listens on the LAN."""
    from .files import HARNESS_SITE

    def apply() -> Data:
        site = live(c.MINI, MONITOR_EXPOSED_SITE)
        site.write_text(
            HARNESS_SITE + f"ports:\n  - host: mini\n    port: {c.MONITOR_PORT}\n    bind: 0.0.0.0\n    exposure: lan\n"
        )
        site.chmod(0o644)
        dropin = live(c.MINI, MONITOR_DROPIN)
        dropin.parent.mkdir(mode=0o755, exist_ok=True)
        dropin.write_text(
            "[Service]\nExecStart=\n"
            f"ExecStart={c.HARNESS_VENV}/bin/python -m conformance monitor --site {MONITOR_EXPOSED_SITE} "
            "--allow-non-loopback\n"
        )
        inside(c.MINI, "systemctl", "daemon-reload")
        inside(c.MINI, "systemctl", "restart", c.MONITOR_UNIT, timeout=90)
        wait_for(lambda: listening(c.MINI, "0.0.0.0", c.MONITOR_PORT), "the monitor on 0.0.0.0", c.MINI, c.MONITOR_UNIT)
        return {}

    def revert(_: Data) -> None:
        live(c.MINI, MONITOR_DROPIN).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            live(c.MINI, MONITOR_DROPIN).parent.rmdir()
        live(c.MINI, MONITOR_EXPOSED_SITE).unlink(missing_ok=True)
        inside(c.MINI, "systemctl", "daemon-reload")
        restart_and_wait(c.MINI, c.MONITOR_UNIT, monitor_ready, "the monitor back on 127.0.0.1")

    return apply, revert


def _monitor_db_unreadable() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    """The system database the monitor reads loses its read permission (mode 000): the monitor
    keeps serving its last state, marked stale, and its /healthz says why."""

    def apply() -> Data:
        db = live(c.MINI, MONITOR_DB)
        wait_for(db.exists, "the monitor's database to exist", c.MINI, c.MONITOR_UNIT)
        mode = db.stat().st_mode & 0o7777
        db.chmod(0)
        wait_for(lambda: monitor_healthz()[0] == 503, "the monitor to say its database is unreadable", c.MINI)
        return {"mode": mode}

    def revert(data: Data) -> None:
        live(c.MINI, MONITOR_DB).chmod(int(data.get("mode", 0o644)))
        wait_for(monitor_ready, "the monitor to read its database again", c.MINI, c.MONITOR_UNIT)

    return apply, revert


CANARY_DIR = "/srv/gc-canary"
CANARY_LISTENER = "gc-drift-canary-body"
PROXY_UNIT_FILE = f"/etc/systemd/system/{c.OPTILLM_PROXY_UNIT}.service"


def _secret_canaries() -> tuple[Callable[[], Data], Callable[[Data], None]]:
    """Distinct canaries in every place a secret can live on the lab hosts.

    Each canary is a fresh random value with no known key prefix, so only the harness's
    redaction (registered values, URL userinfo, argv and key shapes) can hide it:

    - env: a credential-named variable in the proxy's EnvironmentFile;
    - wrapped: a key wrapped onto a line of its own in the balanced instance's env file
      (systemd ignores the line; the harness must name the line number, never the text);
    - argv: ``--optillm-api-key VALUE`` on the proxy's ExecStart;
    - url_env / url_proxy_config / url_router: ``user:password@`` in OPTILLM_BASE_URL, in
      proxy_config.yaml's provider base_url and in a router.yaml api_base;
    - model_list_key: a literal ``api_key`` of a router.yaml model_list entry;
    - body: an HTTP answer on the proxy's loopback port (the proxy moves to 4021 and a
      stand-in serves ``/health`` with the canary in its body).

    The canaries are kept in the drift's data, so a test can look for them in every output.
    """
    import secrets as random

    balanced = instance("balanced")

    def apply() -> Data:
        canaries = {
            name: f"gccanary{name.replace('_', '')}{random.token_hex(8)}"
            for name in (
                "env",
                "wrapped",
                "argv",
                "url_env",
                "url_proxy_config",
                "url_router",
                "model_list_key",
                "body",
            )
        }
        # Mini: the proxy's env file, config, unit, and the router.
        edit_text(c.MINI, c.OPTILLM_PROXY_ENV, set_env("GC_CANARY_API_KEY", canaries["env"]))
        edit_text(
            c.MINI,
            c.OPTILLM_PROXY_ENV,
            set_env("OPTILLM_BASE_URL", f"http://gcuser:{canaries['url_env']}@127.0.0.1:{c.LITELLM_PORT}/v1"),
        )
        edit_text(c.MINI, c.OPTILLM_PROXY_ENV, set_env("OPTILLM_PORT", "4021"))
        edit_text(
            c.MINI,
            c.OPTILLM_PROXY_CONFIG,
            lambda t: "".join(
                f"    base_url: http://gcuser:{canaries['url_proxy_config']}@127.0.0.1:{c.LITELLM_PORT}/v1\n"
                if ln.strip().startswith("base_url:")
                else ln + "\n"
                for ln in t.splitlines()
            ),
        )
        edit_text(
            c.MINI,
            PROXY_UNIT_FILE,
            lambda t: t.replace(
                f"ExecStart={c.OPTILLM_PROXY_VENV}/bin/optillm\n",
                f"ExecStart={c.OPTILLM_PROXY_VENV}/bin/optillm --optillm-api-key {canaries['argv']}\n",
            ),
        )
        entry = (
            "  - model_name: canary-route\n    litellm_params:\n      model: openai/labtiny/tiny-chat-high\n"
            f"      api_base: http://gcuser:{canaries['url_router']}@{c.STUDIO_ADDR}:{instance('high').port}/v1\n"
            f"      api_key: {canaries['model_list_key']}\n"
        )
        edit_text(
            c.MINI,
            c.ROUTER_YAML,
            lambda t: t.replace("\n\nrouter_settings:", "\n" + entry.rstrip("\n") + "\n\nrouter_settings:", 1),
        )
        # Studio: a key wrapped onto its own line (no restart: systemd would skip the line).
        edit_text(
            c.STUDIO,
            balanced.env_file,
            lambda t: t + f"GC_CANARY_KEY=gc-wrapped-\n{canaries['wrapped']}\n",
        )
        # The stand-in answer on 127.0.0.1:4020.
        folder = live(c.MINI, CANARY_DIR)
        folder.mkdir(mode=0o755, exist_ok=True)
        (folder / "health").write_text(json.dumps({"status": "ok", "token": canaries["body"]}) + "\n")
        (folder / "health").chmod(0o644)
        inside(c.MINI, "systemctl", "daemon-reload")
        inside(c.MINI, "systemctl", "restart", c.OPTILLM_PROXY_UNIT, timeout=90)
        wait_for(lambda: listening(c.MINI, "127.0.0.1", 4021), "optillm-proxy on 127.0.0.1:4021", c.MINI)
        inside(
            c.MINI,
            "systemd-run",
            f"--unit={CANARY_LISTENER}",
            "--uid=nobody",
            "--gid=nogroup",
            "--working-directory=/",
            "python3",
            "-m",
            "http.server",
            str(c.OPTILLM_PROXY_PORT),
            "--bind",
            "127.0.0.1",
            "--directory",
            CANARY_DIR,
        )
        wait_for(lambda: listening(c.MINI, "127.0.0.1", c.OPTILLM_PROXY_PORT), "canary body listener", c.MINI)
        restart_and_wait(c.MINI, c.LITELLM_UNIT, litellm_alive, "LiteLLM liveliness")
        return {"canaries": canaries}

    def revert(_: Data) -> None:
        _stop_transient(c.MINI, CANARY_LISTENER)
        shutil.rmtree(live(c.MINI, CANARY_DIR), ignore_errors=True)
        restore(c.STUDIO, balanced.env_file)
        for path in (c.OPTILLM_PROXY_ENV, c.OPTILLM_PROXY_CONFIG, PROXY_UNIT_FILE, c.ROUTER_YAML):
            restore(c.MINI, path)
        inside(c.MINI, "systemctl", "daemon-reload")
        restart_and_wait(c.MINI, c.OPTILLM_PROXY_UNIT, proxy_ready(), "optillm-proxy back on 127.0.0.1:4020")
        restart_and_wait(c.MINI, c.LITELLM_UNIT, litellm_alive, "LiteLLM liveliness")

    return apply, revert


# What each drift must make the harness report: the contract test and subject, the outcome,
# the owner-readable phrases and the bulletin owner. One table with the drifts themselves.
EXPECTED: dict[str, Expected] = {
    "optillm-exposed": Expected(
        "test_optillm_never_exposed[",
        "violated",
        ("optillm-proxy is EXPOSED beyond localhost", "bound beyond loopback: 0.0.0.0:4020", "answers from the LAN"),
        "optillm-proxy",
    ),
    "optillm-upstream-elsewhere": Expected(
        "test_optillm_upstream_litellm[",
        "violated",
        (
            "optillm-proxy's upstream is not litellm-orch",
            "http://198.51.100.11:4040/v1: host 198.51.100.11 is not mini",
        ),
        "optillm-proxy",
    ),
    "optillm-local-mode": Expected(
        "test_gateway_never_runs_inference[mini/optillm-proxy]",
        "violated",
        ("runs inference itself", "OPTILLM_API_KEY"),
        "optillm-proxy",
    ),
    "routing-loop": Expected(
        "test_no_routing_loop[",
        "violated",
        ("routing loop in the model graph", "litellm:loop-back -> optillm:loop-back -> litellm:loop-back"),
        "litellm-orch",
    ),
    "phantom-handle": Expected(
        "test_showroom_backroom[",
        "violated",
        ("handle 'studio-ghost' -> labtiny/absent-model at studio:4040: that model is not present there",),
        "litellm-orch",
    ),
    "litellm-stopped": Expected(
        "test_unit_active[mini/litellm-orch]",
        "violated",
        ("litellm-orch.service is not running (inactive (dead))",),
        "litellm-orch",
    ),
    "unit-disabled": Expected(
        "test_unit_active[mini/optillm-proxy]",
        "violated",
        ("optillm-proxy.service is not enabled (disabled)",),
        "optillm-proxy",
    ),
    "transformers-5": Expected(
        "test_transformers_pin[",
        "violated",
        ("does not satisfy <5",),
        "gateway-agent",
    ),
    "requirements-unpinned": Expected(
        "test_transformers_pin[",
        "violated",
        ("declares transformers, which admits transformers 5.0.0", "a reinstall can break the <5 pin"),
        "gateway-agent",
    ),
    "hf-cache-moved": Expected(
        "test_hf_cache_path[studio/optillm-local:4040]",
        "violated",
        ("uses HF cache /Users/thestudio/.cache/huggingface/hub, not /Users/thestudio/models/hf/hub",),
        "gateway-agent",
    ),
    "hf-token-missing": Expected(
        "test_hf_token_for_gated_pulls[",
        "violated",
        ("no HF token for gated pulls",),
        "gateway-agent",
    ),
    "extra-listener": Expected(
        "test_no_unexpected_listeners[mini]",
        "violated",
        (
            "mini has listeners the inventory does not declare",
            "0.0.0.0:8088",
            "undeclared python3 on port 8088 is reachable from the LAN",
        ),
        # one incident with no-unexpected-listeners; clients-call-litellm-only is the most severe
        "litellm-orch",
    ),
    "reserved-port-taken": Expected(
        "test_reserved_port_free[studio/optillm-local:4042]",
        "violated",
        ("reserved port 4042 (fast) is taken by",),
        "gateway-agent",
    ),
    "high-loopback-only": Expected(
        "test_dependencies_reachable[litellm-orch->optillm-local]",
        "violated",
        ("litellm-orch (mini) cannot reach optillm-local", "198.51.100.11:4040"),
        # one incident with port-bound and the LAN health check of 4040: the binding on the
        # Studio is the cause, and port-bound (the most specific subject) names its owner
        "gateway-agent",
    ),
    "port-impostor": Expected(
        "test_port_served_by_unit[mini/optillm-proxy:4020]",
        "violated",
        ("port 4020 is served by python3", "not by optillm-proxy.service"),
        "optillm-proxy",
    ),
    "monitor-sudo-revoked": Expected(
        "test_no_unexpected_listeners[mini]",
        "broken",
        (
            "listening sockets unknown: sudo -n ss -Htlnp failed (exit 1): sudo: a password is required",
            "sudo refused to read it (sudo: a password is required)",
        ),
        "gateway-agent",
        # Could not check, never a violation: every check that needs a sudo'd command on the Mini
        # says so with sudo's own refusal, and they share that one cause (the monitor's access
        # on the Mini): one incident, one entry.
    ),
    "monitor-exposed": Expected(
        "test_local_only[mini/system-monitor:4090]",
        "violated",
        ("system-monitor is EXPOSED beyond localhost", "bound beyond loopback: 0.0.0.0:4090", "answers from the LAN"),
        # one incident with port-bound (the same listener); local-only is the most severe
        "gateway-agent",
    ),
    "monitor-stopped": Expected(
        "test_unit_active[mini/system-monitor]",
        "violated",
        ("gateway-conformance-monitor.service is not running",),
        "gateway-agent",
    ),
    "monitor-db-unreadable": Expected(
        "test_health_endpoint[mini/system-monitor:4090/healthz]",
        "violated",
        ("/healthz on port 4090 is unhealthy", "status 503", "the system database cannot be read"),
        "gateway-agent",
    ),
    "secret-canaries": Expected(
        "test_port_served_by_unit[mini/optillm-proxy:4020]",
        "violated",
        ("port 4020 is served by python3", "not by optillm-proxy.service"),
        "optillm-proxy",
        # two changes on two hosts: the impostor on the Mini's port 4020, and the Studio's
        # env file that no longer parses (its file-parses check and the checks it stops)
        entries=2,
    ),
    "balanced-stopped": Expected(
        "test_unit_active[studio/optillm-local:4041]",
        "violated",
        ("optillm-local-balanced.service is not running",),
        "gateway-agent",
    ),
    "fallback-loop": Expected(
        "test_no_routing_loop[",
        "violated",
        (
            "routing loop in the model graph",
            "litellm:optimized-high -> optillm:studio-high -> litellm:studio-high -> litellm:optimized-high",
            "litellm:studio-high -> litellm:optimized-high (fallback)",
        ),
        "litellm-orch",
    ),
    "gateway-ollama": Expected(
        "test_gateway_never_runs_inference[mini/litellm-orch]",
        "violated",
        (
            "litellm-orch routes handles to inference on the gateway host itself",
            "gateway-ollama: http://localhost:11434",
            "no api_base: ollama's default server on the gateway host",
        ),
        "litellm-orch",
    ),
    "proxy-provider-elsewhere": Expected(
        "test_optillm_upstream_litellm[",
        "violated",
        (
            "optillm-proxy's upstream is not litellm-orch",
            "proxy plugin provider 'studio-direct'",
            "http://198.51.100.11:4040/v1: host 198.51.100.11 is not mini",
        ),
        "optillm-proxy",
    ),
    "stale-router": Expected(
        "test_live_route[mini/litellm-orch]",
        "violated",
        (
            "LiteLLM's live route disagrees with its router config for 1 handle(s)",
            "handle 'studio-high': LiteLLM sent it to http://198.51.100.11:4041/v1 (studio:4041) as "
            "openai/labtiny/tiny-chat-balanced; the files route it to http://198.51.100.11:4040/v1 (studio:4040)",
        ),
        "litellm-orch",
        ("--probe-routes",),
    ),
}


def _registry() -> dict[str, Drift]:
    balanced = instance("balanced")
    table: list[tuple[str, str, str, tuple[Callable[[], Data], Callable[[Data], None]]]] = [
        (
            "optillm-exposed",
            c.MINI,
            "OPTILLM_HOST=0.0.0.0: the proxy listens on the LAN",
            _proxy_env_drift("OPTILLM_HOST", "0.0.0.0", "0.0.0.0"),
        ),
        (
            "optillm-upstream-elsewhere",
            c.MINI,
            "the proxy's upstream is the studio directly, bypassing LiteLLM",
            (_upstream_apply, _upstream_revert),
        ),
        (
            "optillm-local-mode",
            c.MINI,
            "OPTILLM_API_KEY in the proxy env: the gateway would run inference",
            _proxy_env_drift("OPTILLM_API_KEY", "lab-drift-local-mode", "127.0.0.1"),
        ),
        (
            "routing-loop",
            c.MINI,
            "router handle loop-back points at the OptiLLM proxy",
            _router_drift("loop-back", "openai/loop-back", f"http://127.0.0.1:{c.OPTILLM_PROXY_PORT}/v1"),
        ),
        (
            "phantom-handle",
            c.MINI,
            "router handle studio-ghost names a model nobody serves",
            _router_drift(
                "studio-ghost", "openai/labtiny/absent-model", f"http://{c.STUDIO_ADDR}:{instance('high').port}/v1"
            ),
        ),
        (
            "litellm-stopped",
            c.MINI,
            "litellm-orch stopped",
            _stop_drift(c.MINI, c.LITELLM_UNIT, c.LITELLM_PORT, litellm_alive),
        ),
        ("unit-disabled", c.MINI, "optillm-proxy disabled (still running)", _unit_disabled()),
        ("transformers-5", c.STUDIO, "transformers 5.x in the studio venv", _transformers5()),
        (
            "requirements-unpinned",
            c.STUDIO,
            "requirements.txt: transformers<5 -> transformers",
            _requirements_unpinned(),
        ),
        ("hf-cache-moved", c.STUDIO, "high.env HF_HUB_CACHE -> ~/.cache/huggingface/hub", _hf_cache_moved()),
        ("hf-token-missing", c.STUDIO, "HF_TOKEN removed from both instance env files", _hf_token_missing()),
        (
            "extra-listener",
            c.MINI,
            "undeclared listener on 0.0.0.0:8088",
            _transient_listener(c.MINI, "gc-drift-extra", 8088),
        ),
        (
            "reserved-port-taken",
            c.STUDIO,
            "a listener on the reserved port 0.0.0.0:4042",
            _transient_listener(c.STUDIO, "gc-drift-reserved", c.LOCAL_RESERVED_PORT),
        ),
        (
            "balanced-stopped",
            c.STUDIO,
            "optillm-local-balanced stopped",
            _stop_drift(c.STUDIO, balanced.unit, balanced.port, local_ready(balanced)),
        ),
        ("studio-down", c.STUDIO, "the studio host is powered off", _studio_down()),
        (
            "high-loopback-only",
            c.STUDIO,
            "the high instance binds 127.0.0.1: unreachable from the Mini",
            _high_loopback_only(),
        ),
        ("port-impostor", c.MINI, "the proxy moved to 4021; another process holds 127.0.0.1:4020", _port_impostor()),
        (
            "fallback-loop",
            c.MINI,
            "router_settings.fallbacks: studio-high falls back to optimized-high, which comes back to studio-high",
            _router_edit_drift(_add_router_setting('  fallbacks: [{"studio-high": ["optimized-high"]}]')),
        ),
        (
            "gateway-ollama",
            c.MINI,
            "router handle gateway-ollama: ollama/ with no api_base, i.e. ollama's default server on the Mini",
            _router_edit_drift(
                _add_router_entry("  - model_name: gateway-ollama\n    litellm_params:\n      model: ollama/llama3.2\n")
            ),
        ),
        (
            "proxy-provider-elsewhere",
            c.MINI,
            "proxy_config.yaml gains a provider straight to the studio (OPTILLM_BASE_URL still LiteLLM)",
            _proxy_provider_drift(
                f"  - name: studio-direct\n    base_url: http://{c.STUDIO_ADDR}:{instance('high').port}/v1\n"
                "    api_key: ${OPTILLM_LOCAL_API_KEY}\n    weight: 1\n"
            ),
        ),
        (
            "stale-router",
            c.MINI,
            "LiteLLM runs a studio-high route no longer on disk (the balanced instance; the file put back, no restart)",
            _stale_router(),
        ),
        (
            "monitor-sudo-revoked",
            c.MINI,
            "the monitor's sudo rules on the Mini are removed (/etc/sudoers.d/monitor)",
            _monitor_sudo_revoked(),
        ),
        (
            "monitor-exposed",
            c.MINI,
            "the System monitor's site declares 0.0.0.0:4090 and its unit passes --allow-non-loopback",
            _monitor_exposed(),
        ),
        (
            "monitor-stopped",
            c.MINI,
            "the System monitor stopped",
            _stop_drift(c.MINI, c.MONITOR_UNIT, c.MONITOR_PORT, monitor_ready),
        ),
        (
            "monitor-db-unreadable",
            c.MINI,
            "the system database the monitor reads is mode 000 (unreadable)",
            _monitor_db_unreadable(),
        ),
        (
            "secret-canaries",
            c.MINI,
            "canary secrets in env files, a wrapped line, argv, URL userinfo, router api_key, a response body",
            _secret_canaries(),
        ),
    ]
    return {name: Drift(name, host, summary, fns[0], fns[1], EXPECTED.get(name)) for name, host, summary, fns in table}


DRIFTS = _registry()


def drift_names() -> list[str]:
    return list(DRIFTS)


def applied() -> list[str]:
    return [str(d["name"]) for d in load_state().drifts]


def _drift_apply_unlocked(name: str) -> bool:
    """Apply one drift and wait until it is in effect; False if it was already applied."""
    if name not in DRIFTS:
        raise LabError(f"unknown drift {name!r}; known: {', '.join(DRIFTS)}")
    st = load_state()
    if any(d["name"] == name for d in st.drifts):
        return False
    log(f"drift {name}: {DRIFTS[name].summary}")
    data = DRIFTS[name].apply()
    st = load_state()  # studio-down rewrites the state while applying
    st.drifts.append({"name": name, "data": data})
    save_state(st)
    return True


def _drift_reset_unlocked() -> list[str]:
    """Revert every applied drift, newest first, then wait until the lab is healthy."""
    st = load_state()
    if not st.drifts:
        return []
    done: list[str] = []
    for entry in reversed(list(st.drifts)):
        name = str(entry["name"])
        log(f"reverting drift {name}")
        DRIFTS[name].revert(dict(entry.get("data", {})))
        st = load_state()
        st.drifts = [d for d in st.drifts if d["name"] != name]
        save_state(st)
        done.append(name)
    wait_healthy(list(c.HOSTS))
    return done


def config_diffs() -> list[str]:
    """Config files of the running hosts that differ from golden (content, mode, owner)."""
    from . import files as f
    from .secrets import load_or_create_monitor_key, load_or_create_secrets

    s, pub = load_or_create_secrets(), load_or_create_monitor_key()
    diffs: list[str] = []
    st = load_state()
    for host in c.HOSTS:
        r = st.hosts.get(host)
        if r is None or r.powered_off:
            diffs.append(f"{host}: not running")
            continue
        for spec in f.host_files(host, s, pub):
            g, lv = golden_dir(host) / spec.path.lstrip("/"), live(host, spec.path)
            try:
                gs, ls = g.stat(), lv.stat()
            except OSError as exc:
                diffs.append(f"{host}:{spec.path}: {exc}")
                continue
            if g.read_bytes() != lv.read_bytes() or (gs.st_mode, gs.st_uid, gs.st_gid) != (
                ls.st_mode,
                ls.st_uid,
                ls.st_gid,
            ):
                diffs.append(f"{host}:{spec.path}")
    return diffs


def drift_apply(name: str) -> bool:
    """Apply one drift and wait until it is in effect; False if it was already applied.

    Holds the lab lock, so concurrent callers (xdist workers) run one at a time.
    """
    with lab_lock():
        return _drift_apply_unlocked(name)


def drift_reset() -> list[str]:
    """Revert every applied drift, newest first, then wait until the lab is healthy.

    Holds the lab lock, so concurrent callers (xdist workers) run one at a time.
    """
    with lab_lock():
        return _drift_reset_unlocked()
