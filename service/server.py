"""The LitServer around `TextCNNAPI` and `ExplainAPI`: routes, limits, error shapes, metrics; and running it.

Routes: POST /predict and POST /explain (the two LitAPIs, each with its own inference workers),
GET / (the page, service/static/), GET /health (ours, JSON: 200 once every inference worker has
loaded the model, 503 before), GET /info (LitServe's, with the model card as its `model`),
GET /metrics (Prometheus), /docs and /openapi.json (FastAPI, from the pydantic schemas).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
from pathlib import Path

import litserve as ls
import uvicorn
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from litserve.utils import WorkerSetupStatus
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import metrics
from service.api import ExplainAPI, TextCNNAPI, check_bundle, model_id
from service.compat import check_dependencies
from service.schemas import HealthResponse, configure_limits
from service.settings import ServeSettings
from textcnn.errors import TextCNNError
from textcnn.inference.bundle import CONFIG_FILE, Classifier
from textcnn.runtime import package_versions, resolve_device

logger = logging.getLogger(__name__)


class ServeError(TextCNNError):
    """The server cannot start (port taken, worker setup failed) or stopped on its own (worker died)."""


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


def model_card(classifier: Classifier, settings: ServeSettings) -> dict:
    """The `model` section of GET /info: what was loaded, how it was trained, how well it did."""
    path = Path(settings.model)
    try:
        bundle = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        bundle = {}
    training = classifier.info.get("training") or {}
    return {
        "id": model_id(path),
        "path": str(path.resolve()),
        "created": bundle.get("created"),
        "labels": classifier.label_names,
        "vocab_size": len(classifier.encoder.vocab),
        "model": classifier.model.config.to_json(),
        "text": classifier.encoder.to_json(),
        "data": classifier.info.get("data"),
        "metrics": classifier.info.get("metrics"),
        "training": {k: training.get(k) for k in ("best_epoch", "epochs_run", "stopped_early", "config")},
        "ensemble": classifier.info.get("ensemble") if classifier.is_ensemble else None,
        "vectors": classifier.info.get("vectors"),
        "versions": {"trained_with": bundle.get("versions"), "serving": _versions()},
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


def build_server(settings: ServeSettings) -> TextCNNServer:
    """Check litserve, uvicorn, the bundle and the device here, in the main process, then assemble
    the LitServer."""
    check_dependencies()
    classifier = check_bundle(settings.model)
    accelerator = settings.resolved_accelerator
    resolve_device(accelerator)  # "cuda" without a GPU: one clear error now, not in a worker
    configure_limits(
        settings.max_texts,
        settings.max_text_chars,
        len(classifier.label_names),
        max_explain_texts=settings.max_explain_texts,
    )
    card = model_card(classifier, settings)
    del classifier  # the workers load their own copy

    api = TextCNNAPI(
        settings.model,
        max_batch_size=settings.max_batch_size,
        batch_timeout=settings.batch_timeout,
        max_batch_tokens=settings.max_batch_tokens,
        threads=settings.threads,
        loop=settings.loop,
    )
    explain = ExplainAPI(settings.model, threads=settings.threads, loop=settings.loop)
    server = TextCNNServer(
        [api, explain],
        accelerator=accelerator,
        devices="auto",  # cpu: one device; cuda: every visible GPU, `workers` processes on each
        workers_per_device={"/predict": settings.workers, "/explain": settings.explain_workers},
        timeout=settings.timeout,
        model_metadata=card,
        # Added innermost first: metrics see the 413s the body limit answers.
        middlewares=[
            (BodyLimitMiddleware, {"max_body_bytes": settings.max_body_bytes}),
            metrics.MetricsMiddleware,
        ],
        fast_queue=settings.fast_queue,
    )
    server.app.add_exception_handler(RequestValidationError, validation_error)
    _document_predict(server)
    _replace_index_and_health(server, card["id"])
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
        "Give `text` or `texts`; the answer lists one prediction per text, in input order. "
        "Errors are JSON with a `detail`.",
    ),
    "/explain": (
        "Explain the label of one text or several: the words and n-grams that decided it",
        "Give `text` or `texts` (fewer than /predict takes: `max_explain_texts`) and `top`; the answer "
        "lists one explanation per text, in input order: each token's part in the label's logit "
        "(the parts, `output_bias`, `filter_bias` and `residual` sum to `logit`), and the `top` "
        "n-grams for and against the label. Errors are JSON with a `detail`.",
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


def _replace_index_and_health(server: TextCNNServer, model: str) -> None:
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


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class TextCNNServer(ls.LitServer):
    """LitServer that stops cleanly on SIGTERM (`docker stop`) as on Ctrl-C, and on a dead worker.

    Works around LitServe 0.2.19 (litserve/server.py): its shutdown calls `terminate()` on HTTP
    servers run as threads, which threads lack (line 1210: logged, and the threads then keep the
    process alive); it reacts to KeyboardInterrupt only, not SIGTERM (line 1519); and its worker
    monitor polls the multiprocessing manager that the shutdown closes, logging a traceback when
    it loses that race (line 1666). Here a signal (or a dead worker) lets uvicorn finish the
    requests in flight, stops our own monitor, then releases LitServe's shutdown, which stops the
    workers. The work runs on a helper thread: a signal handler must not touch the manager's
    proxies, whose connection the interrupted main thread is blocked on.
    """

    monitor_interval = 0.5  # seconds between checks that every inference worker is alive

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self.failure: str | None = None  # why the server stopped on its own, if it did

    def run(self, **kwargs) -> None:
        owner = os.getpid()

        def on_signal(signum, frame) -> None:
            if os.getpid() != owner:
                # A forked child (HTTP server or worker): uvicorn has drained its requests already
                # (it handles the signal while serving, then passes it on). Leave at once: raising
                # SystemExit here could land inside asyncio's clean-up, when LitServe's terminate()
                # sends a second SIGTERM, and uvloop then prints "Event loop is closed" tracebacks.
                os._exit(0)
            self.request_shutdown()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            super().run(**kwargs)
        except MANAGER_GONE:
            # The queue manager process is gone: stopped by the same signal that stopped us
            # (systemd signals every process of a service), or dead on its own. LitServe has
            # stopped the workers on its way out; only say something if nobody asked to stop.
            if not self._stopping.is_set():
                self.failure = "the request-queue manager process ended unexpectedly"
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            _stop_http_threads()

    def request_shutdown(self) -> None:
        """Begin a graceful stop; returns at once (safe in a signal handler)."""
        if self._shutdown_event is None:  # LitServe has not started its manager yet
            raise KeyboardInterrupt
        if not self._stopping.is_set():
            self._stopping.set()
            threading.Thread(target=self._shut_down, name="textcnn-shutdown", daemon=True).start()

    def _shut_down(self) -> None:
        _stop_http_threads()
        if self._monitor is not None:
            self._monitor.join()
        # If the manager is gone already, LitServer.run's wait has ended with it: nothing to set.
        with contextlib.suppress(*MANAGER_GONE):
            self._shutdown_event.set()  # LitServer.run goes on to stop the workers and the manager

    def _start_worker_monitoring(self, manager, uvicorn_workers) -> None:
        # Replaces LitServe's monitor (called from LitServer.run): a dead worker stops the server,
        # with a non-zero exit, so that a supervisor (Docker's restart policy) starts it again.
        def monitor() -> None:
            while not self._stopping.wait(self.monitor_interval):
                dead = [p for p in self.inference_workers if not p.is_alive()]
                if dead:
                    self.failure = f"inference worker {dead[0].pid} died (exit code {dead[0].exitcode})"
                    logger.error("%s; shutting down", self.failure)
                    self._monitor = None  # do not join ourselves
                    self.request_shutdown()
                    return

        self._monitor = threading.Thread(target=monitor, name="textcnn-worker-monitor", daemon=True)
        self._monitor.start()


# What a call through a multiprocessing manager raises once the manager process is gone.
MANAGER_GONE = (EOFError, OSError, AttributeError)


def _stop_http_threads(timeout: float = 30.0) -> None:
    """Ask each uvicorn server running in a thread to finish its requests and stop, as SIGTERM would."""
    threads = []
    for thread in threading.enumerate():
        server = getattr(getattr(thread, "_target", None), "__self__", None)  # Thread(target=server.run)
        if isinstance(server, uvicorn.Server) and thread is not threading.current_thread():
            server.should_exit = True
            threads.append(thread)
    for thread in threads:
        thread.join(timeout=timeout)


def run(settings: ServeSettings) -> int:
    """Serve until Ctrl-C or SIGTERM. Raises TextCNNError (one line for the user) if it cannot start."""
    check_port_free(settings.host, settings.port)
    with metrics.multiprocess_dir():
        server = build_server(settings)
        try:
            server.run(
                host=settings.host,
                port=settings.port,
                num_api_servers=settings.num_api_servers,
                api_server_worker_type=settings.api_server_worker_type,
                log_level=settings.log_level,
                generate_client_file=False,
            )
        except RuntimeError as exc:  # LitServer.verify_worker_status: a worker failed in setup
            raise ServeError(f"{exc} (the worker's traceback is above)") from None
    if server.failure:
        raise ServeError(server.failure)
    return 0
