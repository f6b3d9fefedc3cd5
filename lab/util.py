"""Small helpers shared by the lab modules: bounded subprocess calls and messages."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class LabError(RuntimeError):
    """A lab operation failed; the message says what and where to look."""


class LabUnsupported(LabError):
    """The machine cannot run the lab (not root, not Linux, ...); CLI exit code 2."""


def log(msg: str) -> None:
    # Progress goes to stderr so stdout stays for tables and command output.
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    capture: bool = True,
    log_file: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv with a hard timeout; with log_file, output is appended there instead."""
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as fh:
            fh.write(f"\n$ {' '.join(argv)}\n")
            fh.flush()
            proc = subprocess.run(
                list(argv),
                timeout=timeout,
                env=dict(env) if env is not None else None,
                input=input_text,
                text=True,
                stdout=fh,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if check and proc.returncode != 0:
            raise LabError(f"command failed (exit {proc.returncode}): {' '.join(argv)}; see {log_file}")
        return proc
    proc = subprocess.run(
        list(argv),
        timeout=timeout,
        env=dict(env) if env is not None else None,
        input=input_text,
        text=True,
        capture_output=capture,
        check=False,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()[-2000:]
        raise LabError(f"command failed (exit {proc.returncode}): {' '.join(argv)}\n{detail}")
    return proc


def write_file(path: Path, content: str | bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
    """Write a file with an exact mode and owner (replacing any previous one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(f".{path.name}.gc-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chown(tmp, uid, gid)
    tmp.chmod(mode)
    tmp.replace(path)


def wait_until(deadline: float, interval: float = 0.2) -> bool:
    """Sleep one interval; False once the deadline has passed (for polling loops)."""
    if time.monotonic() >= deadline:
        return False
    time.sleep(interval)
    return True
