"""Where things are on a host, from inventory records alone (no I/O).

``~/`` in a declared path is the *service user's* home (not the monitor's), a relative path
is relative to the site's repo root, and each fact a check reads is filed under one key.
"""

from __future__ import annotations

import posixpath

from conformance.inventory.model import Port, Service


def file_key(service: str, declared: str) -> str:
    return f"{service}:{declared}"


def unit_of(service: Service, port: Port | None = None) -> tuple[str, str, str, str | None] | None:
    """(manager, name, path, domain) of the unit that runs this service (or instance)."""
    unit = port.unit if port is not None and port.unit is not None else service.unit
    if unit is None:
        return None
    return unit.manager, unit.name, unit.path, unit.domain


def resolve_path(
    service: Service, declared: str, homes: dict[str, str | None], unit_user: str | None
) -> tuple[str | None, str | None]:
    """Absolute path on the host for an inventory path, or (None, why not)."""
    if declared.startswith("/"):
        return declared, None
    if declared.startswith("~/"):
        user = service.user or unit_user or "root"
        home = homes.get(user)
        if home is None:
            return None, f"home directory of {user!r} (the service user) is unknown"
        return posixpath.join(home, declared[2:]), None
    if service.repo_root is None:
        return None, "repo-relative path, but no repo_root is given for this site"
    return posixpath.join(service.repo_root, declared), None


def venv_path(service: Service) -> str | None:
    if service.venv is None:
        return None
    if service.venv.startswith("/"):
        return service.venv
    return posixpath.join(service.repo_root, service.venv) if service.repo_root else None
