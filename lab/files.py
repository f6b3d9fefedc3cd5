"""The conformant content of every config file the lab writes into its hosts.

Everything here is pure rendering; build.py writes the result into the golden rootfs and
drifts.py edits the live copies. Owners are numeric because the accounts are created with
fixed ids (see ACCOUNTS), which keeps the golden rootfs reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import config as c
from .secrets import LabSecrets, monitor_key_paths


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    home: str
    shell: str
    system: bool
    home_mode: int
    # Supplementary groups. On the Studio stand-in both accounts are in "staff", as every
    # macOS user is: /Users/<name> is 0750 owner:staff there, which is what lets a
    # read-only monitor account read the venv, requirements and HF cache.
    groups: tuple[str, ...] = ()


ACCOUNTS: dict[str, tuple[Account, ...]] = {
    c.MINI: (
        Account("litellm", 990, c.GATEWAY_ROOT, "/usr/sbin/nologin", True, 0o755),
        Account("optillm", 991, c.OPTILLM_HOME, "/usr/sbin/nologin", True, 0o750),
        Account(c.MONITOR_USER, c.MONITOR_UID, "/home/monitor", "/bin/bash", False, 0o750),
    ),
    c.STUDIO: (
        Account(c.STUDIO_USER, c.STUDIO_UID, c.STUDIO_HOME, "/bin/bash", False, 0o750, ("staff",)),
        Account(c.MONITOR_USER, c.MONITOR_UID, "/home/monitor", "/bin/bash", False, 0o750, ("staff",)),
    ),
}


def uid_of(host: str, name: str) -> int:
    if name == "root":
        return 0
    for acc in ACCOUNTS[host]:
        if acc.name == name:
            return acc.uid
    raise KeyError(f"{name} is not an account on {host}")


@dataclass(frozen=True)
class FileSpec:
    path: str
    content: str
    mode: int
    owner: str = "root"


@dataclass(frozen=True)
class DirSpec:
    path: str
    mode: int
    owner: str = "root"
    group: str | None = None  # default: the owner's own group


# Directories are applied in order (parents first) before the files.
def host_dirs(host: str) -> list[DirSpec]:
    common = [DirSpec("/home/monitor/.ssh", 0o700, c.MONITOR_USER)]
    if host == c.MINI:
        return [
            *common,
            DirSpec(c.GATEWAY_ROOT, 0o755, "litellm"),
            DirSpec(f"{c.GATEWAY_ROOT}/layer-gateway", 0o755, "litellm"),
            DirSpec(c.LITELLM_DIR, 0o755, "litellm"),
            DirSpec(f"{c.LITELLM_DIR}/config", 0o755, "litellm"),
            DirSpec("/etc/optillm-proxy", 0o755),
            DirSpec(c.OPTILLM_HOME, 0o750, "optillm"),
            DirSpec(f"{c.OPTILLM_HOME}/.optillm", 0o750, "optillm"),
        ]
    return [
        *common,
        DirSpec(c.STUDIO_HOME, 0o750, c.STUDIO_USER, "staff"),
        DirSpec(c.STUDIO_REPO, 0o755, c.STUDIO_USER),
        DirSpec(f"{c.STUDIO_REPO}/layer-gateway", 0o755, c.STUDIO_USER),
        DirSpec(c.OPTILLM_LOCAL_DIR, 0o755, c.STUDIO_USER),
        DirSpec(f"{c.STUDIO_HOME}/models", 0o755, c.STUDIO_USER),
        DirSpec(f"{c.STUDIO_HOME}/models/hf", 0o755, c.STUDIO_USER),
        DirSpec(c.HF_HUB_CACHE, 0o755, c.STUDIO_USER),
    ]


def hosts_file(hostname: str) -> str:
    # A minbase rootfs has no /etc/hosts and LiteLLM dies resolving "localhost" without it.
    return f"127.0.0.1 localhost\n::1 localhost\n127.0.1.1 {hostname}\n"


# No nameserver: the machine's resolver is unreachable from the bridge, and an empty
# resolv.conf makes lookups fail fast (glibc tries 127.0.0.1:53, which refuses) instead
# of hanging until a timeout.
RESOLV_CONF = "# gateway lab: hosts are offline, no DNS on purpose\n"

SSHD_CONFIG = """\
# gateway lab: key-only logins
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PubkeyAuthentication yes
UseDNS no
"""


def network_file(addr: str) -> str:
    # Static address only, no gateway: lab hosts must not route anywhere.
    return (
        "[Match]\nName=host0\n\n"
        f"[Network]\nAddress={addr}/{c.PREFIX_LEN}\nLinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\nDHCP=no\n"
    )


def sudo_readable(host: str) -> tuple[str, ...]:
    if host == c.MINI:
        # The System monitor's env file is 0600 monitor-owned; the harness reads every secret file
        # through sudo alike, so the model sudoers names it too.
        return (c.OPTILLM_PROXY_ENV, c.LITELLM_ENV, c.OPTILLM_PROXY_CONFIG, f"{c.HARNESS_ETC}/env")
    return tuple(i.env_file for i in c.LOCAL_INSTANCES)


def sudoers(host: str) -> str:
    cmds = ["/usr/bin/ss -Htlnp", *(f"/usr/bin/cat {p}" for p in sudo_readable(host))]
    # Exact argument lists: sudo refuses the same commands with any other arguments.
    return (
        "# gateway lab: read-only commands for the conformance harness\n"
        f"{c.MONITOR_USER} ALL=(root) NOPASSWD: " + ", ".join(cmds) + "\n"
    )


@dataclass(frozen=True)
class RouterEntry:
    handle: str
    model: str
    api_base: str
    api_key: str


def router_entries() -> list[RouterEntry]:
    local_key = "os.environ/OPTILLM_LOCAL_API_KEY"
    entries = [
        RouterEntry(f"studio-{i.name}", f"openai/{i.model}", f"http://{c.STUDIO_ADDR}:{i.port}/v1", local_key)
        for i in c.LOCAL_INSTANCES
    ]
    # Through the OptiLLM proxy, which sends "studio-high" back to LiteLLM: two hops, no loop.
    entries.append(
        RouterEntry(
            "optimized-high",
            "openai/studio-high",
            f"http://127.0.0.1:{c.OPTILLM_PROXY_PORT}/v1",
            "os.environ/LITELLM_MASTER_KEY",
        )
    )
    return entries


def router_entry_yaml(e: RouterEntry) -> str:
    return (
        f"  - model_name: {e.handle}\n"
        "    litellm_params:\n"
        f"      model: {e.model}\n"
        f"      api_base: {e.api_base}\n"
        f"      api_key: {e.api_key}\n"
    )


ROUTER_TAIL = """\
router_settings:
  num_retries: 0
  timeout: 30

