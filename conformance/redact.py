"""Keeping secrets out of every report, log line and bulletin entry.

Two nets: values known to be secret (the environment variables the inventory names, and
every value read from a file or variable that looks like a credential) are replaced
wherever they appear; and patterns of common key formats are masked even when nobody told
us they were secret. Every sink calls ``redact`` on text before writing it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping

MASK = "***"
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{4,}"),
    re.compile(r"(?i)\b([A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*\s*[=:]\s*)(?!\*\*\*)\S+"),
)
_MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_known: set[str] = set()


def is_secret_name(name: str) -> bool:
    """Whether a variable or key name says it holds a credential."""
    return bool(_SECRET_NAME.search(name))


def register_secret(value: str | None) -> None:
    """Remember a value that must never be shown."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _known.add(value)


def register_secret_env(names: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    environ = os.environ if environ is None else environ
    for name in names:
        register_secret(environ.get(name))


def register_env_values(values: Mapping[str, str]) -> None:
    """Register the values of every credential-looking key of an env mapping."""
    for key, value in values.items():
        if is_secret_name(key):
            register_secret(value)


def redact(text: str) -> str:
    """Return ``text`` with every known secret and key-shaped token masked."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
    return text


def redact_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """A copy of an env mapping fit to show: credential-looking values masked."""
    return {key: (MASK if is_secret_name(key) and value else redact(value)) for key, value in values.items()}
