#!/usr/bin/env bash
# Dependency policy check (deny.toml): licenses, banned crates and sources, offline. Skipped,
# saying so, when cargo-deny is not installed (`cargo install cargo-deny --locked` builds it
# in several minutes). The advisories check needs the network: SECURITY.md says how to run it.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! cargo deny --version >/dev/null 2>&1; then
  echo "cargo deny: SKIPPED: cargo-deny is not installed (cargo install cargo-deny --locked)"
  exit 0
fi
exec cargo deny --offline check licenses bans sources
