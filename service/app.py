"""The app: the LitServer around `TextCNNAPI` and `ExplainAPI`, its routes, limits, error shapes, metrics.

Routes: POST /predict and POST /explain (the two LitAPIs, each with its own inference workers),
GET / (the page, service/static/), GET /health (ours, JSON: 200 once every inference worker has
loaded the model, 503 before), GET /info (LitServe's, with the model card as its `model`),
GET /metrics (Prometheus), /docs and /openapi.json (FastAPI, from the pydantic schemas).
Running it (signals, the worker monitor, the stop) is service/server.py's.
"""

from __future__ import annotations

from pathlib import Path

import litserve as ls
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from litserve.utils import WorkerSetupStatus
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics
from service.api import ExplainAPI, TextCNNAPI, check_bundle
from service.compat import check_dependencies
from service.schemas import HealthResponse, configure_limits
from service.settings import ServeSettings
from textcnn import BundleCard, package_versions, resolve_device

# What a call through a multiprocessing manager raises once the manager process is gone.
MANAGER_GONE = (EOFError, OSError, AttributeError)


class BodyLimitMiddleware:
    """413 for a body over `max_body_bytes`: at once from Content-Length, else while it streams in.

    Not LitServe's max_payload_size: it ignores Content-Length, so reads the refused body (litserve/middlewares.py:44).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"request body is larger than {self.max_body_bytes} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:  # chunked, or a Content-Length that lied
                    raise HTTPException(413, detail)  # FastAPI answers it as JSON
            return message

        await self.app(scope, receive_limited, send)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 shape ({"detail": [{"type", "loc", "msg"}]}) without echoing the input back."""
    errors = []
    for error in exc.errors():
        message = error.get("msg", "invalid")
        reason = (error.get("ctx") or {}).get("error")
        if error.get("type") == "json_invalid" and isinstance(reason, str):
            message = f"{message}: {reason}"
        elif tuple(error.get("loc", ())) == ("body",) and error.get("type") == "model_attributes_type":
            message = "the body must be a JSON object, sent with Content-Type: application/json"
        errors.append({"type": error.get("type"), "loc": list(error.get("loc", ())), "msg": message})
    return JSONResponse({"detail": errors}, status_code=422)


async def metrics_endpoint() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


def _versions() -> dict:
    import fastapi

    return package_versions() | {"litserve": ls.__version__, "fastapi": fastapi.__version__}


def model_card(card: BundleCard, settings: ServeSettings) -> dict:
    """The `model` section of GET /info: what was loaded, how it was trained, how well it did."""
    return {
        "id": card.id,
        "path": str(card.path),
        "created": card.created,
        "labels": list(card.labels),
        "task": card.task,  # "single-label" or "multi-label" (predictions then carry `labels`)
        "decision": decision_card(card),
        "vocab_size": card.vocab_size,
        "model": card.model,
        "pooling": card.pooling,  # the registry's summary of it: the page shows it
        "text": card.text,
        "tokenizer": card.tokenizer,  # the registry's word on it: name, options, summary, what it is for
        "tokens": card.tokens,  # what it made of the training texts: vocabulary, commonest tokens, ...
        "data": card.data,
        "metrics": card.metrics,
        "training": card.training,
        "ensemble": card.ensemble,
        "members": list(card.members),  # each member's kind (cnn, nbsvm, tfidf-lr), weight, pooling, shape
        "vectors": card.vectors,
        "versions": {"trained_with": card.versions, "serving": _versions()},
        "limits": {
            "max_texts": settings.max_texts,
            "max_text_chars": settings.max_text_chars,
            "max_body_bytes": settings.max_body_bytes,
            "max_explain_texts": settings.max_explain_texts,
        },
        "batching": {
            "max_batch_size": settings.max_batch_size,
            "batch_timeout": settings.batch_timeout,
            "loop": settings.loop,
            "max_batch_tokens": settings.max_batch_tokens,
            "workers": settings.workers,
            "explain_workers": settings.explain_workers,
            "threads": settings.threads,
        },
    }


def decision_card(card: BundleCard) -> dict | None:
    """A multi-label model's decision rule, its thresholds by label name; None for single-label."""
    if card.decision is None:
        return None
    return {
        "thresholds": dict(zip(card.labels, card.decision["thresholds"], strict=True)),
        "at_least_one": card.decision["at_least_one"],  # a text reaching no threshold gets its top label
        "chosen": card.decision["chosen"],  # how the thresholds were chosen, in words
    }


