"""The audit log: every command the harness runs on a host, appended to reports/.

One JSON line per command, written under a file lock so that xdist workers and parallel
runs never interleave lines. Commands carry no secrets by construction, but the line is
redacted anyway: the log is an owner-facing artifact.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from filelock import FileLock

from conformance.redact import redact

_LOCK_TIMEOUT_SECONDS = 10.0


class AuditLog:
    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id

    def record(self, host: str, command: str, exit_code: int | None, seconds: float, kind: str) -> None:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "run": self.run_id,
            "pid": os.getpid(),
            "host": host,
            "kind": kind,
            "command": redact(command),
            "exit": exit_code,
            "seconds": round(seconds, 3),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (
            FileLock(str(self.path) + ".lock", timeout=_LOCK_TIMEOUT_SECONDS),
            self.path.open("a", encoding="utf-8") as handle,
        ):
            handle.write(json.dumps(entry, sort_keys=True) + "\n")


class NullAuditLog(AuditLog):
    def __init__(self) -> None:
        super().__init__(Path(os.devnull), "")

    def record(self, host: str, command: str, exit_code: int | None, seconds: float, kind: str) -> None:
        return None
