"""The process: `run` serves until Ctrl-C, SIGTERM or a dead worker, and stops cleanly.

The app it runs (routes, limits, the model card) is service/app.py's `build_server`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading

import litserve as ls
import uvicorn

from service import metrics
from service.app import MANAGER_GONE, build_server
from service.settings import ServeSettings
from textcnn.errors import TextCNNError

logger = logging.getLogger(__name__)


class ServeError(TextCNNError):
    """The server cannot start (port taken, worker setup failed) or stopped on its own (worker died)."""


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
        server = build_server(settings, TextCNNServer)
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