litellm_settings:
  drop_params: true
  telemetry: false

general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""


def router_yaml() -> str:
    body = "".join(router_entry_yaml(e) for e in router_entries())
    return "model_list:\n" + body + "\n" + ROUTER_TAIL


def litellm_env(s: LabSecrets) -> str:
    return (
        f"LITELLM_MASTER_KEY={s.litellm_master_key}\n"
        f"OPTILLM_LOCAL_API_KEY={s.optillm_local_api_key}\n"
        "LITELLM_LOCAL_MODEL_COST_MAP=True\n"
        "LITELLM_TELEMETRY_DISABLED=true\n"
    )


def optillm_proxy_env(s: LabSecrets) -> str:
    # No OPTILLM_API_KEY: in optillm it doubles as the switch to local inference.
    return (
        f"OPENAI_API_KEY={s.litellm_master_key}\n"
        f"LITELLM_MASTER_KEY={s.litellm_master_key}\n"
        f"OPTILLM_BASE_URL=http://127.0.0.1:{c.LITELLM_PORT}/v1\n"
        "OPTILLM_HOST=127.0.0.1\n"
        f"OPTILLM_PORT={c.OPTILLM_PROXY_PORT}\n"
        "OPTILLM_APPROACH=proxy\n"
    )


def proxy_config_yaml(base_url: str = f"http://127.0.0.1:{c.LITELLM_PORT}/v1") -> str:
    return (
        "providers:\n"
        "  - name: litellm\n"
        f"    base_url: {base_url}\n"
        "    api_key: ${LITELLM_MASTER_KEY}\n"
        "    weight: 1\n"
        "routing:\n"
        "  strategy: failover\n"
        "  health_check:\n"
        "    enabled: true\n"
        "    interval: 30\n"
        "    timeout: 5\n"
        "timeouts:\n"
        "  request: 60\n"
        "  connect: 5\n"
    )


