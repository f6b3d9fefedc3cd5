"""One read-only, time-bounded connection per host, built on testinfra's backends.

testinfra gives us the host abstraction and the paramiko/local backends; this module adds
what a monitor needs and testinfra does not do by default:

- host keys are verified (known_hosts or a pinned key; unknown or changed is an error);
- every connect and every command has a timeout, and stdout/stderr are drained together
  (reading one stream to the end first can deadlock on a chatty command);
- a host that fails once is not retried: its one cause is re-raised for every later check;
- commands are checked against the read-only allow-list and written to the audit log;
- many commands travel in one round trip (``run_batch``), so the number of remote
  executions per host does not grow with the number of checks.
"""

from __future__ import annotations

import base64
import binascii
import secrets as random_tokens
import select
import shlex
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.hostkeys import InvalidHostKey
from paramiko.pkey import UnknownKeyType
from testinfra.backend.paramiko import ParamikoBackend

from conformance.errors import CommandRefused, CommandTimeout, HostUnavailable, KeyMaterialError
from conformance.inventory.model import Host
from conformance.transport.allowlist import check_command
from conformance.transport.audit import AuditLog

_READ_CHUNK = 65536


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def _fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..." in paramiko >= 3


def _pinned_key(text: str) -> tuple[str, paramiko.PKey]:
    """A pinned 'TYPE BASE64' host key; KeyMaterialError when it is not one."""
    fields = text.split()
    if len(fields) < 2:
        raise KeyMaterialError("the pinned host_key needs 'TYPE BASE64' (e.g. 'ssh-ed25519 AAAA...'); no key body")
    key_type, body = fields[0], fields[1]
    try:
        return key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise KeyMaterialError(f"the pinned host_key body is not valid base64: {exc}") from None
    except (paramiko.SSHException, UnknownKeyType) as exc:
        raise KeyMaterialError(f"the pinned host_key of type {key_type!r} cannot be used: {exc}") from None


def _load_known_hosts(client: paramiko.SSHClient, path: Path) -> None:
    try:
        client.load_host_keys(str(path))
    except (paramiko.SSHException, InvalidHostKey, ValueError, UnicodeDecodeError) as exc:
        raise KeyMaterialError(f"known_hosts file {path} cannot be read: {type(exc).__name__}: {exc}") from None
    except OSError as exc:
        raise KeyMaterialError(f"known_hosts file {path} cannot be read: {exc.strerror or exc}") from None


