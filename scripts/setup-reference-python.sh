#!/usr/bin/env bash
# Optional: the real PyTorch + transformers + PEFT in .venv-ref, for the tests that load our exported adapters with
# PeftModel.from_pretrained (they skip, saying so, when it is missing) and for the golden scripts in scripts/*.py;
# TRL + accelerate + datasets run the exported train.py (src/export/trl-live.gpu.test.ts), gguf reads GGUF files.
# A venv that lacks any of them gets them added.
# Uses pip's configured indexes only (the public index is unreachable on the build machines). Never fatal.
set -uo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(torch==2.13.0+cpu transformers==5.17.0 peft==0.21.0 trl==1.13.0 accelerate==1.15.0 datasets==5.0.1 gguf==0.19.0)
if [[ -x .venv-ref/bin/python ]] && .venv-ref/bin/python -c 'import torch, transformers, peft, trl, accelerate, datasets, gguf' 2>/dev/null; then
  echo "reference python: .venv-ref ready"; exit 0
fi
command -v python3 >/dev/null || { echo "reference python: no python3; PEFT live tests will be skipped"; exit 0; }
mapfile -t idx < <(pip config get global.extra-index-url 2>/dev/null | tr ' ' '\n' | sed '/^$/d')
if ((${#idx[@]} == 0)); then
  echo "reference python: pip has no configured index here; PEFT live tests will be skipped"; exit 0
fi
args=(--index-url "${idx[0]}"); for i in "${idx[@]:1}"; do args+=(--extra-index-url "$i"); done
mkdir -p artifacts
log=artifacts/setup-reference-python.log
echo "reference python: installing ${PACKAGES[*]} into .venv-ref (log: $log)"
python3 -m venv .venv-ref >"$log" 2>&1 && \
  timeout 600 .venv-ref/bin/pip install -q "${args[@]}" "${PACKAGES[@]}" >>"$log" 2>&1 \
  && echo "reference python: ready" \
  || echo "reference python: install failed (see $log); PEFT live tests will be skipped"
exit 0
