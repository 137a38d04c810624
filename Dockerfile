# The textcnn prediction service (LitServe): POST /predict, /explain, the page at GET /, GET /health,
# /info, /metrics, /docs.
#   docker build -t textcnn .
#   docker run -p 8000:8000 textcnn                                       # serves the shipped models/default
#   docker run -p 8000:8000 -v "$PWD/models:/app/models:ro" -e TEXTCNN_MODEL=models/mr textcnn
# or `docker compose up serve` (docker-compose.yml); see docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, the CPU build from PyTorch's CPU wheel index, so that installing the project finds
# torch>=2.3 met and pip does not fetch the multi-GB CUDA build. The CUDA image variant passes
# another index as a build argument (docker-compose.gpu.yml does):
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t textcnn:cuda .
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY textcnn ./textcnn
COPY service ./service
RUN pip install ".[serve]" \
    && useradd --create-home --uid 10001 --user-group textcnn
# The shipped model, so the image serves with no mount; a mount on /app/models replaces it.
COPY models/default ./models/default

# Not root. Other bundles come from a mount on /app/models.
USER textcnn
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
ENTRYPOINT ["textcnn"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
