# helixserve serving image: slim, no torch, non-root, healthcheck on /readyz.
# Build:  docker build -t helixserve .
# Run:    docker run -p 8000:8000 -p 8001:8001 -e HELIXSERVE_STORE=s3://bucket/models helixserve
# Without HELIXSERVE_STORE the image serves the pretrained models shipped in the package.
# The worker image (the train extra, CPU torch) is the stage "worker":
#         docker build --target worker -t helixserve-worker .
# Needs BuildKit (the default since Docker 23; DOCKER_BUILDKIT=1 before). pip may get a
# configuration file and a CA bundle as build secrets, which no layer keeps (a package mirror, its
# password; a proxy that re-signs TLS: cert = /run/secrets/ca in that file):
#   docker build --secret id=pip.conf,src=pip.conf --secret id=ca,src=ca.crt -t helixserve .
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HELIXSERVE_HOST=0.0.0.0 \
    HELIXSERVE_PORT=8000 \
    HELIXSERVE_GRPC_PORT=8001 \
    HELIXSERVE_CACHE_DIR=/home/helixserve/cache

# The workspace folder exists so that a volume mounted there belongs to the user.
RUN useradd --create-home --uid 10001 helixserve \
 && install -d -o helixserve -g helixserve /home/helixserve/workspace
WORKDIR /opt/helixserve
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
COPY src ./src

# The worker: `helixserve worker` trains the workspace's queued runs. torch==2.13.0 is pinned; its
# CPU build comes from PyTorch's own index (PyPI's build of it pulls several GB of CUDA).
FROM base AS worker
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN --mount=type=secret,id=pip.conf --mount=type=secret,id=ca \
    PIP_CONFIG_FILE=/run/secrets/pip.conf \
    python -m pip install -c requirements/constraints.txt ".[train,s3,postgres]" \
 && python -c "import torch, helixserve.worker.local, helixserve.cli.app" \
 && rm -rf /root/.cache
USER helixserve
HEALTHCHECK NONE
CMD ["helixserve", "worker"]

# The serving image (the last stage: what a plain `docker build` makes).
FROM base AS serving
RUN --mount=type=secret,id=pip.conf --mount=type=secret,id=ca \
    PIP_CONFIG_FILE=/run/secrets/pip.conf \
    python -m pip install -c requirements/constraints.txt ".[s3,postgres,explain]" \
 && python -c "import helixserve.serving.app, helixserve.cli.app, pysam, pyjaspar" \
 && rm -rf /root/.cache

USER helixserve
EXPOSE 8000 8001
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('HELIXSERVE_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"]
CMD ["sh", "-c", "exec helixserve serve --store \"${HELIXSERVE_STORE:-$(python -c 'from helixserve.store.configured import PRETRAINED_STORE; print(PRETRAINED_STORE)')}\""]
