# Gantry worker for NVIDIA GPU nodes: tfjs-node-gpu 4.22 links libtensorflow 2.9.1, which needs
# CUDA 11.2 and cuDNN 8.1 at run time. Build from the repository root:
#   docker build -f infra/docker/worker-gpu.Dockerfile -t gantry-worker-gpu .
# Run with the NVIDIA container toolkit; one trial per visible GPU, each pinned to its own device:
#   docker run --gpus all -e REDIS_URL=redis://redis:6379 -e S3_ENDPOINT=... -e S3_BUCKET=gantry \
#     -e AWS_ACCESS_KEY_ID=... -e AWS_SECRET_ACCESS_KEY=... gantry-worker-gpu
# (Not built in this project's CI, which has no Docker engine and no GPU.)
FROM node:20-bookworm-slim AS node

FROM nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && apt-get update && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/gantry
COPY . .
# The workspace, then the GPU backend into the worker package; its install script fetches libtensorflow
# (pnpm runs it only when allowed, hence onlyBuiltDependencies).
RUN npx -y pnpm@10.34.9 install --frozen-lockfile \
 && cd packages/worker \
 && npx -y pnpm@10.34.9 add @tensorflow/tfjs-node-gpu@4.22.0 \
      --config.only-built-dependencies=@tensorflow/tfjs-node-gpu

ENV GANTRY_BACKEND=tensorflow \
    NODE_ENV=production
CMD ["node", "packages/worker/bin/gantry-worker.mjs"]
