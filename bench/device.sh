#!/usr/bin/env bash
# bench/device.sh — the full benchmark suite on a machine with a real GPU, through dawn.node over the GPU's Vulkan
# driver, results written to $OUT (bench.md: the tables; bench.json: the same as JSON; gpu.txt: nvidia-smi).
#
# UNTESTED: written without a GPU machine at hand (see BENCHMARKS.md). Two steps:
#   bash bench/device.sh pack    here, on the development machine (after `npm ci`): builds dist-bench/bench.mjs
#                                and puts into dist-bench/carry what a bare GPU machine with no package registry
#                                lacks: this machine's node binary, dawn.node and the Vulkan loader (.deb), all
#                                compressed so that dist-bench stays under 64 MiB.
#   bash bench/device.sh [bench options]   there, with dist-bench copied beside the checkout: unpacks what is
#                                missing, points the Vulkan loader at the NVIDIA driver and runs the full suite.
# Environment: OUT (default ./bench-out), PEAK_GFLOPS (the GPU's fp32 peak; known for H100/H200 SXM),
# BENCH_TIMEOUT (seconds, default 540).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=dist-bench/carry
die() { echo "device.sh: $*" >&2; exit 1; }
# grep without -q reads all of ldconfig's output: with -q, ldconfig could die of SIGPIPE and pipefail say "no".
has_lib() { ldconfig -p 2>/dev/null | grep "$1" >/dev/null; }

if [ "${1:-}" = pack ]; then
  npx vite build --config vite.bench.config.ts
  mkdir -p "$CARRY/webgpu"
  xz -T0 -6 -c "$(command -v node)" >"$CARRY/node.xz"
  xz -T0 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node >"$CARRY/dawn.node.xz"
  cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$CARRY/webgpu/"
  (cd "$CARRY" && apt-get download libvulkan1) # the loader only; the driver's ICD comes with the GPU machine
  git rev-parse --short=12 HEAD >"$CARRY/commit.txt" 2>/dev/null || true
  du -sh dist-bench
  [ "$(du -sm dist-bench | cut -f1)" -lt 64 ] || die "dist-bench is over 64 MiB: too big to carry"
  echo "now run on the GPU machine, carrying dist-bench: bash bench/device.sh"
  exit 0
fi

OUT="${OUT:-$PWD/bench-out}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
[ -f dist-bench/bench.mjs ] || die "no dist-bench/bench.mjs: run 'bash bench/device.sh pack' on the development machine and carry dist-bench"

# 1. Node ≥ 20: the machine's own, else the carried one.
NODE="$(command -v node || true)"
if [ -z "$NODE" ] || ! "$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  [ -f "$CARRY/node.xz" ] || die "no node >= 20 here and none carried"
  xz -dc "$CARRY/node.xz" >"$WORK/node" 2>/dev/null ||
    python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$CARRY/node.xz" >"$WORK/node"
  chmod +x "$WORK/node"
  NODE="$WORK/node"
fi

# 2. dawn.node: bench.mjs imports 'webgpu', resolved from dist-bench/node_modules before the checkout's node_modules.
if ! (cd dist-bench && "$NODE" -e "import('webgpu').catch(() => process.exit(1))") 2>/dev/null; then
  [ -f "$CARRY/dawn.node.xz" ] || die "no webgpu package (dawn.node) here and none carried"
  pkg=dist-bench/node_modules/webgpu
  mkdir -p "$pkg/dist/linux-x64"
  cp "$CARRY/webgpu/index.js" "$CARRY/webgpu/package.json" "$pkg/"
  xz -dc "$CARRY/dawn.node.xz" >"$pkg/dist/linux-x64/dawn.node" 2>/dev/null ||
    python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$CARRY/dawn.node.xz" >"$pkg/dist/linux-x64/dawn.node"
fi

# 3. The Vulkan loader (libvulkan.so.1), which dawn.node opens at start: the system's, else the carried .deb
#    unpacked into a private folder (never into /), else apt-get where a registry is reachable.
if ! has_lib 'libvulkan\.so\.1'; then
  deb="$(ls "$CARRY"/libvulkan1_*.deb 2>/dev/null | head -n 1 || true)"
  if [ -n "$deb" ]; then
    dpkg -x "$deb" "$WORK/vk"
    export LD_LIBRARY_PATH="$WORK/vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  elif command -v apt-get >/dev/null && apt-get install -y --no-install-recommends libvulkan1; then
    :
  else
    die "no Vulkan loader (libvulkan.so.1) and none carried"
  fi
fi

# 4. The GPU's Vulkan driver. A CPU driver chosen by an environment carried over from a CI machine is dropped.
case "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" in *lvp*|*swiftshader*) unset VK_ICD_FILENAMES VK_DRIVER_FILES ;; esac
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then export VK_ICD_FILENAMES="$f" VK_DRIVER_FILES="$f"; break; fi
  done
fi
if [ -z "${VK_ICD_FILENAMES:-}" ] && has_lib 'libGLX_nvidia\.so\.0'; then
  # Containers started without the 'graphics' capability have the driver's library but no ICD file.
  printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3.0"}}\n' >"$WORK/nvidia_icd.json"
  export VK_ICD_FILENAMES="$WORK/nvidia_icd.json" VK_DRIVER_FILES="$WORK/nvidia_icd.json"
fi

# 5. What GPU this is, and its fp32 peak where the datasheet figure is known (non-tensor-core FP32, SXM parts).
gpu=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi >"$OUT/gpu.txt" 2>&1 || true
  gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)"
fi
case "$gpu" in
  *H200*|*"H100 80GB HBM3"*) PEAK_GFLOPS="${PEAK_GFLOPS:-67000}" ;;
esac
[ -f "$CARRY/commit.txt" ] && export BENCH_COMMIT="$(cat "$CARRY/commit.txt")"
{ echo "gpu: ${gpu:-unknown}"; echo "node: $("$NODE" -v)"; echo "VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-}"; } | tee -a "$OUT/gpu.txt"

# 6. The full suite: tables to bench.md, JSON to bench.json, progress to bench.log.
set +e
timeout "${BENCH_TIMEOUT:-540}" "$NODE" dist-bench/bench.mjs --json-out "$OUT/bench.json" \
  ${PEAK_GFLOPS:+--peak-gflops "$PEAK_GFLOPS"} "$@" 2>"$OUT/bench.log" | tee "$OUT/bench.md"
status=${PIPESTATUS[0]}
set -e
tail -n 5 "$OUT/bench.log"
grep -q 'CPU driver' "$OUT/bench.md" && echo "device.sh: WARNING: dawn.node chose a CPU adapter, not the GPU" >&2
exit "$status"
