# syntax=docker/dockerfile:1
# agentstate: multi-stage build, non-root runtime, gRPC health check.
# Production use: set DATABASE_URL (and REDIS_URL / REDLOCK_URLS). Without
# DATABASE_URL the image runs the embedded Postgres in /data (demo only).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json buf.gen.yaml ./
COPY proto ./proto
COPY scripts ./scripts
COPY migrations ./migrations
COPY src ./src
COPY clients/typescript ./clients/typescript
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    AGENTSTATE_HOST=0.0.0.0 \
    AGENTSTATE_PORT=50051 \
    AGENTSTATE_DATA_DIR=/data
WORKDIR /app
# grpc_health_probe-free health check: a tiny Node script calls grpc.health.v1.Health/Check.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json ./package.json
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 50051 9464
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "dist/src/healthcheck.js"]
CMD ["node", "dist/src/main.js"]