def build_server(settings: ServeSettings, server_class: type[ls.LitServer] = ls.LitServer) -> ls.LitServer:
    """Check litserve, uvicorn, the bundle and the device here, in the main process, then assemble
    the LitServer: a `server_class` (service.server.TextCNNServer to run it, as `run` does)."""
    check_dependencies()
    card = check_bundle(settings.model).card  # the workers load their own copy of the model
    accelerator = settings.resolved_accelerator
    resolve_device(accelerator)  # "cuda" without a GPU: one clear error now, not in a worker
    configure_limits(
        settings.max_texts,
        settings.max_text_chars,
        len(card.labels),
        max_explain_texts=settings.max_explain_texts,
        multi_label=card.task == "multi-label",
    )

    api = TextCNNAPI(
        settings.model,
        max_batch_size=settings.max_batch_size,
        batch_timeout=settings.batch_timeout,
        max_batch_tokens=settings.max_batch_tokens,
        threads=settings.threads,
        loop=settings.loop,
    )
    explain = ExplainAPI(settings.model, threads=settings.threads, loop=settings.loop)
    server = server_class(
        [api, explain],
        accelerator=accelerator,
        devices="auto",  # cpu: one device; cuda: every visible GPU, `workers` processes on each
        workers_per_device={"/predict": settings.workers, "/explain": settings.explain_workers},
        timeout=settings.timeout,
        model_metadata=model_card(card, settings),
        # Added innermost first: metrics see the 413s the body limit answers.
        middlewares=[
            (BodyLimitMiddleware, {"max_body_bytes": settings.max_body_bytes}),
            metrics.MetricsMiddleware,
        ],
        fast_queue=settings.fast_queue,
    )
    server.app.add_exception_handler(RequestValidationError, validation_error)
    _document_predict(server)
    _replace_index_and_health(server, card.id)
    server.app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return server


_ERROR_SCHEMA = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_ERRORS = {
    400: "The body is not UTF-8 JSON",
    413: "The body is too large",
    504: "The request waited too long for the model",
}
_DOCS = {
    "/predict": (
        "Label one text or several",
        "Give `text` or `texts`; the answer lists one prediction per text, in input order. A multi-label "
        "model (GET /info's `task`) gives each text `labels`, every label reaching its threshold "
        "(`threshold` sets one for all). Errors are JSON with a `detail`.",
    ),
    "/explain": (
        "Explain the label of one text or several: the words and n-grams that decided it",
        "Give `text` or `texts` (fewer than /predict takes: `max_explain_texts`) and `top`; the answer "
        "lists one explanation per text, in input order: each token's part in the label's logit "
        "(the parts, `output_bias`, `filter_bias` and `residual` sum to `logit`), and the `top` "
        "n-grams for and against the label. A multi-label model adds `labels`: that split for each label "
        "given (`threshold` as /predict's). Errors are JSON with a `detail`.",
    ),
}


def _document_predict(server: ls.LitServer) -> None:
    """Name LitServe's /predict and /explain routes and list the errors they answer, for /docs."""
    for route in server.app.routes:
        path = getattr(route, "path", None)
        if path in _DOCS:
            route.summary, route.description = _DOCS[path]
            route.responses = {
                status: {"description": text, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
                for status, text in _ERRORS.items()
            }


STATIC = Path(__file__).with_name("static")
# The page's scripts and styles come from its own files only: no inline script, no other origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
STATIC_TYPES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


def _replace_index_and_health(server: ls.LitServer, model: str) -> None:
    """GET / becomes the page and GET /health answers JSON; LitServe's own routes (text/plain) go.

    LitServe 0.2.19 registers both in `_register_internal_endpoints` (litserve/server.py); FastAPI
    takes the first route that matches, so theirs are removed rather than shadowed.
    """
    replaced = {("/", "GET"), (server.healthcheck_path, "GET")}
    server.app.router.routes = [
        route
        for route in server.app.router.routes
        if not any(
            (getattr(route, "path", None), method) in replaced for method in getattr(route, "methods", ())
        )
    ]
    page = (STATIC / "index.html").read_bytes()
    files = {name: (STATIC / name).read_bytes() for name in STATIC_TYPES}

    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def static(name: str) -> Response:
        if name not in files:
            raise HTTPException(404, "no such file")  # the name is not echoed back
        return Response(files[name], media_type=STATIC_TYPES[name], headers=PAGE_HEADERS)

    async def health() -> JSONResponse:
        # workers_setup_status: a manager dict, made by LitServer.run, "<api path's last part>_<worker>"
        try:
            status = dict(server.workers_setup_status) if server._shutdown_event is not None else {}
        except MANAGER_GONE:  # stopping
            status = {}
        ready = bool(status) and all(value == WorkerSetupStatus.READY for value in status.values())
        ready = ready and all(lit_api.health() for lit_api in server.litapi_connector)  # as LitServe's
        body = HealthResponse(status="ok" if ready else "not ready", model=model).model_dump()
        return JSONResponse(body, status_code=200 if ready else 503)

    server.app.add_api_route(
        "/",
        index,
        methods=["GET"],
        response_class=HTMLResponse,
        summary="The page: type texts, see each label and the words that decided it",
        responses={200: {"description": "The page (HTML; its script and style are /static/app.js and .css)"}},
    )
    server.app.add_api_route("/static/{name}", static, methods=["GET"], include_in_schema=False)
    server.app.add_api_route(
        server.healthcheck_path,
        health,
        methods=["GET"],
        response_model=HealthResponse,
        summary="Whether every inference worker has loaded the model",
        responses={503: {"description": "Some worker is still loading the model", "model": HealthResponse}},
    )
