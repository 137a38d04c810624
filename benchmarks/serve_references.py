"""The two ceilings `serve_load.py` measures the service against, each a server of its own.

    python benchmarks/serve_references.py constant-litapi --port 8101 [serve flags]
    python benchmarks/serve_references.py fastapi --port 8102

`constant-litapi`: a LitAPI whose hooks do nothing and answer a constant, served by the same
server class with the same LitServe settings as `textcnn serve` (queue, HTTP worker type,
batching): what LitServe itself costs per request on this machine. `fastapi`: one bare
FastAPI + uvicorn endpoint that parses the same request body (the service's pydantic model) and
answers a constant: what HTTP in Python costs. Both answer GET /health.
"""

from __future__ import annotations

import argparse
import sys

import litserve as ls

from service.schemas import PredictRequest  # module level: FastAPI resolves the annotation here

CONSTANT_ANSWER = {"model": "constant", "predictions": [{"label": "positive", "score": 1.0}]}


class ConstantAPI(ls.LitAPI):
    """Every hook a no-op; module level, so LitServe's spawned worker can import it."""

    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request):
        return None

    def predict(self, inputs):
        return [None] * len(inputs)

    def encode_response(self, output):
        return CONSTANT_ANSWER


def serve_constant_litapi(argv: list[str]) -> int:
    from service.cli import add_serve_arguments, settings_from_args
    from service.loop import make_loop
    from service.server import TextCNNServer

    parser = argparse.ArgumentParser(prog="serve_references.py constant-litapi")
    add_serve_arguments(parser)
    settings = settings_from_args(parser.parse_args(argv))
    api = ConstantAPI(
        max_batch_size=settings.max_batch_size,
        batch_timeout=settings.batch_timeout,
        api_path="/predict",
        loop=make_loop(settings.loop),  # as TextCNNAPI: a batched loop even for batches of one
    )
    server = TextCNNServer(
        api, accelerator="cpu", workers_per_device=settings.workers, fast_queue=settings.fast_queue
    )
    server.run(
        host=settings.host,
        port=settings.port,
        num_api_servers=settings.num_api_servers,
        api_server_worker_type=settings.api_server_worker_type,
        log_level="warning",
        generate_client_file=False,
    )
    return 0


def serve_fastapi(argv: list[str]) -> int:
    import uvicorn
    from fastapi import FastAPI

    parser = argparse.ArgumentParser(prog="serve_references.py fastapi")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: PredictRequest) -> dict:
        return CONSTANT_ANSWER

    @app.get("/health")
    async def health() -> str:
        return "ok"

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("constant-litapi", "fastapi"):
        print("usage: serve_references.py {constant-litapi,fastapi} [flags]", file=sys.stderr)
        return 2
    kind, argv = sys.argv[1], sys.argv[2:]
    return serve_constant_litapi(argv) if kind == "constant-litapi" else serve_fastapi(argv)


if __name__ == "__main__":
    sys.exit(main())
