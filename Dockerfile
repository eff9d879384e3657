# etcd-autobackup image: the CLI (webhook, worker, snapshot, list, verify, restore) and etcdctl for
# verify and restore. Build: docker build -t REGISTRY/etcd-autobackup:0.1.0 .   (docs/install.md)
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No dependency needs its install scripts (package.json allowScripts); skipping them also keeps
# the dev-only binaries (playwright, esbuild's postinstall) from reaching for the network.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY core ./core
COPY certs ./certs
COPY webhook ./webhook
COPY worker ./worker
COPY cli ./cli
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# etcdctl (Debian's etcd-client) for `verify` and `restore`; etcd (etcd-server) for restore drills,
# which boot it on loopback (docs/drills.md); zstd for the zstd codec and isal (igzip) for gzip levels
# 1-3 (worker/codecs.ts runs both as child processes); ca-certificates for S3/OCI/NCP over TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends etcd-client etcd-server zstd isal ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 etcd-autobackup \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/etcd-autobackup --create-home --shell /usr/sbin/nologin etcd-autobackup
WORKDIR /app
ENV NODE_ENV=production
# No NODE_OPTIONS: the process keeps V8's young generation small itself (core/young-generation.ts).
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# `kubectl exec ... -- etcd-autobackup list` works like the entrypoint.
RUN chmod 0755 /app/dist/cli/main.js && ln -s /app/dist/cli/main.js /usr/local/bin/etcd-autobackup
USER 10001:10001
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["--help"]
