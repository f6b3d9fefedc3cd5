#!/usr/bin/env bash
# Set up everything the harness and its lab need on a fresh Debian/Ubuntu machine:
# the project's virtualenv with its dependencies and, as root, the Debian packages the lab
# uses (systemd-nspawn, debootstrap, ssh client) and PostgreSQL for the store's tests. Idempotent and quick when already done.
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
    # The report self-test renders the Allure report in Debian's headless Chromium.
    command -v chromium >/dev/null || missing+=(chromium)
    command -v java >/dev/null || missing+=(default-jre-headless)
    command -v npm >/dev/null || missing+=(npm)
    # The store's tests start a throwaway PostgreSQL cluster from Debian's binaries.
    compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=(postgresql)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # The System monitor's e2e tests scrape it with Debian's Prometheus (and lint with promtool).
    # Installed only: its package must not start a daemon here (it would listen on every
    # address); the tests start it on the lab Mini's loopback and stop it.
    if ! command -v prometheus >/dev/null; then
        echo "installing Debian packages: prometheus"
        apt-get update -qq
        policy=/usr/sbin/policy-rc.d
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
            trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    fi
fi
# The Allure command line (npm's allure-commandline, a Java program) for `conformance report`.
allure_version=2.46.1
if [ ! -x .tools/node_modules/.bin/allure ] || ! grep -q "\"version\": \"$allure_version\"" .tools/node_modules/allure-commandline/package.json 2>/dev/null; then
    if command -v npm >/dev/null; then
        npm install --silent --no-audit --no-fund --prefix .tools "allure-commandline@$allure_version" >/dev/null
    else
        echo "note: npm not found; 'conformance report' needs it (apt-get install npm)" >&2
    fi
fi

echo "setup done: $(.venv/bin/python --version), $(.venv/bin/pytest --version 2>&1)"
