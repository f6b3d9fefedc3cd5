"""A host's SSH key, asked for without logging in, and judged against what the site trusts.

Only the key exchange runs (paramiko ``Transport.start_client``): no authentication, no
command, and nothing is ever written to a known_hosts file. A key that is unknown or changed
is shown as ``ssh-keygen -lf`` shows it, with the exact ``known_hosts`` line an operator can
add once the key is verified out of band.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeys

from conformance.errors import KeyMaterialError
from conformance.transport.connection import _load_known_hosts, _pinned_key

# sshkey_type() in OpenSSH's sshkey.c: the name ssh-keygen prints in parentheses.
_KEYGEN_TYPES = {
    "ssh-ed25519": "ED25519",
    "ssh-rsa": "RSA",
    "ssh-dss": "DSA",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
}


class KeyStatus(Enum):
    KNOWN = "known"
    UNKNOWN = "unknown"
    CHANGED = "changed"


@dataclass(frozen=True)
class KeyJudgement:
    status: KeyStatus
    expected_fingerprint: str | None = None  # for CHANGED: the trusted key's fingerprint


def host_key_name(address: str, port: int) -> str:
    """The name known_hosts files the key under (sshd's ``[host]:port`` form off port 22)."""
    return address if port == 22 else f"[{address}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -lf`` prints it (unpadded base64 of SHA-256)."""
    return key.fingerprint


def keygen_line(key: paramiko.PKey, comment: str) -> str:
    """The line ``ssh-keygen -lf`` prints for a file holding this key: bits, hash, comment, type."""
    kind = _KEYGEN_TYPES.get(key.get_name(), key.get_name().upper())
    return f"{key.get_bits()} {fingerprint(key)} {comment} ({kind})"


def known_hosts_line(name: str, key: paramiko.PKey) -> str:
    return f"{name} {key.get_name()} {key.get_base64()}"


def trusted_keys(name: str, known_hosts: Path | None, pinned: str | None) -> dict[str, paramiko.PKey]:
    """The keys the site trusts for ``name``, by type; raises KeyMaterialError when unreadable."""
    client = paramiko.SSHClient()
    if known_hosts is not None:
        if not known_hosts.is_file():
            raise KeyMaterialError(f"known_hosts file {known_hosts} does not exist")
        _load_known_hosts(client, known_hosts)
    keys: HostKeys = client.get_host_keys()
    found = dict(keys.lookup(name) or {})
    if pinned:
        key_type, key = _pinned_key(pinned)
        found[key_type] = key
    return found


def scan_host_key(address: str, port: int, timeout: float, preferred: list[str] | None = None) -> paramiko.PKey:
    """The server's host key from the key exchange alone (no authentication), within ``timeout``.

    ``preferred``: key types to ask for first, as OpenSSH and paramiko's SSHClient do when
    known_hosts holds a key of that type for the host (so a known RSA key is not reported
    unknown because the server would rather offer ED25519).
    """
    sock = socket.create_connection((address, port), timeout=timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        if preferred:
            options = transport.get_security_options()
            ordered = [kind for kind in preferred if kind in options.key_types]
            options.key_types = ordered + [kind for kind in options.key_types if kind not in ordered]
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    finally:
        transport.close()
        sock.close()


def judge(key: paramiko.PKey, trusted: dict[str, paramiko.PKey]) -> KeyJudgement:
    known = trusted.get(key.get_name())
    if known is None:
        return KeyJudgement(KeyStatus.UNKNOWN)
    if known.asbytes() == key.asbytes():
        return KeyJudgement(KeyStatus.KNOWN)
    return KeyJudgement(KeyStatus.CHANGED, fingerprint(known))
