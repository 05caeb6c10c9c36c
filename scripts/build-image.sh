#!/usr/bin/env bash
# Builds a dockfw image WITHOUT a registry or a node base image, for machines
# that have neither (the test host). It assembles a root filesystem from this
# machine's own binaries: node, the iptables (nft and legacy), nft, ipset and
# conntrack tools with the shared libraries ldd finds, dist/ and production node_modules; then
# `docker import`s it and adds the image metadata with a one-stage `docker build`
# FROM that local image.
#
# Users build the real image from the multi-stage Dockerfile instead; this one
# runs whatever node this machine has (the Dockerfile pins Node 24).
#
# Usage: scripts/build-image.sh [TAG]          (default dockfw:local)
#   DOCKER=path/to/docker   the docker CLI to use (default: docker on PATH);
#                           DOCKER_HOST etc. are passed through.
#   DOCKFW_ROOTFS_CACHE=DIR keep the root filesystem tarball there, keyed by
#                           the inputs' hash, and reuse it (tests build once).
set -euo pipefail

TAG="${1:-dockfw:local}"
DOCKER="${DOCKER:-docker}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIBDIR=/usr/lib/x86_64-linux-gnu
XT_MODULES="$LIBDIR/xtables"

log() { printf 'build-image: %s\n' "$*" >&2; }

[ -f "$REPO/dist/cli/main.js" ] || (cd "$REPO" && npm run build --silent)

NODE_BIN="$(readlink -f "$(command -v node)")"
# ipset holds the iptables backend's verdict sets (without it that backend
# cannot write); conntrack cuts revoked connections, as in the Dockerfile.
SBIN_TOOLS=(xtables-nft-multi xtables-legacy-multi nft ipset conntrack)
for tool in "${SBIN_TOOLS[@]}"; do
  [ -x "/usr/sbin/$tool" ] || { log "/usr/sbin/$tool missing: install iptables, nftables, ipset and conntrack"; exit 1; }
done

# Everything the image is made of; the same inputs give the same tarball.
inputs_hash() {
  {
    sha256sum "$NODE_BIN" "${SBIN_TOOLS[@]/#//usr/sbin/}" "$REPO/package-lock.json" "$REPO/package.json" "$0"
    find "$REPO/dist" -type f -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}

build_rootfs() {
  local out="$1" root
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' RETURN
  mkdir -p "$root"/{usr/local/bin,usr/sbin,app,etc,tmp,run,var/run,root}
  chmod 1777 "$root/tmp"

  cp "$NODE_BIN" "$root/usr/local/bin/node"
  for tool in "${SBIN_TOOLS[@]}"; do cp "/usr/sbin/$tool" "$root/usr/sbin/"; done
  # The multi-call binaries dispatch on their name, as Debian links them.
  for family in iptables ip6tables; do
    for variant in nft legacy; do
      for suffix in '' -save -restore; do
        ln -s "xtables-$variant-multi" "$root/usr/sbin/$family-$variant$suffix"
      done
    done
    for suffix in '' -save -restore; do ln -s "$family-nft$suffix" "$root/usr/sbin/$family$suffix"; done
  done
  mkdir -p "$root$XT_MODULES"
  cp "$XT_MODULES"/*.so "$root$XT_MODULES/"

  # Shared libraries of every binary and iptables module, at their own paths.
  local lib
  for lib in $( { ldd "$NODE_BIN"; for t in "${SBIN_TOOLS[@]}"; do ldd "/usr/sbin/$t"; done
                  for m in "$XT_MODULES"/*.so; do ldd "$m"; done; } |
                awk '/=> \//{print $3} /^\s*\/.*ld-linux/{print $1}' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  # The dynamic loader under the path binaries ask for (/lib64 is a link on Debian).
  mkdir -p "$root/lib64"
  cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"

  cp /etc/protocols /etc/services "$root/etc/" 2>/dev/null || true
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"

  # dist/ and production dependencies only (no dev dependencies, no build tools).
  cp -r "$REPO/dist" "$root/app/dist"
  cp "$REPO/package.json" "$REPO/package-lock.json" "$root/app/"
  (cd "$root/app" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
  rm "$root/app/package-lock.json"

  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$out" .
}

ROOTFS=""
if [ -n "${DOCKFW_ROOTFS_CACHE:-}" ]; then
  mkdir -p "$DOCKFW_ROOTFS_CACHE"
  ROOTFS="$DOCKFW_ROOTFS_CACHE/dockfw-rootfs-$(inputs_hash).tar"
  # Parallel callers: one builds, the others wait for it (flock on the cache dir).
  exec 9>"$DOCKFW_ROOTFS_CACHE/.lock"
  flock 9
  if [ ! -f "$ROOTFS" ]; then
    log "building root filesystem $ROOTFS"
    build_rootfs "$ROOTFS.partial" && mv "$ROOTFS.partial" "$ROOTFS"
    # Keep only the newest (each is ~140 MB).
    find "$DOCKFW_ROOTFS_CACHE" -maxdepth 1 -name 'dockfw-rootfs-*.tar*' ! -name "$(basename "$ROOTFS")" -delete
  fi
  flock -u 9
else
  ROOTFS="$(mktemp --suffix=.tar)"
  trap 'rm -f "$ROOTFS"' EXIT
  build_rootfs "$ROOTFS"
fi

BASE="${TAG%%:*}-rootfs:${TAG#*:}"
[ "$BASE" = "$TAG-rootfs:$TAG" ] && BASE="$TAG-rootfs:latest"
"$DOCKER" import "$ROOTFS" "$BASE" >/dev/null

# The final stage's metadata, as in the Dockerfile.
VERSION="$(node -p "require('$REPO/package.json').version")"
# (Without the buildx plugin the CLI warns that the legacy builder is deprecated.)
"$DOCKER" build -q -t "$TAG" - 2> >(grep -v -e 'legacy builder is deprecated' -e 'buildx' -e '^ *$' >&2) >/dev/null <<DOCKERFILE
FROM $BASE
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NODE_ENV=production DOCKFW_LISTEN=127.0.0.1:9811 NODE_OPTIONS="--max-semi-space-size=1 --expose-gc" MALLOC_TRIM_THRESHOLD_=65536 MALLOC_MMAP_THRESHOLD_=16384
WORKDIR /app
LABEL org.opencontainers.image.title="dockfw" \\
      org.opencontainers.image.description="Keeps a Docker host's firewall in step with its containers' labels" \\
      org.opencontainers.image.version="$VERSION" \\
      org.opencontainers.image.licenses="Apache-2.0"
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --start-interval=2s \\
  CMD ["node", "dist/cli/main.js", "health"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["run"]
DOCKERFILE
log "built $TAG (from $BASE)"
