#!/usr/bin/env bash
# bench/device.sh — the benchmark suite on a machine with a real GPU, through dawn.node over the GPU's Vulkan
# driver, from a self-contained build in dist-device/, results written to $OUT (bench.md: the tables; bench.json: the same as JSON, rewritten after every section;
# bench.log: progress; gpu.txt: nvidia-smi, the adapter probe and the environment).
#
# Three uses:
#   bash bench/device.sh pack    here, on the development machine (x86-64, after `npm ci`), last thing before the GPU
#                                run: builds dist-device/bench.mjs (the suite, TF.js bundled in) and puts into
#                                dist-device/carry what a bare GPU machine with no package registry lacks: this
#                                machine's node binary and dawn.node (xz), and the Vulkan loader with glvnd as .debs
#                                (the NVIDIA ICD, libGLX_nvidia, needs glvnd); those are made once and kept in
#                                node_modules/.cache/device-carry. dist-device (git-ignored) must then travel with
#                                the checkout (device tool: carry ["dist-device"]). Its own folder, not dist-bench,
#                                so that an `npm run bench` in the same working tree cannot empty it.
#   bash bench/device.sh probe   there: unpacks what is missing, points the Vulkan loader at the NVIDIA driver and
#                                says which adapter dawn.node finds (exit 0: a GPU; 3: a CPU driver; 4: none) and
#                                whether python3 has torch with CUDA and peft (the training table's peer). Seconds.
#   bash bench/device.sh [bench options]   there: the same set-up and probe (stops if no adapter is found), then
#                                the suite (`--only matmul,training` and the like pass through).
# Environment: OUT (default ./bench-out), PEAK_GFLOPS (the GPU's fp32 peak; known for H100/H200 SXM),
# BENCH_TIMEOUT (seconds for the suite, default 540), BENCH_TORCH_TIMEOUT (seconds for the PyTorch peer, default
# 300), GL_UNPACK=private (never unpack the loaders into /, even as root: a private folder + LD_LIBRARY_PATH;
# GL_UNPACK=test: all seven into the private folder even where the system has them, a test of the unpacking).
set -euo pipefail
cd "$(dirname "$0")/.."
DIST=dist-device
CARRY=$DIST/carry
CACHE=node_modules/.cache/device-carry
# The Vulkan loader and glvnd (see /work/shared/GPU-MACHINE.md): with libvulkan1 alone the loader cannot open the
# NVIDIA ICD ("Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr'", then "found no adapter").
GL_DEBS=(libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2)
die() { echo "device.sh: $*" >&2; exit 1; }
# grep without -q reads all of ldconfig's output: with -q, ldconfig could die of SIGPIPE and pipefail say "no".
has_lib() { ldconfig -p 2>/dev/null | grep "$1" >/dev/null; }
# The library each .deb brings, to unpack only what the machine lacks.
soname_of() {
  case "$1" in
    libvulkan1) echo 'libvulkan\.so\.1' ;;
    libglvnd0) echo 'libGLdispatch\.so\.0' ;;
    libegl1) echo 'libEGL\.so\.1' ;;
    libgl1) echo 'libGL\.so\.1' ;;
    libglx0) echo 'libGLX\.so\.0' ;;
    libopengl0) echo 'libOpenGL\.so\.0' ;;
    libgles2) echo 'libGLESv2\.so\.2' ;;
  esac
}

if [ "${1:-}" = pack ]; then
  [ "$(uname -m)" = x86_64 ] || die "pack on an x86-64 machine: the node binary and the .debs travel as they are"
  node_bin="$(command -v node)"
  dawn=node_modules/webgpu/dist/linux-x64/dawn.node
  [ -f "$dawn" ] || die "no $dawn: run npm ci first"
  key="node $(node -v) $(stat -Lc %s "$node_bin"); dawn $(stat -Lc %s "$dawn"); debs ${GL_DEBS[*]}"
  if [ "$(cat "$CACHE/key" 2>/dev/null || true)" != "$key" ]; then
    echo "device.sh: compressing node and dawn.node, downloading ${GL_DEBS[*]} (once; kept in $CACHE)"
    rm -rf "$CACHE"
    mkdir -p "$CACHE/webgpu" "$CACHE/debs"
    xz -T0 -6 -c "$node_bin" >"$CACHE/node.xz"
    xz -T0 -6 -c "$dawn" >"$CACHE/dawn.node.xz"
    cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$CACHE/webgpu/"
    if ! (cd "$CACHE/debs" && apt-get download "${GL_DEBS[@]}" 2>/dev/null); then
      # No package lists yet (or another architecture's): amd64 lists of our own, the device README's recipe.
      lists="$(mktemp -d)"
      mkdir -p "$lists/partial"
      o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
      apt-get "${o[@]}" update >/dev/null
      (cd "$CACHE/debs" && apt-get "${o[@]}" download "${GL_DEBS[@]}")
      rm -rf "$lists"
    fi
    [ "$(ls "$CACHE"/debs/*.deb | wc -l)" -eq "${#GL_DEBS[@]}" ] || die "expected ${#GL_DEBS[@]} .debs in $CACHE/debs"
    echo "$key" >"$CACHE/key"
  fi
  npx vite build --config vite.bench.config.ts --outDir "$DIST" # empties $DIST first
  mkdir -p "$CARRY"
  cp -r "$CACHE/node.xz" "$CACHE/dawn.node.xz" "$CACHE/webgpu" "$CACHE/debs" "$CARRY/"
  git rev-parse --short=12 HEAD >"$CARRY/commit.txt" 2>/dev/null || true
  { git diff --quiet HEAD -- 2>/dev/null || echo dirty; } >"$CARRY/dirty.txt"
  du -sh "$DIST"
  # The device tool moves the checkout (tracked and untracked files that git does not ignore) plus carried paths,
  # 64 MiB in all.
  tree_bytes="$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)"
  dist_bytes="$(du -sb "$DIST" | cut -f1)"
  total_mib=$(((tree_bytes + dist_bytes) / 1048576))
  echo "checkout $((tree_bytes / 1048576)) MiB + $DIST $((dist_bytes / 1048576)) MiB = ${total_mib} MiB to carry (limit 64 MiB)"
  [ "$total_mib" -lt 63 ] || die "over the device tool's 64 MiB: too big to carry"
  echo "now, on the GPU machine, carrying $DIST: bash bench/device.sh probe; bash bench/device.sh [options]"
  exit 0
