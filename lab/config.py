"""Fixed names, addresses, ports and paths of the lab.

The harness's inventory describes exactly these values, so they live in one place and
nothing else in the lab spells them out again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "gcbr0"
BRIDGE_ADDR = "198.51.100.1"
LAB_NET = "198.51.100.0/24"
PREFIX_LEN = 24

MINI = "mini"
STUDIO = "studio"
HOST_NAMES: tuple[str, ...] = (MINI, STUDIO)

MINI_ADDR = "198.51.100.10"
STUDIO_ADDR = "198.51.100.11"

MONITOR_USER = "monitor"
MONITOR_UID = 1500

# Debian release and the packages every lab host gets from debootstrap.
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "python3",
    "python3-venv",
    "python3-pip",
    "procps",
    "lsof",
    "sudo",
    "curl",
)
# Machine-side tools the lab drives; installed with apt-get when missing (fresh CI machine).
MACHINE_TOOLS: dict[str, str] = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
    "ip": "iproute2",
}

# --- mini ---------------------------------------------------------------------------------
GATEWAY_ROOT = "/srv/gateway"
LITELLM_DIR = f"{GATEWAY_ROOT}/layer-gateway/litellm-orch"
ROUTER_YAML = f"{LITELLM_DIR}/config/router.yaml"
LITELLM_ENV = f"{LITELLM_DIR}/config/env.local"
LITELLM_VENV = "/opt/litellm/venv"
LITELLM_PORT = 4000
LITELLM_UNIT = "litellm-orch"

OPTILLM_PROXY_VENV = "/opt/optillm-proxy/venv"
OPTILLM_PROXY_ENV = "/etc/optillm-proxy/env"
OPTILLM_HOME = "/var/lib/optillm"
OPTILLM_PROXY_CONFIG = f"{OPTILLM_HOME}/.optillm/proxy_config.yaml"
OPTILLM_PROXY_PORT = 4020
OPTILLM_PROXY_UNIT = "optillm-proxy"

# --- studio -------------------------------------------------------------------------------
STUDIO_USER = "thestudio"
STUDIO_UID = 501  # macOS gives the first account uid 501; the stand-in keeps that.
STUDIO_HOME = "/Users/thestudio"
STUDIO_REPO = f"{STUDIO_HOME}/gateway"
OPTILLM_LOCAL_DIR = f"{STUDIO_REPO}/layer-gateway/optillm-local"
OPTILLM_LOCAL_VENV = f"{OPTILLM_LOCAL_DIR}/.venv"
OPTILLM_LOCAL_REQUIREMENTS = f"{OPTILLM_LOCAL_DIR}/requirements.txt"
HF_HUB_CACHE = f"{STUDIO_HOME}/models/hf/hub"
HF_HUB_CACHE_MOVED = f"{STUDIO_HOME}/.cache/huggingface/hub"
LOCAL_RESERVED_PORT = 4042


@dataclass(frozen=True)
class LocalInstance:
    """One OptiLLM local-inference instance on the studio."""

    name: str
    port: int
    model: str

    @property
    def unit(self) -> str:
        return f"optillm-local-{self.name}"

    @property
    def env_file(self) -> str:
        return f"{OPTILLM_LOCAL_DIR}/{self.name}.env"


LOCAL_INSTANCES: tuple[LocalInstance, ...] = (
    LocalInstance("high", 4040, "labtiny/tiny-chat-high"),
    LocalInstance("balanced", 4041, "labtiny/tiny-chat-balanced"),
)

# Pins (see shared/reference/llm-services.md for why each one is there).
# The scheduled monitor installed in the Mini (deploy/): the project's source is bound in
# read-only at HARNESS_SRC, its dependencies live in a venv built into the golden rootfs.
HARNESS_DIR = "/opt/gateway-conformance"
HARNESS_SRC = f"{HARNESS_DIR}/src"
HARNESS_VENV = f"{HARNESS_DIR}/venv"
HARNESS_ETC = "/etc/gateway-conformance"
HARNESS_REPORTS = "/var/lib/gateway-conformance/reports"
HARNESS_UNIT = "gateway-conformance"
# The System monitor (deploy/gateway-conformance-monitor.service), on the Mini's loopback.
MONITOR_UNIT = "gateway-conformance-monitor"
MONITOR_PORT = 4090

LITELLM_SPEC = "litellm[proxy]==1.108.7"
OPTILLM_SPEC = "optillm==0.3.20"
TORCH_VERSION = "2.13.0"
TRANSFORMERS_5_SPEC = "transformers>=5,<6"


@dataclass(frozen=True)
class HostSpec:
    """A lab host: nspawn machine name, hostname inside, address, units and ports."""

    name: str
    machine: str
    addr: str
    units: tuple[str, ...]
    # Ports that must answer once the host is healthy, with the address they bind.
    ports: tuple[tuple[str, int], ...]


HOSTS: dict[str, HostSpec] = {
    MINI: HostSpec(
        name=MINI,
        machine="gc-mini",
        addr=MINI_ADDR,
        units=("ssh", LITELLM_UNIT, OPTILLM_PROXY_UNIT, MONITOR_UNIT),
        ports=(
            ("0.0.0.0", 22),
            ("0.0.0.0", LITELLM_PORT),
            ("127.0.0.1", OPTILLM_PROXY_PORT),
            ("127.0.0.1", MONITOR_PORT),
        ),
    ),
    STUDIO: HostSpec(
        name=STUDIO,
        machine="gc-studio",
        addr=STUDIO_ADDR,
        units=("ssh", *(i.unit for i in LOCAL_INSTANCES)),
        ports=(("0.0.0.0", 22), *(("0.0.0.0", i.port) for i in LOCAL_INSTANCES)),
    ),
}


def repo_root() -> Path:
    """The project root: the folder holding pyproject.toml above this package, else cwd."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "conformance").is_dir():
            return parent
    return Path.cwd()


def cache_dir() -> Path:
    """Build cache that survives fresh clones (rootfs, venvs, wheels, secrets)."""
    return Path(os.environ.get("CONFORMANCE_LAB_CACHE", "/var/cache/gateway-conformance/lab"))


def state_dir() -> Path:
    """Repo-local, git-ignored run state (keys, known_hosts, secrets, pids)."""
    env = os.environ.get("CONFORMANCE_LAB_STATE")
    return Path(env) if env else repo_root() / ".lab"
