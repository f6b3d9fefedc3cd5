"""Lab secrets and the monitor client key, generated once per cache.

The hosts' config files embed these values, so they must stay stable for as long as the
golden rootfs they were written into exists; hence they live in the cache, not the repo.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass
from pathlib import Path

from .config import cache_dir
from .util import run, write_file

SECRET_NAMES = ("LITELLM_MASTER_KEY", "OPTILLM_LOCAL_API_KEY", "HF_TOKEN")


@dataclass(frozen=True)
class LabSecrets:
    litellm_master_key: str
    optillm_local_api_key: str
    hf_token: str

    def env_text(self) -> str:
        return (
            f"LITELLM_MASTER_KEY={self.litellm_master_key}\n"
            f"OPTILLM_LOCAL_API_KEY={self.optillm_local_api_key}\n"
            f"HF_TOKEN={self.hf_token}\n"
        )


def parse_env(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def secrets_path() -> Path:
    return cache_dir() / "secrets.env"


def load_or_create_secrets() -> LabSecrets:
    path = secrets_path()
    if path.is_file():
        values = parse_env(path.read_text())
        # An "sk-" local key would be taken by optillm for an OpenAI key (see below).
        if all(values.get(n) for n in SECRET_NAMES) and not values["OPTILLM_LOCAL_API_KEY"].startswith("sk-"):
            return LabSecrets(values["LITELLM_MASTER_KEY"], values["OPTILLM_LOCAL_API_KEY"], values["HF_TOKEN"])
    # Key shapes follow the real ones: LiteLLM wants "sk-", HF tokens start "hf_". The
    # OptiLLM local key must NOT start with "sk-": optillm 0.3.20 treats an "sk-" bearer
    # token as an OpenAI key and builds an OpenAI client for it (api.openai.com when no
    # base_url is set) instead of using local inference.
    made = LabSecrets(
        litellm_master_key="sk-lab-" + _secrets.token_hex(16),
        optillm_local_api_key="lab-local-" + _secrets.token_hex(16),
        hf_token="hf_lab" + _secrets.token_hex(16),
    )
    write_file(path, made.env_text(), 0o600)
    return made


def monitor_key_paths() -> tuple[Path, Path]:
    key = cache_dir() / "keys" / "monitor_ed25519"
    return key, key.with_name("monitor_ed25519.pub")


def load_or_create_monitor_key() -> str:
    """Return the public key line, generating the pair on first use."""
    key, pub = monitor_key_paths()
    if not (key.is_file() and pub.is_file()):
        key.parent.mkdir(parents=True, exist_ok=True)
        key.unlink(missing_ok=True)
        pub.unlink(missing_ok=True)
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "monitor@gateway-lab", "-f", str(key)],
            timeout=30,
        )
    return pub.read_text().strip()
