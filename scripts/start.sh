#!/usr/bin/env bash
# `npm start`: installs what the studio needs (first time only) and serves it on http://localhost:5173.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "start: installing npm packages (npm ci)"
  npm ci
fi
exec npx vite --host 127.0.0.1 --port 5173 --strictPort
