#!/usr/bin/env bash
# Installs everything the compat suite needs, on a fresh machine (run as root) or an
# already-prepared one (idempotent: each step is skipped when its result is already there).
#   1. npm ci                         -> node_modules from package-lock.json (exact versions)
#   2. .venv with pusher==3.3.4       -> the Python server SDK, and prometheus_client (the
#                                        metrics test parses /metrics with its text parser)
#   3. Debian's chromium              -> /usr/bin/chromium for the headless browser tests
set -euo pipefail
cd "$(dirname "$0")"

# 1. Node dependencies (skipped when node_modules was installed from this exact lock file).
if ! cmp -s package-lock.json node_modules/.rf-installed-lock.json; then
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.rf-installed-lock.json
fi

# 2. Python venv with the pusher SDK.
PY_PUSHER_VERSION=3.3.4
if ! .venv/bin/python -c "import pusher, prometheus_client, importlib.metadata as m; assert m.version('pusher') == '$PY_PUSHER_VERSION'" 2>/dev/null; then
  if ! python3 -m venv .venv 2>/dev/null; then
    # Debian's python3 lacks ensurepip until python3-venv is installed.
    apt-get update && apt-get install -y python3-venv
    rm -rf .venv && python3 -m venv .venv
  fi
  # py/requirements.txt pins pusher==3.3.4, prometheus_client and their dependencies.
  .venv/bin/pip install --disable-pip-version-check -q -r py/requirements.txt
fi

# 3. Chromium for the real-browser tests (Debian's build; never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
  apt-get update && apt-get install -y chromium
fi

echo "compat-tests setup done: node $(node --version), $(.venv/bin/python -c 'import pusher,importlib.metadata as m; print("python pusher", m.version("pusher"))'), $(/usr/bin/chromium --version 2>/dev/null | head -1)"
