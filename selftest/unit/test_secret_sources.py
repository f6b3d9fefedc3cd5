"""Where secrets come from: exported variables, a 0600 secrets file named in the site (refused
when anyone else may read it or it is not the user's own), and systemd credentials."""

from __future__ import annotations

import os
import pickle

import pytest

from conformance.errors import CannotCheck, SecretsFileRefused
from conformance.inventory.loader import load_inventory
from conformance.redact import redact
from conformance.runtime import Runtime
from conformance.secrets import SecretSources, parse_secrets_text, read_secrets_file
from conformance.transport.audit import AuditLog
from selftest.conftest import INVENTORY_DIR

MASTER = "canary-master-from-file-0001"


def _site(tmp_path, secrets_file: str = "secrets.env"):
    site = tmp_path / "site.yaml"
    site.write_text(f"secrets_file: {secrets_file}\n", encoding="utf-8")
    return load_inventory(INVENTORY_DIR / "gateway.yaml", site=site, environ={})


def _secrets(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "secrets.env"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_the_site_names_the_file_relative_to_itself(tmp_path):
    inventory = _site(tmp_path)
    assert inventory.secrets_file == str((tmp_path / "secrets.env").resolve())


def test_a_0600_file_of_the_user_supplies_the_secrets(tmp_path):
    _secrets(tmp_path, f"# the Mini's secrets\nexport LITELLM_MASTER_KEY={MASTER}\nOPTILLM_LOCAL_API_KEY='local key'\n")
    inventory = _site(tmp_path)
    sources = SecretSources.of(inventory, environ={})
    assert sources.value(inventory.secret_env("litellm-master-key")) == MASTER
    assert sources.value(inventory.secret_env("optillm-local-key")) == "local key"
    assert sources.value(inventory.secret_env("system-db")) is None


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o700 | 0o010])
def test_a_file_others_may_read_is_refused_naming_it(tmp_path, mode):
    path = _secrets(tmp_path, f"LITELLM_MASTER_KEY={MASTER}\n", mode)
    with pytest.raises(SecretsFileRefused) as caught:
        read_secrets_file(path)
    message = str(caught.value)
    assert str(path) in message and f"{mode:04o}" in message and "chmod 600" in message
    assert MASTER not in message


def test_a_file_of_another_user_is_refused(tmp_path, monkeypatch):
    path = _secrets(tmp_path, f"LITELLM_MASTER_KEY={MASTER}\n")
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(SecretsFileRefused, match=f"owned by uid {owner}, not by the user running the checks"):
        read_secrets_file(path)


def test_a_malformed_line_is_refused_by_number_without_its_text():
    with pytest.raises(SecretsFileRefused) as caught:
        parse_secrets_text(f"A=1\n{MASTER}\n", "/etc/site/secrets.env")
    assert "line 2 is not NAME=value" in str(caught.value) and MASTER not in str(caught.value)


def test_a_missing_file_holds_no_secrets(tmp_path):
    assert read_secrets_file(tmp_path / "absent.env") == {}


def test_order_exported_variable_then_credential_then_file(tmp_path):
    _secrets(tmp_path, "LITELLM_MASTER_KEY=from-the-file-1234\n")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "litellm-master-key").write_text("from-systemd-credential\n", encoding="utf-8")
    inventory = _site(tmp_path)
    record = inventory.secret_env("litellm-master-key")
    assert SecretSources.of(inventory, {}).value(record) == "from-the-file-1234"
    with_credentials = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert SecretSources.of(inventory, with_credentials).value(record) == "from-systemd-credential"
    exported = {**with_credentials, "LITELLM_MASTER_KEY": "exported-by-hand"}
    assert SecretSources.of(inventory, exported).value(record) == "exported-by-hand"


def test_systemd_credentials_alone(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "optillm-local-key").write_text("credential-local-key", encoding="utf-8")
    inventory = load_inventory(INVENTORY_DIR / "gateway.yaml", environ={})
    sources = SecretSources.of(inventory, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert sources.value(inventory.secret_env("optillm-local-key")) == "credential-local-key"
    assert sources.value(inventory.secret_env("litellm-master-key")) is None


def test_an_exported_variable_still_works_beside_a_refused_file(tmp_path):
    _secrets(tmp_path, f"LITELLM_MASTER_KEY={MASTER}\n", 0o644)
    inventory = _site(tmp_path)
    record = inventory.secret_env("litellm-master-key")
    assert SecretSources.of(inventory, {"LITELLM_MASTER_KEY": "exported-1234"}).value(record) == "exported-1234"
    with pytest.raises(SecretsFileRefused):
        SecretSources.of(inventory, {}).value(record)


def test_the_runtime_masks_the_file_values_and_a_refusal_is_a_cannot_check(tmp_path, monkeypatch):
    for name in ("LITELLM_MASTER_KEY", "OPTILLM_LOCAL_API_KEY", "CONFORMANCE_DB_PASSWORD", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    path = _secrets(tmp_path, f"LITELLM_MASTER_KEY={MASTER}\nUNDECLARED_EXTRA=canary-undeclared-5678\n")
    inventory = _site(tmp_path)
    runtime = Runtime(inventory, AuditLog(tmp_path / "audit.jsonl", "run"))
    secret = runtime.secret("litellm-master-key")
    assert secret is not None and secret.reveal() == MASTER
    assert MASTER not in redact(f"key {MASTER}") and "canary-undeclared-5678" not in redact("x canary-undeclared-5678")
    assert "secrets file" in runtime.secret_hint("system-db") and "CONFORMANCE_DB_PASSWORD" in runtime.secret_hint(
        "system-db"
    )
    for name in ("litellm-master-key", "system-db"):  # the hint itself is shown as it is, never masked
        assert redact(runtime.secret_hint(name)) == runtime.secret_hint(name)
    runtime.close()
    path.chmod(0o640)
    refused = Runtime(inventory, AuditLog(tmp_path / "audit2.jsonl", "run"))
    with pytest.raises(CannotCheck, match=r"secrets file .* refused"):
        refused.secret("litellm-master-key")
    refused.close()


def test_the_refusal_survives_pickling():
    data = pickle.dumps(SecretsFileRefused("/x/secrets.env", "it is group-accessible"))
    error = pickle.loads(data)  # noqa: S301 - the bytes were made on the line above
    assert str(error) == "secrets file /x/secrets.env refused: it is group-accessible"


def test_the_lab_inventory_names_the_lab_secrets_file():
    lab = load_inventory(INVENTORY_DIR / "lab.yaml", environ={})
    assert lab.secrets_file is not None and lab.secrets_file.endswith("/.lab/secrets.env")
