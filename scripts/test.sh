#!/usr/bin/env bash
# Runs the whole test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
