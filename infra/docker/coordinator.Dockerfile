# Gantry coordinator, and the CPU workers (wasm backend) of infra/k8s: Node 20, the workspace, and
# Debian's Fashion-MNIST (the coordinator pushes it as a data set on first use). Build from the root:
#   docker build -f infra/docker/coordinator.Dockerfile -t gantry:0.1.0 .
# infra/k8s runs it as `node packages/coordinator/bin/gantry.mjs coordinator` (API and scheduler) and
# `node packages/worker/bin/gantry-worker.mjs` (CPU workers); GPU workers use worker-gpu.Dockerfile.
# (Not built in this project's CI, which has no Docker engine.)
FROM node:20-bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends dataset-fashion-mnist ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/gantry
COPY . .
# Runtime dependencies only: the sources run through tsx (a dependency), types are not needed.
RUN rm -rf node_modules packages/*/node_modules test/node_modules .gantry \
 && npx -y pnpm@10.34.9 install --frozen-lockfile --prod \
 && chown -R node:node /opt/gantry

ENV NODE_ENV=production \
    GANTRY_FASHION_MNIST_DIR=/usr/share/datasets/fashion-mnist
USER node
CMD ["node", "packages/coordinator/bin/gantry.mjs", "coordinator"]
