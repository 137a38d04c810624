"""Prometheus metrics across LitServe's processes.

The HTTP servers (threads or forks of the main process) count requests; the inference
processes (spawned) see the batches. prometheus_client's multiprocess mode joins them: each
process writes its values to files in PROMETHEUS_MULTIPROC_DIR and /metrics sums the files
(https://prometheus.github.io/client_python/multiprocess/). `multiprocess_dir()` chooses the
folder before any worker starts; spawned workers inherit the variable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# Label values for paths are limited to the service's own routes: a scanner trying 10,000 URLs
# must not make 10,000 time series.
KNOWN_PATHS = frozenset(
    {"/predict", "/explain", "/health", "/info", "/metrics", "/docs", "/redoc", "/openapi.json", "/"}
    | {"/static/app.js", "/static/style.css"}
)


@contextmanager
def multiprocess_dir() -> Iterator[Path]:
    """PROMETHEUS_MULTIPROC_DIR for one server run: the one given (emptied), else a temporary one."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # values of an earlier run would be summed into this one's
            stale.unlink()
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="textcnn-metrics-"))
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(ENV, None)
        shutil.rmtree(path, ignore_errors=True)


_families: dict[str, tuple[str | None, SimpleNamespace]] = {}
_values_dir: list[str | None] = [None]  # the folder prometheus_client's value class writes to


def _family(name: str, make) -> SimpleNamespace:
    """Metric objects made for the current PROMETHEUS_MULTIPROC_DIR (made again if it changed)."""
    directory = os.environ.get(ENV)
    cached = _families.get(name)
    if cached is not None and cached[0] == directory:
        return cached[1]
    from prometheus_client import values

    if directory and directory != _values_dir[0]:
        # prometheus_client picks file-backed values at import, from the variable then; it may
        # have been imported before the folder was chosen (in tests) or for another one.
        if _values_dir[0] is not None or not values.ValueClass._multiprocess:
            values.ValueClass = values.get_value_class()
        _values_dir[0] = directory
    family = make()
    _families[name] = (directory, family)
    return family


def _http_family() -> SimpleNamespace:
    from prometheus_client import Counter, Histogram

    return SimpleNamespace(
        requests=Counter(
            "textcnn_http_requests",
            "HTTP requests answered, by method, path and status code",
            ["method", "path", "status"],
            registry=None,
        ),
        latency=Histogram(
            "textcnn_http_request_duration_seconds",
            "Time from request to the end of the response",
            ["method", "path"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        ),
    )


def _model_family() -> SimpleNamespace:
    from prometheus_client import Counter, Histogram

    return SimpleNamespace(
        batch_requests=Histogram(
            "textcnn_batch_requests", "Requests per model batch", buckets=COUNT_BUCKETS, registry=None
        ),
        batch_texts=Histogram(
            "textcnn_batch_texts",
            "Texts per model batch (a request may carry several)",
            buckets=COUNT_BUCKETS,
            registry=None,
        ),
        texts=Counter("textcnn_texts", "Texts labelled", registry=None),
        forward=Histogram(
            "textcnn_forward_seconds",
            "Time of one batch's forward passes",
            buckets=LATENCY_BUCKETS,
            registry=None,
        ),
    )


def _explain_family() -> SimpleNamespace:
    from prometheus_client import Counter, Histogram

    return SimpleNamespace(
        texts=Counter("textcnn_explained_texts", "Texts explained (POST /explain)", registry=None),
        seconds=Histogram(
            "textcnn_explain_seconds",
            "Time to explain one request's texts",
            buckets=LATENCY_BUCKETS,
            registry=None,
        ),
    )


# The share of a text's tokens the model knows: a deployment whose traffic drifts away from its
# training data (another language, new slang) shows it here before it shows in any accuracy.
COVERAGE_BUCKETS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)


def _coverage_family() -> SimpleNamespace:
    from prometheus_client import Counter, Histogram

    return SimpleNamespace(
        coverage=Histogram(
            "textcnn_token_coverage",
            "Share of each text's tokens the model's vocabulary knows (0: unread), by route",
            ["route"],
            buckets=COVERAGE_BUCKETS,
            registry=None,
        ),
        unread=Counter(
            "textcnn_unread_texts",
            "Texts with no token the model knows, answered as unread (no label), by route",
            ["route"],
            registry=None,
        ),
    )


def observe_coverage(coverages, route: str = "predict") -> None:
    family = _family("coverage", _coverage_family)
    histogram, unread = family.coverage.labels(route), family.unread.labels(route)
    for share in coverages:
        histogram.observe(share)
        if share == 0:
            unread.inc()


def observe_explain(texts: int, seconds: float) -> None:
    family = _family("explain", _explain_family)
    family.texts.inc(texts)
    family.seconds.observe(seconds)


def observe_batch(requests: int, texts: int) -> None:
    family = _family("model", _model_family)
    family.batch_requests.observe(requests)
    family.batch_texts.observe(texts)
    family.texts.inc(texts)


def observe_forward(seconds: float) -> None:
    _family("model", _model_family).forward.observe(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text of every process's metrics, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    if os.environ.get(ENV):
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every HTTP answer by status (4xx and 5xx included) and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
            family = _family("http", _http_family)
            family.requests.labels(scope["method"], path, str(status)).inc()
            family.latency.labels(scope["method"], path).observe(time.perf_counter() - start)
