#!/usr/bin/env bash
# The main job: validate and analyse the example cluster with the `calico` CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p calico-cli
./target/release/calico validate examples/cluster
# Policy analysis: who may talk to whom, one flow explained, and lint findings.
./target/release/calico policy connlist examples/cluster
./target/release/calico policy check examples/cluster --from frontend/web --to backend/api --port 8080
./target/release/calico policy check examples/cluster --from 198.51.100.7 --to frontend/web-7f9c6d5b8-x2kqp --port 8080
./target/release/calico policy lint examples/cluster || true
