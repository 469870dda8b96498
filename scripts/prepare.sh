#!/usr/bin/env bash
# Makes a machine ready for scripts/test-all.sh, so the one test command works on a fresh
# Debian machine: the tools it cannot install are checked (and named), a Redis is started on
# 127.0.0.1:6379 when none answers, and compat-tests/setup.sh installs the compat suite's
# npm packages, Python venv and Debian's chromium. Idempotent: a ready machine costs a few
# checks. A PostgreSQL on 127.0.0.1:5432 and the openssl tool are made ready the same way (for
# the app store and rediss:// tests), and cargo-fuzz is installed when the nightly toolchain is
# there (for the fuzz step). When something cannot be installed here (not root, no apt-get), it stops at once and
# prints the one command to run.
set -euo pipefail
cd "$(dirname "$0")/.."

stop() {
  echo "prepare: $1" >&2
  echo "prepare: run this, then the test command again:" >&2
  echo "    $2" >&2
  exit 1
}

# Debian packages: installed as root with apt-get (one `apt-get update` per run at most).
APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    stop "missing: $*" "sudo apt-get install -y --no-install-recommends $*"
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# Tools the project builds and runs with. Rust comes from rustup, never from apt.
command -v cargo >/dev/null 2>&1 ||
  stop "cargo is not on the PATH" "install Rust with rustup (https://rustup.rs), then open a new shell"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  stop "node and npm (>= 20) are needed by compat-tests/" "sudo apt-get install -y --no-install-recommends nodejs npm   # Node 20 or later"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] ||
  stop "node $(node --version) is too old for compat-tests/ (needs >= 20)" "install Node.js 20 or later (https://nodejs.org/en/download)"
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates

# Redis on 127.0.0.1:6379 for tests/cluster.rs, and redis-server on the PATH for its restart
# test (which starts its own on a spare port).
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "prepare: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 ||
    stop "redis-server did not answer on 127.0.0.1:6379" "redis-server --daemonize yes --save '' --port 6379"
fi

# openssl makes the certificates of the rediss:// test (tests/redis_ops.rs).
command -v openssl >/dev/null 2>&1 || apt_install openssl

# PostgreSQL on 127.0.0.1:5432, user postgres without a password, for the app store tests
# (tests/apps_database.rs; each makes and drops a database of its own). CI machines run one;
# elsewhere Debian's postgresql is installed and a throwaway cluster with trust auth started.
pg_answers() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }
if ! pg_answers; then
  if ! command -v psql >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt_install postgresql
    # The package may start its own cluster (password auth) on 5432: ours takes the port.
    for c in /etc/postgresql/*/main; do
      [ -d "$c" ] && pg_ctlcluster "$(basename "$(dirname "$c")")" main stop >/dev/null 2>&1 || true
    done
  fi
  if pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    stop "the PostgreSQL on 127.0.0.1:5432 refuses user postgres without a password" \
      "add 'host all postgres 127.0.0.1/32 trust' at the top of its pg_hba.conf and reload it"
  fi
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  data=/tmp/rf-broadcast-pg
  as_pg=()
  if [ "$(id -u)" = 0 ]; then
    as_pg=(runuser -u postgres --)
  fi
  echo "prepare: starting PostgreSQL on 127.0.0.1:5432 (trust auth, data in $data)"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data" && mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data"
    "${as_pg[@]}" "$pgbin/initdb" -D "$data" -A trust -U postgres >/dev/null
  fi
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p 5432 -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null
  pg_answers || stop "PostgreSQL did not answer on 127.0.0.1:5432 (see $data/server.log)" \
    "$pgbin/pg_ctl -D $data -l $data/server.log start"
fi

# cargo-fuzz for the test command's fuzz step (fuzz/run.sh), when the nightly toolchain is
# there: about 1.5 minutes to build, once. Without nightly the fuzz step is skipped, saying so.
# (cargo-deny is not installed here: it takes 4-10 minutes to build; scripts/deny.sh says how.)
if cargo +nightly --version >/dev/null 2>&1; then
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "prepare: installing cargo-fuzz (cargo install cargo-fuzz --locked, about 1.5 minutes)"
    cargo install cargo-fuzz --locked --quiet ||
      stop "cargo-fuzz did not install" "cargo install cargo-fuzz --locked"
  fi
else
  echo "prepare: no nightly toolchain: the fuzz step will be skipped (rustup toolchain install nightly)"
fi

# npm packages, the Python SDK venv and Debian's chromium for compat-tests.
bash compat-tests/setup.sh
