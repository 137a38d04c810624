# The textcnn prediction service (LitServe): POST /predict, /explain, the page at GET /, GET /health,
# /info, /metrics, /docs.
#   docker build -t textcnn .
#   docker run -p 8000:8000 textcnn                                       # serves the shipped models/default
#   docker run -p 8000:8000 -v "$PWD/models:/app/models:ro" -e TEXTCNN_MODEL=models/mr textcnn
# or `docker compose up serve` (docker-compose.yml); see docs/deployment.md.
#
# Two ways to build, one file:
# - with a registry (the default): the official slim Python image, torch's CPU build from PyTorch's
#   wheel index and the rest from PyPI;
# - air-gapped (OFFLINE=1): every wheel from deploy/wheels/ in the build context, nothing from a
#   network, on any Debian-like base image with python3 and venv (BASE_IMAGE).
#   deploy/build-image.sh gathers the wheels on the host, makes a base image when asked, builds, tags.
#
# Layers are few and the big ones last: on a daemon with the vfs storage driver (no overlay
# filesystem, as in CI here) every layer and every step's container is a full copy of the image so far,
# so each instruction after the 1.2 GB environment would cost a copy of it.
ARG BASE_IMAGE=python:3.11-slim

# -- build: a virtual environment in /opt/venv with torch, the project and its serving extra --------
FROM ${BASE_IMAGE} AS build

# torch's CPU build by default, so that pip does not fetch the multi-GB CUDA build. The CUDA variant
# passes another index (docker-compose.gpu.yml does):
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t textcnn:cuda .
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG OFFLINE=0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src

# The project's files in one layer (.dockerignore lets in only what the image needs; the wheels of an
# air-gapped build stay in this stage: the final image copies the environment, not them), then one
# step installs torch (first, the CPU build, so that the project's torch>=2.3 is met) and the project,
# and drops torch's C++ test binaries and headers (150 MB that only building extensions would use).
COPY . ./
RUN python3 -m venv /opt/venv \
    && if [ "$OFFLINE" = 1 ]; then \
         if ! ls deploy/wheels/*.whl >/dev/null 2>&1; then \
           echo "OFFLINE=1 but deploy/wheels/ holds no wheels: run deploy/build-image.sh (or pip download into it)" >&2; \
           exit 1; \
         fi; \
         set -- --no-index --find-links deploy/wheels; \
         pip install "$@" "torch==${TORCH_VERSION}"; \
       else \
         set --; \
         pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
       fi \
    && pip install "$@" ".[serve]" \
    && rm -rf /opt/venv/lib/python3*/site-packages/torch/test /opt/venv/lib/python3*/site-packages/torch/include \
    && textcnn --help >/dev/null

# -- the service: settings first (cheap while the image is small), the environment last ------------
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    TEXTCNN_HOST=0.0.0.0 \
    TEXTCNN_PORT=8000
# Host and port are settings, not arguments, so a deployment can move the port (TEXTCNN_PORT) and the
# health check follows it.
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('TEXTCNN_PORT', '8000'), timeout=4).status != 200)"]
ENTRYPOINT ["textcnn"]
CMD ["serve"]

# Not root. Other bundles come from a mount on /app/models.
RUN useradd --create-home --uid 10001 --user-group textcnn
USER textcnn
WORKDIR /app
# The shipped model, so the image serves with no mount; a mount on /app/models replaces it.
COPY --from=build /src/models/default ./models/default
COPY --from=build /opt/venv /opt/venv
