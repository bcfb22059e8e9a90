#!/usr/bin/env bash
# Makes WebGPU usable on a Debian machine without a GPU (CI, containers), and is a no-op where it already is.
#  1. apt: libvulkan1 (the Vulkan loader dawn.node needs) and chromium (headless Chrome for e2e; its
#     chromium-common ships SwiftShader, a CPU Vulkan driver without shader-f16).
#  2. lavapipe from Mesa 25 (a CPU Vulkan driver with shader-f16), unpacked into .webgpu/lavapipe without touching
#     the system: Debian 12's own Mesa 22 lavapipe is rejected by Dawn. The mirror is the one apt already uses.
# Usage: bash scripts/setup-webgpu.sh        (root, or sudo, for the apt step)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/.webgpu/lavapipe"
say() { echo "setup-webgpu: $*"; }

need_apt=()
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || need_apt+=(libvulkan1)
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  if ! command -v apt-get >/dev/null; then
    say "missing ${need_apt[*]} and this is not a Debian/Ubuntu machine: install a Vulkan loader and Chromium yourself" >&2
    exit 1
  fi
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  say "installing ${need_apt[*]} with apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [[ -f $DEST/env.json && -f $DEST/lvp_icd.json ]]; then
  say "lavapipe already in $DEST"
else
  say "unpacking Mesa 25 lavapipe into $DEST"
  mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 | awk '{print $2}' || true)
  [[ -n $mirror ]] || mirror=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1 | awk '{print $2}' || true)
  [[ -n $mirror ]] || { say "found no Debian mirror in apt's sources" >&2; exit 1; }
  suite="$(. /etc/os-release; echo "$VERSION_CODENAME")-backports"
  tmp="$DEST.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"/{src,lists/partial,debs,root}
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$suite" > "$tmp/src/backports.sources"
  O=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$tmp/src" -o Dir::State::Lists="$tmp/lists" -o APT::Sandbox::User=root)
  apt-get "${O[@]}" update -qq
  ( cd "$tmp/debs" && apt-get "${O[@]}" download -qq mesa-vulkan-drivers libdrm2 libdrm-amdgpu1 )
  for d in "$tmp"/debs/*.deb; do dpkg -x "$d" "$tmp/root"; done
  rm -rf "$tmp/lists" "$tmp/debs" "$tmp/src"
  rm -rf "$DEST"; mv "$tmp" "$DEST"
  LIB="$DEST/root/usr/lib/x86_64-linux-gnu"
  [[ -f $LIB/libvulkan_lvp.so ]] || { say "the backports mesa-vulkan-drivers has no libvulkan_lvp.so" >&2; exit 1; }
  printf '{"file_format_version":"1.0.1","ICD":{"api_version":"1.4.305","library_path":"%s/libvulkan_lvp.so"}}\n' "$LIB" > "$DEST/lvp_icd.json"
  cat > "$DEST/env.sh" <<ENV
export VK_ICD_FILENAMES="$DEST/lvp_icd.json"
export LD_LIBRARY_PATH="$LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export XDG_RUNTIME_DIR="\${XDG_RUNTIME_DIR:-/tmp}"
ENV
  # The same for scripts/run-suite.mjs, which sets the environment per driver without a shell.
  printf '{"VK_ICD_FILENAMES":"%s","LD_LIBRARY_PATH":"%s"}\n' "$DEST/lvp_icd.json" "$LIB" > "$DEST/env.json"
fi
[[ -f /usr/lib/chromium/vk_swiftshader_icd.json ]] && say "SwiftShader: /usr/lib/chromium/vk_swiftshader_icd.json"
say "done"
