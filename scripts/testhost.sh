#!/usr/bin/env bash
# Starts or stops a test host to poke at by hand (run as root, after provision.sh):
#   scripts/testhost.sh up [28.5|20.10] [nft|legacy]
#   scripts/testhost.sh down ID
# Compiles test/host/ and scripts/testhost.ts to .cache/testhost-build (Node 20
# cannot run TypeScript directly) and runs the result.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/.cache/testhost-build"
cd "$REPO"
npx tsc --outDir "$OUT" --rootDir "$REPO" --module nodenext --moduleResolution nodenext \
  --target es2022 --types node --skipLibCheck --esModuleInterop --strict \
  scripts/testhost.ts
exec node "$OUT/scripts/testhost.js" "$@"
