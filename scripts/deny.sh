#!/usr/bin/env bash
# Dependency policy check (deny.toml): licenses, banned crates and sources. Skipped, saying so,
# when cargo-deny is not installed (`cargo install cargo-deny --locked` builds it in 4-10
# minutes, so scripts/prepare.sh does not). Not `--offline`: to list the whole graph, cargo
# needs the manifests of every crate in Cargo.lock, the other platforms' too (windows-sys,
# wasi, ...), which a Linux build never downloads; cargo fetches those from crates.io like any
# build does. The advisories check is not run here: it fetches the RustSec database from
# GitHub (SECURITY.md, "Dependencies", says how to run it where that is reachable).
set -uo pipefail
cd "$(dirname "$0")/.."
if ! cargo deny --version >/dev/null 2>&1; then
  echo "cargo deny: SKIPPED: cargo-deny is not installed (cargo install cargo-deny --locked)"
  exit 0
fi
exec cargo deny --locked check licenses bans sources