class _StrictParamikoBackend(ParamikoBackend):  # type: ignore[misc]
    """testinfra's paramiko backend with verified host keys and bounded I/O."""

    def __init__(self, host: Host, known_hosts: Path | None, pinned_key: str | None, command_timeout: float) -> None:
        assert host.address is not None
        user = host.ssh.user or ""
        spec = (
            f"paramiko://{user}@{host.address}:{host.ssh.port}"
            if user
            else f"paramiko://{host.address}:{host.ssh.port}"
        )
        super().__init__(spec, ssh_identity_file=host.ssh.identity_file, timeout=int(max(1, host.ssh.connect_timeout)))
        self.record = host
        self.known_hosts = known_hosts
        self.pinned_key = pinned_key
        self.command_timeout = command_timeout
        self.connect_timeout = host.ssh.connect_timeout

    def _host_key_name(self) -> str:
        address = self.record.address or ""
        port = self.record.ssh.port
        return address if port == 22 else f"[{address}]:{port}"

    @property
    def client(self) -> paramiko.SSHClient:
        existing = self.__dict__.get("_client")
        if existing is not None:
            return existing  # type: ignore[no-any-return]
        client = paramiko.SSHClient()
        # Never trust on first use: a monitor that accepts any key can be pointed anywhere.
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if self.known_hosts is not None:
            _load_known_hosts(client, self.known_hosts)
        if self.pinned_key:
            key_type, key = _pinned_key(self.pinned_key)
            client.get_host_keys().add(self._host_key_name(), key_type, key)
        client.connect(
            hostname=self.record.address or "",
            port=self.record.ssh.port,
            username=self.record.ssh.user,
            key_filename=self.record.ssh.identity_file,
            timeout=self.connect_timeout,
            banner_timeout=self.connect_timeout,
            auth_timeout=self.connect_timeout,
            channel_timeout=self.connect_timeout,
            look_for_keys=False,
            allow_agent=False,
        )
        self.__dict__["_client"] = client
        return client

    def _exec_command(self, command: bytes) -> tuple[int, bytes, bytes]:
        transport = self.client.get_transport()
        assert transport is not None
        channel = transport.open_session(timeout=self.connect_timeout)
        channel.settimeout(self.command_timeout)
        channel.exec_command(command)
        deadline = time.monotonic() + self.command_timeout
        stdout, stderr = bytearray(), bytearray()
        while True:
            if channel.recv_ready():
                stdout += channel.recv(_READ_CHUNK)
                continue
            if channel.recv_stderr_ready():
                stderr += channel.recv_stderr(_READ_CHUNK)
                continue
            # Done only at end of stream: sshd may send the exit status while the last of the
            # output is still in flight, and stopping at the status alone cut the batch's tail
            # (its last command then read as "exit 255" with no output).
            if (
                channel.exit_status_ready()
                and channel.eof_received
                and not channel.recv_ready()
                and not channel.recv_stderr_ready()
            ):
                break
            if time.monotonic() > deadline:
                channel.close()
                raise CommandTimeout(f"command did not finish within {self.command_timeout:g} s")
            select.select([channel], [], [], 0.05)
        return channel.recv_exit_status(), bytes(stdout), bytes(stderr)

    def run(self, command: str, *args: str, **kwargs: object) -> object:
        """testinfra's own entry point, closed: it would bypass the allow-list and the audit log.

        Every command reaches the host through ``HostConnection.run_batch``, which checks it
        against the allow-list and records it; nothing hands out a testinfra ``Host``.
        """
        raise CommandRefused("commands run only through the allow-listed, audited HostConnection")

    def close(self) -> None:
        client = self.__dict__.pop("_client", None)
        if client is not None:
            client.close()


