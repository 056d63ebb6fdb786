#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for building and testing this workspace.
# Idempotent: apt runs only when a package is missing. Sourced or run by main.sh, test.sh
# and .ci/run.
set -euo pipefail

# System packages the build and tests need. Later crates add theirs here.
APT_PACKAGES=(pkg-config python3 protobuf-compiler etcd-server bird2 nftables iproute2 iputils-ping containernetworking-plugins iptables util-linux procps openssl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 2
fi
for comp in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
    rustup component add "$comp"
  fi
done
