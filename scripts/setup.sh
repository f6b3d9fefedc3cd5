#!/usr/bin/env bash
# Set up everything the harness and its lab need on a fresh Debian/Ubuntu machine:
# the project's virtualenv with its dependencies and, as root, the Debian packages the lab
# uses (systemd-nspawn, debootstrap, ssh client). Idempotent and quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python_bin" -m venv .venv
fi
# Re-install only when pyproject.toml changed since the last successful install.
stamp=.venv/.installed-pyproject
if ! cmp -s pyproject.toml "$stamp" 2>/dev/null; then
    .venv/bin/pip install --quiet --upgrade pip >/dev/null
    .venv/bin/pip install --quiet -e '.[dev]'
    cp pyproject.toml "$stamp"
fi

if [ "$(id -u)" = 0 ] && [ "$(uname -s)" = Linux ]; then
    missing=()
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v ssh-keygen >/dev/null || missing+=(openssh-client)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
echo "setup done: $(.venv/bin/python --version), $(.venv/bin/pytest --version 2>&1)"
