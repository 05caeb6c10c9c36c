# syntax=docker/dockerfile:1
# dockfw: a host-network sidecar that keeps DOCKER-USER (or its own nftables
# table) in step with containers' dockfw.allow labels.

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
# iptables brings both the nft and legacy variants; dockfw picks the one
# Docker uses. No compilers or dev dependencies reach this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
ENV NODE_ENV=production DOCKFW_LISTEN=127.0.0.1:9811
LABEL org.opencontainers.image.title="dockfw" \
      org.opencontainers.image.description="Keeps a Docker host's firewall in step with its containers' labels" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/dockfw"
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["node", "dist/cli/main.js", "health"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["run"]