fi

MODE=bench
if [ "${1:-}" = probe ]; then MODE=probe; shift; fi
OUT="${OUT:-$PWD/bench-out}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
[ -f "$DIST/bench.mjs" ] || die "no $DIST/bench.mjs: run 'bash bench/device.sh pack' on the development machine and carry $DIST"
unxz_to() { xz -dc "$1" >"$2" 2>/dev/null || python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$1" >"$2"; }

# 1. Node ≥ 20: the machine's own, else the carried one.
NODE="$(command -v node || true)"
if [ -z "$NODE" ] || ! "$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  [ -f "$CARRY/node.xz" ] || die "no node >= 20 here and none carried"
  unxz_to "$CARRY/node.xz" "$WORK/node"
  chmod +x "$WORK/node"
  NODE="$WORK/node"
fi

# 2. dawn.node: bench.mjs imports 'webgpu', resolved from $DIST/node_modules before the checkout's node_modules.
if ! (cd "$DIST" && "$NODE" -e "import('webgpu').catch(() => process.exit(1))") 2>/dev/null; then
  [ -f "$CARRY/dawn.node.xz" ] || die "no webgpu package (dawn.node) here and none carried"
  pkg=$DIST/node_modules/webgpu
  mkdir -p "$pkg/dist/linux-x64"
  cp "$CARRY/webgpu/index.js" "$CARRY/webgpu/package.json" "$pkg/"
  unxz_to "$CARRY/dawn.node.xz" "$pkg/dist/linux-x64/dawn.node"
fi

# 3. The Vulkan loader and glvnd: the system's, else the carried .debs. As root the device README's tested recipe
#    (dpkg -x into /, then ldconfig), only for the libraries the machine lacks; otherwise (or GL_UNPACK=private) a
#    private folder on LD_LIBRARY_PATH, which the ICD's own dlopen of glvnd also searches.
unpack_deb() { # deb dest
  if command -v dpkg >/dev/null; then
    dpkg -x "$1" "$2"
  else # a .deb is an ar archive holding data.tar.xz
    python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], 'rb').read(); i = 8
while i < len(data):
    name = data[i:i + 16].decode().strip().rstrip('/'); size = int(data[i + 48:i + 58]); body = data[i + 60:i + 60 + size]
    i += 60 + size + (size & 1)
    if name.startswith('data.tar'):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
