#!/usr/bin/env bash
# The main job: validate the example cluster with the `calico` CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p calico-cli
./target/release/calico validate examples/cluster