class HostConnection:
    """The single connection to one host for this process; see the module docstring."""

    def __init__(self, host: Host, audit: AuditLog) -> None:
        self.record = host
        self.audit = audit
        self._lock = threading.Lock()
        self._failure: HostUnavailable | None = None
        self._backend: _StrictParamikoBackend | None = None
        self.commands_run = 0
        self.connections_opened = 0
        # Every allow-listed argv sent, in order: what a gathering really asked of the host.
        self.history: list[tuple[str, ...]] = []

    def _ensure_backend(self) -> _StrictParamikoBackend | None:
        host = self.record
        if host.connection == "local":
            return None
        if self._backend is not None:
            return self._backend
        if not host.address:
            raise HostUnavailable(
                host.name,
                "misconfigured",
                "no address given for this site (set CONFORMANCE_HOST_"
                f"{host.name.upper().replace('-', '_')}_ADDRESS or a site file)",
            )
        known_hosts = Path(host.ssh.known_hosts) if host.ssh.known_hosts else None
        if known_hosts is None and not host.ssh.host_key:
            raise HostUnavailable(
                host.name,
                "host-key",
                "no known_hosts file or pinned host_key: refusing to connect to an unverified host",
            )
        if known_hosts is not None and not known_hosts.is_file():
            raise HostUnavailable(host.name, "host-key", f"known_hosts file {known_hosts} does not exist")
        backend = _StrictParamikoBackend(host, known_hosts, host.ssh.host_key, host.ssh.command_timeout)
        started = time.monotonic()
        try:
            backend.client  # noqa: B018 - connect now, so the cause is attributed to connecting
        except KeyMaterialError as exc:
            raise HostUnavailable(host.name, "host-key", f"{exc}; refusing to connect") from None
        except paramiko.BadHostKeyException as exc:
            raise HostUnavailable(
                host.name,
                "host-key",
                f"host key for {host.address} has CHANGED: expected "
                f"{_fingerprint(exc.expected_key)}, got {_fingerprint(exc.key)}; "
                "refusing to connect (update known_hosts only if the change is expected)",
            ) from None
        except paramiko.AuthenticationException as exc:
            raise HostUnavailable(host.name, "auth", f"SSH authentication as {host.ssh.user!r} failed: {exc}") from None
        except paramiko.SSHException as exc:
            text = str(exc)
            if "not found in known_hosts" in text:
                raise HostUnavailable(
                    host.name,
                    "host-key",
                    f"host key of {host.address} is UNKNOWN (not in "
                    f"{known_hosts or 'the pinned key'}); refusing to connect",
                ) from None
            raise HostUnavailable(host.name, "unreachable", f"SSH to {host.address} failed: {text}") from None
        except TimeoutError:
            raise HostUnavailable(
                host.name,
                "timeout",
                f"SSH to {host.address}:{host.ssh.port} timed out after {host.ssh.connect_timeout:g} s",
            ) from None
        except OSError as exc:
            raise HostUnavailable(
                host.name, "unreachable", f"cannot reach {host.address}:{host.ssh.port}: {exc.strerror or exc}"
            ) from None
        finally:
            self.audit.record(
                host.name,
                f"ssh connect {host.ssh.user}@{host.address}:{host.ssh.port}",
                None,
                time.monotonic() - started,
                "connect",
            )
        self.connections_opened += 1
        self._backend = backend
        return backend

    def _connected_backend(self) -> _StrictParamikoBackend | None:
        """The backend, connecting once; a host that failed once re-raises its one cause."""
        with self._lock:
            if self._failure is not None:
                raise self._failure
            try:
                return self._ensure_backend()
            except HostUnavailable as exc:
                self._failure = exc
                raise

    def _execute(self, script: str, display: str) -> tuple[int, str, str]:
        # The lock guards connecting and the bookkeeping only: several executions may run
        # at once, each on its own channel of the one SSH connection (see run_batches).
        backend = self._connected_backend()
        started = time.monotonic()
        exit_code: int | None = None
        try:
            if backend is None:
                completed = subprocess.run(
                    ["/bin/sh", "-c", script],
                    capture_output=True,
                    timeout=self.record.ssh.command_timeout,
                    check=False,
                )
                exit_code, out, err = completed.returncode, completed.stdout, completed.stderr
            else:
                exit_code, out, err = backend._exec_command(script.encode())
        except (CommandTimeout, subprocess.TimeoutExpired):
            raise self._fail(
                HostUnavailable(
                    self.record.name, "timeout", f"commands did not finish within {self.record.ssh.command_timeout:g} s"
                )
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._fail(HostUnavailable(self.record.name, "unreachable", f"SSH session failed: {exc}")) from None
        finally:
            with self._lock:
                self.commands_run += 1
            self.audit.record(self.record.name, display, exit_code, time.monotonic() - started, "exec")
        return exit_code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def _fail(self, failure: HostUnavailable) -> HostUnavailable:
        """Record the host's one failure cause (the first one wins) and return it."""
        with self._lock:
            if self._failure is None:
                self._failure = failure
            return self._failure

    def run_batch(self, commands: Sequence[Sequence[str]]) -> list[CommandResult]:
        """Run several allow-listed commands in one remote execution."""
        return self.run_batches([commands])[0]

    def run_batches(self, batches: Sequence[Sequence[Sequence[str]]]) -> list[list[CommandResult]]:
        """Run several batches at once, each in its own channel of the one connection.

        A host answers a batch in the sum of its commands' times; commands that take long on
        the host (a Python scan of a venv, in-host probes) get a batch of their own, so the
        host answers in the time of the slowest batch. sshd allows 10 sessions per
        connection by default (sshd_config(5) MaxSessions); a gathering uses at most 4.
        """
        batches = [list(commands) for commands in batches]
        for commands in batches:
            for argv in commands:
                check_command(argv)
        with self._lock:
            self.history += [tuple(argv) for commands in batches for argv in commands]
        results: list[list[CommandResult] | BaseException | None] = [None] * len(batches)

        def run_one(index: int) -> None:
            try:
                results[index] = self._run_one_batch(batches[index])
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread below
                results[index] = exc

        # Connect first, in this thread: a dead host costs one connect timeout, not one per batch.
        if any(batches):
            self._connected_backend()
        threads = [
            threading.Thread(target=run_one, args=(index,), name=f"batch-{self.record.name}-{index}", daemon=True)
            for index in range(1, len(batches))
        ]
        for thread in threads:
            thread.start()
        if batches:
            run_one(0)
        for thread in threads:
            thread.join()
        collected: list[list[CommandResult]] = []
        for outcome in results:
            if isinstance(outcome, BaseException):
                raise outcome
            collected.append(outcome or [])
        return collected

    def _run_one_batch(self, commands: Sequence[Sequence[str]]) -> list[CommandResult]:
        if not commands:
            return []
        nonce = random_tokens.token_hex(6)
        parts = []
        for index, argv in enumerate(commands):
            marker = f"@@GC{nonce} {index}@@"
            parts.append(
                f"printf '%s\\n' '{marker}'; printf '%s\\n' '{marker}' >&2; "
                f"{shlex.join(argv)} </dev/null; printf '\\n@@GC{nonce} rc {index} %s@@\\n' \"$?\""
            )
        script = "\n".join(parts)
        display = " ;; ".join(shlex.join(argv) for argv in commands)
        _, stdout, stderr = self._execute(script, display)
        return _split_batch(commands, nonce, stdout, stderr)

    def run(self, argv: Sequence[str]) -> CommandResult:
        return self.run_batch([argv])[0]

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def _split_sections(text: str, nonce: str) -> dict[int, str]:
    sections: dict[int, list[str]] = {}
    current: int | None = None
    prefix = f"@@GC{nonce} "
    for line in text.splitlines():
        if line.startswith(prefix) and line.endswith("@@"):
            token = line[len(prefix) : -2]
            if token.isdigit():
                current = int(token)
                sections[current] = []
                continue
            if token.startswith("rc "):
                continue
        if current is not None:
            sections[current].append(line)
    return {index: "\n".join(lines) for index, lines in sections.items()}


def _split_batch(commands: Sequence[Sequence[str]], nonce: str, stdout: str, stderr: str) -> list[CommandResult]:
    codes: dict[int, int] = {}
    prefix = f"@@GC{nonce} rc "
    for line in stdout.splitlines():
        if line.startswith(prefix) and line.endswith("@@"):
            position, _, code = line[len(prefix) : -2].partition(" ")
            codes[int(position)] = int(code) if code.isdigit() else 255
    out_sections = _split_sections(stdout, nonce)
    err_sections = _split_sections(stderr, nonce)
    results = []
    for index, argv in enumerate(commands):
        out = out_sections.get(index, "")
        # The rc marker starts with a newline so that output without a final newline is
        # still split correctly; drop that one added line.
        if out.endswith("\n"):
            out = out[:-1]
        results.append(CommandResult(tuple(argv), codes.get(index, 255), out, err_sections.get(index, "")))
    return results


class ConnectionPool:
    """At most one connection per host per process."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._connections: dict[str, HostConnection] = {}
        self._lock = threading.Lock()

    def get(self, host: Host) -> HostConnection:
        with self._lock:
            connection = self._connections.get(host.name)
            if connection is None:
                connection = HostConnection(host, self.audit)
                self._connections[host.name] = connection
            return connection

    def close_all(self) -> None:
        for connection in self._connections.values():
            connection.close()
