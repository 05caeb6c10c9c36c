#!/usr/bin/env bash
# Shows dockfw at work on a fresh machine (as root): provisions a test Docker
# engine in a network namespace, runs the example services of compose.example.yml,
# probes them from outside addresses without and with dockfw, tears everything down.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/.cache/demo-build"
cd "$REPO"
bash scripts/provision.sh >/dev/null
[ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null
npm run build --silent
npx tsc --outDir "$OUT" --rootDir "$REPO" --module nodenext --moduleResolution nodenext \
  --target es2022 --types node --skipLibCheck --esModuleInterop --strict \
  scripts/demo.ts
exec node "$OUT/scripts/demo.js"
