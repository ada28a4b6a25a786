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
  cargo build --release --bin onebox --example quickstart --example gpu_bench --example gpu_array_bench
  json=$(cargo test --release --no-run --test gpu --test gpu_array --test gpu_diagnostics --test info --message-format=json 2>/dev/null)
  exes=$(printf '%s\n' "$json" | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
  cp "$(printf '%s\n' "$exes" | grep '/gpu-' | tail -n1)" "$out_dir/gpu-tests"
  cp "$(printf '%s\n' "$exes" | grep '/gpu_array-' | tail -n1)" "$out_dir/gpu-array-tests"
  cp "$(printf '%s\n' "$exes" | grep '/gpu_diagnostics-' | tail -n1)" "$out_dir/gpu-diagnostics-tests"
  cp "$(printf '%s\n' "$exes" | grep '/info-' | tail -n1)" "$out_dir/info-tests"
  cp -r scripts/gpu-job "$out_dir/"
  cp "$target/release/onebox" "$target/release/examples/quickstart" "$target/release/examples/gpu_bench" \
    "$target/release/examples/gpu_array_bench" "$out_dir/"
  (cd "$out_dir" && strip gpu-tests gpu-array-tests gpu-diagnostics-tests info-tests gpu_bench gpu_array_bench onebox quickstart)
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
  "$dir/gpu-tests" --test-threads=1 --nocapture || status=1
  echo "== onebox info tests (CUDA_VISIBLE_DEVICES by index and UUID)"
  ONEBOX_BIN="$dir/onebox" "$dir/info-tests" --test-threads=1 --nocapture || status=1
  echo "== GPU array tests"
  "$dir/gpu-array-tests" --test-threads=1 --nocapture || status=1
  echo "== GPU diagnostics tests (report lanes, NVML samples, dashboard)"
  "$dir/gpu-diagnostics-tests" --test-threads=1 --nocapture || status=1
  echo "== onebox run: a task with gpus: 1 gets its own GPU in CUDA_VISIBLE_DEVICES"
  rm -rf /tmp/onebox-gpu-job
  "$dir/onebox" run "$dir/gpu-job/run.yaml" "$dir/gpu-job/tasks.yaml" --name check -q || status=1
  for t in gpu-a cpu-b; do echo "-- $t: status $(cat /tmp/onebox-gpu-job/check/$t/status)"; cat "/tmp/onebox-gpu-job/check/$t/stdout"; done
  echo "== GPU benchmarks"
  "$dir/gpu_bench" "${GPU_BENCH_GIB:-4}"
  echo "== GPU array benchmark (standardise pipeline, GPU against CPU)"
  # shellcheck disable=SC2086 # ROWS COLS, split on purpose
  "$dir/gpu_array_bench" ${GPU_ARRAY_BENCH:-20000 10000} f64 || status=1
  "$dir/gpu_array_bench" ${GPU_ARRAY_BENCH:-20000 10000} f32 || status=1
  exit "${status:-0}"
  ;;
*)
  echo "usage: $0 build | run [DIR]" >&2
  exit 2
  ;;
esac
