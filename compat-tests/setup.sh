#!/usr/bin/env bash
# Installs everything the compat suite needs, on a fresh machine (run as root) or an
# already-prepared one (idempotent: each step is skipped when its result is already there).
#   1. npm ci                         -> node_modules from package-lock.json (exact versions)
#   2. .venv with pusher==3.3.4       -> the Python server SDK, and prometheus_client (the
#                                        metrics test parses /metrics with its text parser)
#   3. Debian's chromium              -> /usr/bin/chromium for the headless browser tests
# When a Debian package is missing and this is not root, it stops with the command to run.
set -euo pipefail
cd "$(dirname "$0")"

APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "compat-tests setup: missing Debian package(s): $*; run this, then try again:" >&2
    echo "    sudo apt-get install -y --no-install-recommends $*" >&2
    exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# 1. Node dependencies (skipped when node_modules was installed from this exact lock file).
if ! cmp -s package-lock.json node_modules/.rf-installed-lock.json; then
  echo "compat-tests setup: npm ci (node_modules missing or older than package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.rf-installed-lock.json
fi

# 2. Python venv with the pusher SDK.
PY_PUSHER_VERSION=3.3.4
if ! .venv/bin/python -c "import pusher, prometheus_client, importlib.metadata as m; assert m.version('pusher') == '$PY_PUSHER_VERSION'" 2>/dev/null; then
  echo "compat-tests setup: Python venv with pusher==$PY_PUSHER_VERSION and prometheus_client"
  if ! python3 -m venv .venv 2>/dev/null; then
    # Debian's python3 lacks ensurepip until python3-venv is installed.
    apt_install python3-venv
    rm -rf .venv && python3 -m venv .venv
  fi
  # py/requirements.txt pins pusher==3.3.4, prometheus_client and their dependencies.
  .venv/bin/pip install --disable-pip-version-check -q -r py/requirements.txt
fi

# 3. Chromium for the real-browser tests (Debian's build; never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
  echo "compat-tests setup: installing Debian's chromium"
  apt_install chromium
fi

echo "compat-tests setup done: node $(node --version), $(.venv/bin/python -c 'import pusher,importlib.metadata as m; print("python pusher", m.version("pusher"))'), $(/usr/bin/chromium --version 2>/dev/null | head -1)"
