"""The lab: real Linux test hosts (systemd-nspawn) for the conformance harness.

Stand-alone on purpose: nothing here imports the harness, so the lab can be built and
driven before (and independently of) the code it is meant to test.
"""

from __future__ import annotations

from .api import (
    KNOWN_HOSTS,
    MONITOR_KEY,
    SECRETS_ENV,
    STATE_DIR,
    HostInfo,
    HostStatus,
    LabInfo,
    host_root,
    lab_down,
    lab_exec,
    lab_is_healthy,
    lab_status,
    lab_up,
    secrets_env,
    start_host,
    stop_host,
)
from .config import (
    BRIDGE,
    BRIDGE_ADDR,
    HOSTS,
    LAB_NET,
    MINI,
    MINI_ADDR,
    STUDIO,
    STUDIO_ADDR,
    cache_dir,
    state_dir,
)
from .drifts import drift_apply, drift_names, drift_reset
from .util import LabError, LabUnsupported

__all__ = [
    "BRIDGE",
    "BRIDGE_ADDR",
    "HOSTS",
    "KNOWN_HOSTS",
    "LAB_NET",
    "MINI",
    "MINI_ADDR",
    "MONITOR_KEY",
    "SECRETS_ENV",
    "STATE_DIR",
    "STUDIO",
    "STUDIO_ADDR",
    "HostInfo",
    "HostStatus",
    "LabError",
    "LabInfo",
    "LabUnsupported",
    "cache_dir",
    "drift_apply",
    "drift_names",
    "drift_reset",
    "host_root",
    "lab_down",
    "lab_exec",
    "lab_is_healthy",
    "lab_status",
    "lab_up",
    "secrets_env",
    "start_host",
    "state_dir",
    "stop_host",
]
