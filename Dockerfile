# helixserve serving image: slim, no torch, non-root, healthcheck on /readyz.
# Build:  docker build -t helixserve .
# Run:    docker run -p 8000:8000 -p 8001:8001 -e HELIXSERVE_STORE=s3://bucket/models helixserve
# Without HELIXSERVE_STORE the image serves the pretrained models shipped in the package.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HELIXSERVE_HOST=0.0.0.0 \
    HELIXSERVE_PORT=8000 \
    HELIXSERVE_GRPC_PORT=8001 \
    HELIXSERVE_CACHE_DIR=/home/helixserve/cache

RUN useradd --create-home --uid 10001 helixserve
WORKDIR /opt/helixserve
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
COPY src ./src
RUN python -m pip install -c requirements/constraints.txt ".[s3]" \
 && python -c "import helixserve.serving.app, helixserve.cli.app" \
 && rm -rf /root/.cache

USER helixserve
EXPOSE 8000 8001
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('HELIXSERVE_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"]
CMD ["sh", "-c", "exec helixserve serve --store \"${HELIXSERVE_STORE:-$(python -c 'from helixserve.store.configured import PRETRAINED_STORE; print(PRETRAINED_STORE)')}\""]
