#!/usr/bin/env bash
# Short fuzzing run of every cargo-fuzz target (CI smoke; run longer by hand:
# FUZZ_SECONDS=600 bash scripts/fuzz-smoke.sh). Fails on any crash or failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# This stable toolchain needs RUSTC_BOOTSTRAP for the sanitizer flags cargo-fuzz passes.
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  dict=()
  [ -f "fuzz/$target.dict" ] && dict=("-dict=fuzz/$target.dict")
  case "$target" in selector_*) [ -f fuzz/selector.dict ] && dict=("-dict=fuzz/selector.dict") ;; esac
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run "$target" "$corpus" "${seeds[@]}" -- -max_total_time="$seconds" "${dict[@]}" 2>&1 | tail -n 3
done
