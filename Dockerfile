# syntax=docker/dockerfile:1
# agentstate: multi-stage build, non-root runtime, gRPC health check.
#
# Production: set DATABASE_URL (and REDIS_URL / REDLOCK_URLS); see compose.yaml.
# Without DATABASE_URL the image runs the embedded Postgres in /data (demo only).
#
# Secure by default: the image listens on 0.0.0.0 with authentication on
# (AGENTSTATE_AUTH=required), and a server beyond loopback refuses to start in
# plaintext. So it starts only with TLS (and then every call needs a token, a
# JWT or a mapped client certificate), or with AGENTSTATE_INSECURE=1, the
# explicit opt-out for plaintext (behind a TLS-terminating proxy on a private
# network; auth stays on). Turning auth off takes an explicit
# -e AGENTSTATE_AUTH=off. Mount a certificate and key and set
# AGENTSTATE_TLS_CERT_FILE and AGENTSTATE_TLS_KEY_FILE (plus
# AGENTSTATE_TLS_CLIENT_CA_FILE for mTLS, and AGENTSTATE_TLS_CA_FILE, the CA
# the HEALTHCHECK trusts, when the certificate is not self-signed); they are
# reloaded when they change. The admin token: AGENTSTATE_BOOTSTRAP_TOKEN, or
# the one the first start prints to stderr (docker logs), once.
#   docker run -v $PWD/certs:/certs:ro -e AGENTSTATE_TLS_CERT_FILE=/certs/server.pem \
#     -e AGENTSTATE_TLS_KEY_FILE=/certs/server.key -e AGENTSTATE_TLS_CA_FILE=/certs/ca.pem \
#     -e AGENTSTATE_BOOTSTRAP_TOKEN="$(openssl rand -hex 32)" agentstate
#
#   docker build -t agentstate .
#   podman build --format docker -t agentstate .   # podman's default OCI format drops HEALTHCHECK
#
# A registry whose TLS is intercepted needs its CA bundle for `npm ci`; pass it
# as a build secret (mounted for that one RUN, never stored in a layer):
#   podman build --format docker --secret id=npmca,src=/etc/ssl/certs/ca-certificates.crt -t agentstate .
#
# scripts/test-image.sh builds and runs this image end to end (the refusals,
# CompareAndSet and Get through grpcurl with a token, health, SIGTERM) against
# a locally made base image.
#
# Base: Node 24 LTS on Debian 12, pinned by full version tag. Not by digest:
# no registry is reachable where this image is built and tested, so no digest
# could be resolved and checked; pin one (node:24.22.3-bookworm-slim@sha256:...)
# where a registry is reachable. Both stages must use the same base.
ARG NODE_IMAGE=node:24.22.3-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# NODE_EXTRA_CA_CERTS only when the secret was given (elsewhere npm uses its own CAs).
RUN --mount=type=secret,id=npmca,required=false \
    if [ -s /run/secrets/npmca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npmca; fi; \
    npm ci --no-audit --no-fund
COPY tsconfig.json buf.gen.yaml ./
COPY proto ./proto
COPY scripts ./scripts
COPY migrations ./migrations
COPY src ./src
# tsconfig.json compiles the TypeScript client too (it shares the generated code).
COPY clients/typescript ./clients/typescript
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
# AGENTSTATE_AUTH=required: secure by default (see the header).
ENV NODE_ENV=production \
    AGENTSTATE_HOST=0.0.0.0 \
    AGENTSTATE_AUTH=required \
    AGENTSTATE_PORT=50051 \
    AGENTSTATE_METRICS_PORT=9464 \
    AGENTSTATE_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
# dist whole: compiled JS plus everything the server loads at run time (SQL,
# Lua, migrations, protos, descriptor sets).
COPY --from=build /app/dist ./dist
# The embedded Postgres (no DATABASE_URL) keeps its data here, as user node.
RUN mkdir -p /data && chown node:node /data
USER node
# /metrics listens on loopback in the container unless AGENTSTATE_METRICS_HOST=0.0.0.0
# (it is plaintext, and asks for a token since auth is on, /healthz excepted:
# publish it only to the scraper's network).
EXPOSE 50051 9464
VOLUME ["/data"]
# The script calls grpc.health.v1.Health/Check on AGENTSTATE_HOST:AGENTSTATE_PORT
# (a wildcard address through loopback), over TLS when the server serves TLS;
# exit 0 only on SERVING. SERVING: listening, Postgres answered a round trip
# within AGENTSTATE_HEALTH_UNHEALTHY_AFTER_MS. NOT_SERVING: shutting down, or
# Postgres stopped, unreachable or frozen for that long (the container turns
# unhealthy; it turns healthy again once Postgres answers). No answer: the
# process is not listening. README "Operations" has the per-service states.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "dist/src/healthcheck.js"]
# node is PID 1 and handles SIGTERM itself (graceful drain, embedded Postgres stopped).
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