PY
  fi
}
missing=()
for d in "${GL_DEBS[@]}"; do
  if [ "${GL_UNPACK:-}" = test ] || ! has_lib "$(soname_of "$d")"; then missing+=("$d"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "device.sh: missing loaders: ${missing[*]}"
  ls "$CARRY"/debs/*.deb >/dev/null 2>&1 || die "no Vulkan loader/glvnd here and none carried ($CARRY/debs)"
  if [ "$(id -u)" = 0 ] && [ -z "${GL_UNPACK:-}" ]; then
    for d in "${missing[@]}"; do unpack_deb "$(ls "$CARRY"/debs/"${d}"_*.deb | head -n 1)" /; done
    ldconfig
  else
    for d in "${missing[@]}"; do unpack_deb "$(ls "$CARRY"/debs/"${d}"_*.deb | head -n 1)" "$WORK/gl"; done
    export LD_LIBRARY_PATH="$WORK/gl/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi

# 4. The GPU's Vulkan driver: the NVIDIA ICD file where the driver ships one (it replaces a CPU driver left in the
#    environment), else one written for libGLX_nvidia.so.0 (containers without the 'graphics' capability have the
#    library but no ICD file), else whatever the environment and the loader find (a CPU driver: the bench says so).
icd=""
for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$f" ]; then icd="$f"; break; fi
done
if [ -z "$icd" ] && has_lib 'libGLX_nvidia\.so\.0'; then
  printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3.0"}}\n' >"$WORK/nvidia_icd.json"
  icd="$WORK/nvidia_icd.json"
fi
if [ -n "$icd" ]; then export VK_ICD_FILENAMES="$icd" VK_DRIVER_FILES="$icd"; fi
for f in /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json /usr/share/glvnd/egl_vendor.d/10_nvidia.json; do
  if [ -f "$f" ]; then export __EGL_VENDOR_LIBRARY_FILENAMES="$f"; break; fi
done
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 # the PyTorch peer builds its models from config.json

# 5. What GPU this is, the adapter dawn.node finds, and whether the PyTorch peer can run.
gpu=""
: >"$OUT/gpu.txt"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi >>"$OUT/gpu.txt" 2>&1 || true
  gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)"
fi
case "$gpu" in
  *H200*|*"H100 80GB HBM3"*|*"H100 SXM"*) PEAK_GFLOPS="${PEAK_GFLOPS:-67000}" ;;
esac
[ -f "$CARRY/commit.txt" ] && export BENCH_COMMIT="$(cat "$CARRY/commit.txt")"
cp bench/probe.mjs "$DIST/probe.mjs" # beside bench.mjs, so that 'webgpu' resolves to the carried dawn.node
probe="$(timeout 60 "$NODE" "$DIST/probe.mjs" 2>"$WORK/probe.err" || true)"
[ -n "$probe" ] || probe="{\"adapter\": null, \"error\": \"the probe crashed: $(tail -n 3 "$WORK/probe.err" | tr '\n"' ' ' )\"}"
peer="(checked by the training section)"
[ "$MODE" = probe ] && peer="$(timeout 120 python3 bench/torch_peer.py --check 2>/dev/null || true)"
{
  echo "gpu: ${gpu:-unknown (no nvidia-smi)}"
  echo "node: $("$NODE" -v) ($NODE)"
  echo "commit: ${BENCH_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
  echo "VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-} __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-}"
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  echo "loaders: $(ldconfig -p 2>/dev/null | grep -oE '(libvulkan|libGLX|libGLX_nvidia|libEGL|libGLdispatch)\.so\.[0-9]+' | sort -u | tr '\n' ' ')"
  echo "adapter: $probe"
  echo "torch peer: ${peer:-python3 missing or its check crashed}"
} | tee -a "$OUT/gpu.txt"
no_adapter=0
is_cpu=0
grep -q '"adapter":null' <<<"$probe" && no_adapter=1
grep -q '"isCpu":true' <<<"$probe" && is_cpu=1
if [ "$no_adapter" = 1 ] || { [ "$is_cpu" = 1 ] && [ -n "$gpu" ]; }; then
  # The GPU is there but dawn.node does not get it: what the Vulkan loader says, for the next try.
  {
    echo "device.sh: dawn.node found $([ "$no_adapter" = 1 ] && echo 'no adapter' || echo 'only a CPU adapter'). ICD files:"
    ls -l /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1 || true
    cat "$WORK/probe.err" 2>/dev/null || true
    echo "--- the probe again with VK_LOADER_DEBUG=error,warn,driver:"
    VK_LOADER_DEBUG=error,warn,driver timeout 60 "$NODE" "$DIST/probe.mjs" 2>&1 | head -n 60 || true
  } 2>&1 | tee -a "$OUT/gpu.txt" >&2
  [ "$no_adapter" = 1 ] && exit 4
  exit 3 # timing a CPU driver on a GPU machine would only spend its time
fi
if [ "$MODE" = probe ]; then
  [ "$is_cpu" = 0 ] || { echo "device.sh: WARNING: dawn.node chose a CPU adapter, not the GPU" >&2; exit 3; }
  exit 0
fi

# 6. The suite: tables to bench.md, JSON to bench.json (after every section), progress to bench.log and the console.
set +e
timeout "${BENCH_TIMEOUT:-540}" "$NODE" "$DIST/bench.mjs" --json-out "$OUT/bench.json" \
  ${PEAK_GFLOPS:+--peak-gflops "$PEAK_GFLOPS"} "$@" 2> >(tee "$OUT/bench.log" >&2) >"$OUT/bench.md"
status=$?
set -e
sleep 1 # let tee finish the log
[ "$status" = 124 ] && echo "device.sh: the suite ran past BENCH_TIMEOUT=${BENCH_TIMEOUT:-540} s; bench.json holds the sections it finished" >&2
echo
cat "$OUT/bench.md"
# The training table once more at the very end, where a console showing only the last lines still has it.
if [ "$(wc -c <"$OUT/bench.md")" -gt 10000 ] && grep -q '^### 5\.' "$OUT/bench.md"; then
  echo "--- (the training table again)"
  awk '/^### /{show = /^### 5\./} show' "$OUT/bench.md"
fi
[ "$is_cpu" = 1 ] && echo "device.sh: WARNING: dawn.node chose a CPU adapter, not the GPU" >&2
exit "$status"
