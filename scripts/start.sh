#!/usr/bin/env bash
# `npm start`: installs what the studio needs (first time only) and serves it on http://localhost:5173.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/ensure-npm-deps.mjs start  # npm ci when node_modules is missing or older than package-lock.json
exec npx vite --host 127.0.0.1 --port 5173 --strictPort
