#!/usr/bin/env bash
# Builds the GPU test binaries here (x86-64, no CUDA needed), or runs them on a GPU machine.
#
#   scripts/gpu-check.sh build         # on the build machine: writes gpu-check/ (binaries + this script)
#   scripts/gpu-check.sh run [DIR]     # on the GPU machine: runs everything in DIR (default gpu-check/)
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=gpu-check

case "${1:-}" in
build)
  target="${CARGO_TARGET_DIR:-target}"
  rm -rf "$out_dir" && mkdir -p "$out_dir"
  cargo build --release --bin onebox --example quickstart --example gpu_bench
  json=$(cargo test --release --no-run --test gpu --message-format=json 2>/dev/null)
  bin=$(printf '%s\n' "$json" | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep '/gpu-' | tail -n1)
  cp "$bin" "$out_dir/gpu-tests"
  cp "$target/release/onebox" "$target/release/examples/quickstart" "$target/release/examples/gpu_bench" "$out_dir/"
  strip "$out_dir"/* 2>/dev/null || true
  cp scripts/gpu-check.sh "$out_dir/"
  du -sh "$out_dir"
  ;;
run)
  dir="${2:-$out_dir}"
  echo "== nvidia-smi"; nvidia-smi -L || true
  echo "== onebox info"; "$dir/onebox" info
  echo "== onebox info --json (CUDA_VISIBLE_DEVICES=0)"; CUDA_VISIBLE_DEVICES=0 "$dir/onebox" info --json | head -20
  echo "== quickstart"; "$dir/quickstart"
  echo "== GPU tests"
  ONEBOX_BIN="$dir/onebox" "$dir/gpu-tests" --test-threads=1 --nocapture || status=1
  echo "== GPU benchmarks"
  "$dir/gpu_bench" "${GPU_BENCH_GIB:-4}"
  exit "${status:-0}"
  ;;
*)
  echo "usage: $0 build | run [DIR]" >&2
  exit 2
  ;;
esac
