# syntax=docker/dockerfile:1
# dockfw: a host-network sidecar that keeps DOCKER-USER in step with
# containers' dockfw.allow labels.
#   docker build -t dockfw:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no native add-on builds (dockerode's optional ssh helpers
# work without them).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
# iptables brings both the nft and the legacy variant (and ip6tables); dockfw
# uses the one Docker uses. ipset holds the iptables backend's drop records
# (without it drops are still dropped, just not recorded). util-linux (already in the base image, named so it
# stays) brings setpriv: the nft monitor dies with dockfw, even on SIGKILL.
# conntrack cuts revoked connections (without it every packet is judged).
# Package managers are removed: nothing installs
# anything at run time, and no compiler or dev dependency reaches this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables ipset util-linux conntrack \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn-* \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# --max-semi-space-size=1: V8's young generation capped at 1 MB per semi-space
# (default 16). Measured at 5,000 containers: idle resident size about 80 MB
# lower; only how often short-lived objects are collected changes (docs/design.md,
# "Memory"). --expose-gc: dockfw collects once after a sync of a second or more,
# or once its heap grew 32 MB (a full read), which gives that read's garbage back.
# Setting NODE_OPTIONS replaces both. MALLOC_TRIM_THRESHOLD_: glibc gives freed
# native memory back to the system past 64 kB instead of keeping what the first
# sync's peak grew. MALLOC_MMAP_THRESHOLD_: blocks of 16 kB or more (socket and
# pipe read buffers) are mapped on their own and unmapped when freed, so they
# leave no holes in the heap. Measured together at 5,000 containers: idle
# resident size 123 → 92 MB (docs/design.md, "Memory").
ENV NODE_ENV=production DOCKFW_LISTEN=127.0.0.1:9811 NODE_OPTIONS="--max-semi-space-size=1 --expose-gc" \
    MALLOC_TRIM_THRESHOLD_=65536 MALLOC_MMAP_THRESHOLD_=16384
LABEL org.opencontainers.image.title="dockfw" \
      org.opencontainers.image.description="Keeps a Docker host's firewall in step with its containers' labels" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/dockfw"
# Liveness only (the process answers /healthz); readiness is /readyz and
# `dockfw status`. Runs as root with only the capabilities compose grants.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --start-interval=2s \
  CMD ["node", "dist/cli/main.js", "health"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["run"]
