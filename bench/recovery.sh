#!/usr/bin/env bash
# Measures how fast dockfw heals (see bench/recovery.ts). Run as root after
# scripts/provision.sh and `npm run build`:
#   bench/recovery.sh            # ROUNDS=20 by default
#   ROUNDS=50 bench/recovery.sh
# Compiles the bench and the test host to .cache/bench-build (Node 20 cannot
# run TypeScript directly), like scripts/testhost.sh.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/.cache/bench-build"
cd "$REPO"
npx tsc --outDir "$OUT" --rootDir "$REPO" --module nodenext --moduleResolution nodenext \
  --target es2022 --types node --skipLibCheck --esModuleInterop --strict \
  bench/recovery.ts
exec node "$OUT/bench/recovery.js" "$@"
