#!/usr/bin/env bash
# The main job: `calico demo` builds the example cluster in network namespaces (nodes on a
# bridge, pods added by calico-cni, VXLAN routes from calico-route, nftables from
# calico-policy through calico-dataplane), probes every pod pair with real packets and checks
# that the kernel did exactly what calico-policy predicted (exit 1 otherwise). Without root
# it prints the prediction and why the live part was skipped. Then the offline analysis.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# calico-cni and calico-ipam must sit next to calico: the demo runs them as a runtime does.
cargo build --release --locked -p calico-cli -p calico-cni
bin="${CARGO_TARGET_DIR:-target}/release"
"$bin/calico" validate examples/cluster
"$bin/calico" demo examples/cluster
# Policy analysis: who may talk to whom, one flow explained, and lint findings.
"$bin/calico" policy connlist examples/cluster
"$bin/calico" policy check examples/cluster --from frontend/web --to backend/api --port 8080
"$bin/calico" policy check examples/cluster --from 198.51.100.7 --to frontend/web-7f9c6d5b8-x2kqp --port 8080
"$bin/calico" policy lint examples/cluster || true
