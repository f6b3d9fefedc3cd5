"""Where a declared secret's value comes from: an exported variable, a file of its own, a
systemd credential, or the site's 0600 secrets file.

A secret (``inventory.secrets``) is looked up, first found wins:

1. the exported environment variable it names (``env``): an operator's explicit value;
2. its own ``file`` (one value, the whole file);
3. ``$CREDENTIALS_DIRECTORY/<name>``: a systemd credential (``LoadCredential=`` /
   ``SetCredentialEncrypted=``), which systemd puts in a private, read-only directory for the
   service alone; the file is named after the secret (``litellm-master-key``), its content is
   the value (systemd.exec(5), "Credentials");
4. the site's ``secrets_file``: ``NAME=value`` lines, one per variable (the ``env`` name),
   optionally ``export NAME=value`` and quoted values, ``#`` comments.

The secrets file is refused, with an error that names it, unless it is owned by the user
running the harness and neither group nor others have any access to it: the rule OpenSSH
applies to a private key (``sshkey_perm_ok`` in authfile.c: ``st_uid == getuid()`` and
``(st_mode & 077) == 0``, else "UNPROTECTED PRIVATE KEY FILE"). The check is made on the open
file (``fstat``), so the file that is judged is the file that is read.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import SecretsFileRefused
from conformance.inventory.model import Inventory
from conformance.inventory.model import Secret as SecretRecord

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
MAX_SECRETS_FILE_BYTES = 64 * 1024
_LINE = re.compile(r"^(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)$")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_secrets_text(text: str, source: str) -> dict[str, str]:
    """``NAME=value`` lines; a line of another shape is refused by number (its text may be a secret)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise SecretsFileRefused(source, f"line {number} is not NAME=value")
        values[match.group(1)] = _unquote(match.group(2))
    return values


def read_secrets_file(path: Path) -> dict[str, str]:
    """The file's variables, or SecretsFileRefused naming the file and what to fix.

    A file that does not exist holds no secrets (the lab's is written when the lab first
    comes up); every check that needs one then says where it is looked for.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SecretsFileRefused(str(path), f"it cannot be read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretsFileRefused(str(path), "it is not a regular file")
        if info.st_uid != os.geteuid():
            raise SecretsFileRefused(
                str(path),
                f"it is owned by uid {info.st_uid}, not by the user running the checks (uid {os.geteuid()}); "
                f"chown it to that user",
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            readable = "group- or world-accessible" if mode & 0o007 else "group-accessible"
            raise SecretsFileRefused(str(path), f"it is {readable} (mode {mode:04o}); run: chmod 600 {path}")
        data = handle.read(MAX_SECRETS_FILE_BYTES + 1)
    if len(data) > MAX_SECRETS_FILE_BYTES:
        raise SecretsFileRefused(str(path), f"it is larger than {MAX_SECRETS_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretsFileRefused(str(path), "it is not UTF-8 text") from None
    return parse_secrets_text(text, str(path))


def _read_value(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class SecretSources:
    """Everything a secret may be read from, for one run."""

    secrets_file: Path | None
    environ: Mapping[str, str]

    @classmethod
    def of(cls, inventory: Inventory, environ: Mapping[str, str] | None = None) -> SecretSources:
        secrets_file = Path(inventory.secrets_file) if inventory.secrets_file else None
        return cls(secrets_file, os.environ if environ is None else environ)

    @property
    def credentials_dir(self) -> Path | None:
        value = self.environ.get(CREDENTIALS_ENV)
        return Path(value) if value else None

    def file_values(self) -> dict[str, str]:
        """The secrets file's variables ({} without one); raises SecretsFileRefused."""
        return read_secrets_file(self.secrets_file) if self.secrets_file is not None else {}

    def value(self, record: SecretRecord) -> str | None:
        """The secret's value from the first source that has one; raises SecretsFileRefused
        only when the value would have come from a refused secrets file."""
        found = self.found(record)
        return found[0] if found is not None else None

    def found(self, record: SecretRecord, file_values: Mapping[str, str] | None = None) -> tuple[str, str] | None:
        """(value, where it was found) from the first source that has one, in the lookup order.

        ``file_values``: the secrets file's variables when the caller has read them already.
        """
        if value := self.environ.get(record.env):
            return value, f"the exported variable {record.env}"
        if record.file and (value := _read_value(Path(record.file))):
            return value, f"the file {record.file}"
        credentials = self.credentials_dir
        if credentials is not None and (value := _read_value(credentials / record.name)):
            return value, f"the systemd credential {credentials / record.name}"
        values = self.file_values() if file_values is None else file_values
        if value := values.get(record.env):
            return value, f"the secrets file {self.secrets_file}"
        return None

    def all_values(self, records: Iterable[SecretRecord]) -> list[str]:
        """Every value these sources hold for the records and in the secrets file, to mask them
        in every output (a refused secrets file is not read)."""
        values: list[str] = []
        for record in records:
            try:
                found = self.value(record)
            except SecretsFileRefused:
                found = self.environ.get(record.env)
            if found:
                values.append(found)
        with contextlib.suppress(SecretsFileRefused):
            values += self.file_values().values()
        return values

    def where(self, record: SecretRecord) -> str:
        """Where the owner can put the value, for a check that could not find it."""
        places = [f"export {record.env}"]
        if self.secrets_file is not None:
            places.append(f"add a line for {record.env} to the secrets file {self.secrets_file}")
        else:
            places.append(f"name in the site a 0600 secrets_file with a line for {record.env}")
        places.append(f"or give the systemd credential {record.name!r} ($CREDENTIALS_DIRECTORY/{record.name})")
        return ", ".join(places)
