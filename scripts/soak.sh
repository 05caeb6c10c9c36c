#!/usr/bin/env bash
# The full soak run (root, after scripts/provision.sh and npm run build):
#   scripts/soak.sh [CYCLES=1000] [BATCH=10]
# Compiles scripts/soak.ts with test/host/ to .cache/soak-build (Node 20
# cannot run TypeScript directly) and runs the result.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/.cache/soak-build"
cd "$REPO"
npx tsc --outDir "$OUT" --rootDir "$REPO" --module nodenext --moduleResolution nodenext \
  --target es2022 --types node --skipLibCheck --esModuleInterop --strict \
  scripts/soak.ts
exec node "$OUT/scripts/soak.js" "$@"
