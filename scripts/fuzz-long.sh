#!/usr/bin/env bash
# The long fuzz run (100,000 cases per property by default; no root needed):
#   scripts/fuzz-long.sh [RUNS] [SEED]
# Compiles scripts/fuzz-long.ts to .cache/fuzz-build (Node 20 cannot run
# TypeScript directly) and runs the result.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/.cache/fuzz-build"
cd "$REPO"
npx tsc --outDir "$OUT" --rootDir "$REPO" --module nodenext --moduleResolution nodenext \
  --target es2022 --types node --skipLibCheck --esModuleInterop --strict --resolveJsonModule \
  scripts/fuzz-long.ts
exec node "$OUT/scripts/fuzz-long.js" "$@"