def unit_file(description: str, user: str, workdir: str, env_file: str, exec_start: str) -> str:
    return (
        "[Unit]\n"
        f"Description={description}\n"
        "After=network.target\n\n"
        "[Service]\n"
        "Type=simple\n"
        f"User={user}\n"
        f"WorkingDirectory={workdir}\n"
        f"EnvironmentFile={env_file}\n"
        f"ExecStart={exec_start}\n"
        "Restart=on-failure\n"
        "RestartSec=2\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def local_env(s: LabSecrets, inst: c.LocalInstance) -> str:
    # OPTILLM_API_KEY is intended here: it is the client key AND switches on local mode.
    return (
        f"OPTILLM_API_KEY={s.optillm_local_api_key}\n"
        "OPTILLM_HOST=0.0.0.0\n"
        f"OPTILLM_PORT={inst.port}\n"
        f"OPTILLM_MODEL={inst.model}\n"
        f"HF_HUB_CACHE={c.HF_HUB_CACHE}\n"
        "HF_HUB_OFFLINE=1\n"
        f"HF_TOKEN={s.hf_token}\n"
    )


# The Studio's requirements file. optillm itself is installed with --no-deps (its declared
# dependencies pull CUDA torch, gradio, spacy, selenium, ... far beyond the disk budget), so
# the other lines list what its local-inference path really imports.
STUDIO_REQUIREMENTS = f"""\
# OptiLLM local inference (instances high 4040, balanced 4041; 4042 reserved for fast)
# install: pip install --no-deps {c.OPTILLM_SPEC} && pip install -r requirements.txt
{c.OPTILLM_SPEC}
torch=={c.TORCH_VERSION}
transformers<5
huggingface-hub>=0.34.0,<1.0
peft
scikit-learn
numpy
scipy
bitsandbytes
datasets
flask
openai
networkx
z3-solver<=4.15.4.0
sympy
aiohttp
cerebras_cloud_sdk
math-verify
pyyaml
requests
"""

LITELLM_REQUIREMENTS = f"{c.LITELLM_SPEC}\nprisma\n"

# Proxy-only ("lite") OptiLLM: enough for the proxy plugin, no torch.
OPTILLM_PROXY_REQUIREMENTS = """\
flask
openai
numpy
networkx
z3-solver<=4.15.4.0
sympy
aiohttp
cerebras_cloud_sdk
math-verify
pyyaml
requests
"""


def host_files(host: str, s: LabSecrets, monitor_pub: str) -> list[FileSpec]:
    spec = c.HOSTS[host]
    files = [
        FileSpec("/etc/hostname", f"{host}\n", 0o644),
        FileSpec("/etc/hosts", hosts_file(host), 0o644),
        FileSpec("/etc/resolv.conf", RESOLV_CONF, 0o644),
        FileSpec("/etc/systemd/network/10-lab-host0.network", network_file(spec.addr), 0o644),
        FileSpec("/etc/ssh/sshd_config.d/10-lab.conf", SSHD_CONFIG, 0o644),
        FileSpec("/home/monitor/.ssh/authorized_keys", monitor_pub + "\n", 0o600, c.MONITOR_USER),
        FileSpec("/etc/sudoers.d/monitor", sudoers(host), 0o440),
    ]
    if host == c.MINI:
        files += [
            FileSpec(c.ROUTER_YAML, router_yaml(), 0o644, "litellm"),
            FileSpec(c.LITELLM_ENV, litellm_env(s), 0o600, "litellm"),
            FileSpec(c.OPTILLM_PROXY_ENV, optillm_proxy_env(s), 0o600),
            FileSpec(c.OPTILLM_PROXY_CONFIG, proxy_config_yaml(), 0o640, "optillm"),
            *harness_files(s, monitor_key_paths()[0].read_text()),
            FileSpec(
                f"/etc/systemd/system/{c.LITELLM_UNIT}.service",
                unit_file(
                    "LiteLLM gateway router (layer-gateway/litellm-orch)",
                    "litellm",
                    c.LITELLM_DIR,
                    c.LITELLM_ENV,
                    f"{c.LITELLM_VENV}/bin/litellm --config {c.ROUTER_YAML} --host 0.0.0.0 --port {c.LITELLM_PORT}",
                ),
                0o644,
            ),
            FileSpec(
                f"/etc/systemd/system/{c.OPTILLM_PROXY_UNIT}.service",
                unit_file(
                    "OptiLLM proxy in front of LiteLLM (loopback only)",
                    "optillm",
                    c.OPTILLM_HOME,
                    c.OPTILLM_PROXY_ENV,
                    f"{c.OPTILLM_PROXY_VENV}/bin/optillm",
                ),
                0o644,
            ),
        ]
    else:
        files.append(FileSpec(c.OPTILLM_LOCAL_REQUIREMENTS, STUDIO_REQUIREMENTS, 0o644, c.STUDIO_USER))
        for inst in c.LOCAL_INSTANCES:
            files += [
                FileSpec(inst.env_file, local_env(s, inst), 0o600, c.STUDIO_USER),
                FileSpec(
                    f"/etc/systemd/system/{inst.unit}.service",
                    unit_file(
                        f"OptiLLM local inference '{inst.name}' on port {inst.port}",
                        c.STUDIO_USER,
                        c.OPTILLM_LOCAL_DIR,
                        inst.env_file,
                        f"{c.OPTILLM_LOCAL_VENV}/bin/optillm",
                    ),
                    0o644,
                ),
            ]
    return files


def enabled_units(host: str) -> tuple[str, ...]:
    units = ["systemd-networkd", "ssh"]
    units += [u for u in c.HOSTS[host].units if u != "ssh"]
    if host == c.MINI:
        units.append(f"{c.HARNESS_UNIT}.timer")
    return tuple(units)


def harness_requirements() -> str:
    """The harness's runtime dependencies, as its pyproject.toml declares them."""
    import tomllib

    project = tomllib.loads((c.repo_root() / "pyproject.toml").read_text())["project"]
    return "\n".join(project["dependencies"]) + "\n"


def deploy_file(name: str) -> str:
    return (c.repo_root() / "deploy" / name).read_text()


# The lab triggers the monitor itself (selftest/e2e/test_timer.py); the timer stays
# installed and enabled as shipped, but does not fire during other tests.
TIMER_LAB_DROPIN = """\
[Timer]
OnBootSec=
OnBootSec=12h
OnUnitActiveSec=
OnUnitActiveSec=12h
"""


def harness_env(s: LabSecrets) -> str:
    return (
        f"CONFORMANCE_INVENTORY={c.HARNESS_SRC}/inventory/lab.yaml\n"
        f"CONFORMANCE_SITE={c.HARNESS_ETC}/site.yaml\n"
        f"LITELLM_MASTER_KEY={s.litellm_master_key}\n"
        f"OPTILLM_LOCAL_API_KEY={s.optillm_local_api_key}\n"
    )


HARNESS_SITE = f"""\
# The monitor runs ON the Mini: the Mini is checked locally, the Studio over SSH.
hosts:
  - name: mini
    connection: local
  - name: studio
    ssh:
      identity_file: {c.HARNESS_ETC}/monitor_ed25519
      known_hosts: {c.HARNESS_ETC}/known_hosts
"""


def harness_files(s: LabSecrets, monitor_key: str) -> list[FileSpec]:
    return [
        FileSpec(f"/etc/systemd/system/{c.HARNESS_UNIT}.service", deploy_file(f"{c.HARNESS_UNIT}.service"), 0o644),
        FileSpec(f"/etc/systemd/system/{c.HARNESS_UNIT}.timer", deploy_file(f"{c.HARNESS_UNIT}.timer"), 0o644),
        FileSpec(f"/etc/systemd/system/{c.HARNESS_UNIT}.timer.d/lab.conf", TIMER_LAB_DROPIN, 0o644),
        FileSpec(f"/etc/systemd/system/{c.MONITOR_UNIT}.service", deploy_file(f"{c.MONITOR_UNIT}.service"), 0o644),
        FileSpec(f"{c.HARNESS_ETC}/env", harness_env(s), 0o600, c.MONITOR_USER),
        FileSpec(f"{c.HARNESS_ETC}/site.yaml", HARNESS_SITE, 0o644),
        FileSpec(f"{c.HARNESS_ETC}/monitor_ed25519", monitor_key, 0o600, c.MONITOR_USER),
    ]
