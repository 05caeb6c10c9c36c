#!/usr/bin/env bash
# Runs the benchmarks (as root, after scripts/provision.sh, npm ci and npm run build):
#   npm run bench            # full sizes, about 40 minutes
#   npm run bench -- --quick # smaller sizes, a few minutes
# Compiles bench/*.ts (with the src/ and test/host/ modules they import) to
# .cache/bench-build, like scripts/testhost.sh does (Node 20 cannot run TypeScript
# directly), then runs bench/main.ts, which prints every figure and writes
# bench/RESULTS.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO/.cache/bench-build"
cd "$REPO"
# bench/tsconfig.json: the repository's compiler settings, output in $OUT.
npx tsc -p bench/tsconfig.json
exec node "$OUT/bench/main.js" "$@"
