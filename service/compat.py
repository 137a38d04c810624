"""A start-up check that the installed LitServe and uvicorn are those the service was written against.

service/loop.py, service/server.py and service/app.py reach into private code: LitServe 0.2.19's
stop sentinel and batch collecting, its worker monitor and shutdown event, and the uvicorn `Server`
behind each HTTP thread (found through `threading.Thread._target`). An upgrade can rename or
reshape any of these without a word, and the server would then hang on stop or outlive a dead
worker. So `textcnn serve` checks the versions and those names first, in the main process, and
stops with one line instead.

This module imports litserve and uvicorn but nothing of the service, so an upgrade that breaks
`service.loop`'s imports is reported here too. `TEXTCNN_SERVE_ANY_VERSION=1` skips the version
comparison (to try a newer release); the private names are checked all the same.
"""

from __future__ import annotations

import inspect
import os
import platform
import re
import threading

from textcnn.errors import TextCNNError

LITSERVE_VERSION = "0.2.19"
# From uvicorn 0.29 (LitServe 0.2.19's own floor), a served signal is re-raised once the requests
# in flight are done, which the signal handler in service/server.py relies on; 0.54 is the newest tested.
UVICORN_VERSIONS = ((0, 29), (0, 55))  # lowest included, highest excluded
UVICORN_SPEC = ">={}.{},<{}.{}".format(*UVICORN_VERSIONS[0], *UVICORN_VERSIONS[1])
LITSERVE_FIX = f"pip install --force-reinstall 'litserve=={LITSERVE_VERSION}'"
UVICORN_FIX = f"pip install 'uvicorn{UVICORN_SPEC}'"
SKIP_VERSIONS_VARIABLE = "TEXTCNN_SERVE_ANY_VERSION"


class DependencyError(TextCNNError):
    """The installed litserve or uvicorn is not the one the service was written against."""


def check_dependencies(environ=None) -> None:
    """Raise DependencyError (one line: what is installed, what is needed, the pip command) unless
    litserve and uvicorn are the tested versions and have the private names the service uses."""
    import litserve
    import uvicorn

    environ = os.environ if environ is None else environ
    if environ.get(SKIP_VERSIONS_VARIABLE, "").strip().lower() not in ("1", "true", "yes", "on"):
        if litserve.__version__ != LITSERVE_VERSION:
            raise DependencyError(
                f"litserve {litserve.__version__} is installed; this service was written against litserve "
                f"{LITSERVE_VERSION} (service/server.py and service/loop.py reach into its private shutdown, "
                f"worker-monitor and batching code): pip install 'litserve=={LITSERVE_VERSION}'"
            )
        low, high = UVICORN_VERSIONS
        if not low <= _major_minor(uvicorn.__version__) < high:
            raise DependencyError(
                f"uvicorn {uvicorn.__version__} is installed; this service was tested with uvicorn "
                f"{UVICORN_SPEC} (service/server.py stops LitServe's HTTP threads through their "
                f"uvicorn.Server): {UVICORN_FIX}"
            )
    for where, expected, present, fix in _private_names(litserve, uvicorn):
        if not present():
            raise DependencyError(f"{where} has no {expected}, which the service relies on: {fix}")


def _major_minor(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (-1, -1)


def _private_names(litserve, uvicorn) -> list[tuple]:
    """(installed package, the name the service expects, a check of it, the fix): nothing is started."""
    try:
        import litserve.loops.base as loops
        import litserve.server as servers
        import litserve.utils as utils
        from litserve.loops import BatchedLoop
    except ImportError as exc:
        raise DependencyError(
            f"litserve {litserve.__version__}: {exc}, which the service imports: {LITSERVE_FIX}"
        ) from None
    server = litserve.LitServer
    lit, uv = f"litserve {litserve.__version__}", f"uvicorn {uvicorn.__version__}"

    def parameters(function) -> list[str]:
        return list(inspect.signature(function).parameters) if callable(function) else []

    def uses(function, *names: str) -> bool:  # attribute names that the function's own code reads or sets
        return set(names) <= set(getattr(getattr(function, "__code__", None), "co_names", ()))

    def thread_keeps_its_target() -> bool:
        def target() -> None:
            pass

        return getattr(threading.Thread(target=target), "_target", None) is target

    stop_error = getattr(loops, "_StopLoopError", None)
    return [
        # service/loop.py
        (
            lit,
            "litserve.loops.base._SENTINEL_VALUE == (None, None, None, None)",
            lambda: getattr(loops, "_SENTINEL_VALUE", None) == (None,) * 4,
            LITSERVE_FIX,
        ),
        (
            lit,
            "litserve.loops.base._StopLoopError",
            lambda: isinstance(stop_error, type) and issubclass(stop_error, Exception),
            LITSERVE_FIX,
        ),
        (
            lit,
            "BatchedLoop.get_batch_requests(self, lit_api, request_queue, transport)",
            lambda: (
                parameters(getattr(BatchedLoop, "get_batch_requests", None))
                == ["self", "lit_api", "request_queue", "transport"]
            ),
            LITSERVE_FIX,
        ),
        (
            lit,
            "BatchedLoop.put_response(self, transport, response_queue_id, uid, response_data, status, "
            "response_type)",
            lambda: (
                parameters(getattr(BatchedLoop, "put_response", None))
                == [
                    "self",
                    "transport",
                    "response_queue_id",
                    "uid",
                    "response_data",
                    "status",
                    "response_type",
                ]
            ),
            LITSERVE_FIX,
        ),
        (
            lit,
            "litserve.utils.LitAPIStatus.START, LoopResponseType.REGULAR and .STREAMING",
            lambda: (
                hasattr(getattr(utils, "LitAPIStatus", None), "START")
                and all(
                    hasattr(getattr(utils, "LoopResponseType", None), n) for n in ("REGULAR", "STREAMING")
                )
            ),
            LITSERVE_FIX,
        ),
        # service/server.py
        (
            lit,
            "LitServer._start_worker_monitoring(self, manager, uvicorn_workers) called by LitServer.run",
            lambda: (
                parameters(getattr(server, "_start_worker_monitoring", None))
                == ["self", "manager", "uvicorn_workers"]
                and uses(server.run, "_start_worker_monitoring")
            ),
            LITSERVE_FIX,
        ),
        (
            lit,
            "LitServer._shutdown_event (None until LitServer.run waits on it) and LitServer.inference_workers",
            lambda: (
                uses(server.__init__, "_shutdown_event")
                and uses(server.run, "_shutdown_event", "inference_workers")
            ),
            LITSERVE_FIX,
        ),
        (
            lit,
            "litserve.server._Server (a uvicorn.Server) run as a thread's target by LitServer._start_server",
            lambda: (
                isinstance(getattr(servers, "_Server", None), type)
                and issubclass(servers._Server, uvicorn.Server)
                and uses(getattr(server, "_start_server", None), "Thread", "run")
            ),
            LITSERVE_FIX,
        ),
        # service/app.py
        (
            lit,
            "LitServer(workers_per_device={api_path: n}) and workers_setup_status of WorkerSetupStatus.READY",
            lambda: (
                callable(getattr(server, "_resolve_workers_per_device_config", None))
                and uses(server._init_manager, "workers_setup_status")
                and hasattr(getattr(utils, "WorkerSetupStatus", None), "READY")
            ),
            LITSERVE_FIX,
        ),
        (
            lit,
            "LitServer._register_internal_endpoints (GET / and the health route, replaced by the service's)",
            lambda: uses(getattr(server, "_register_internal_endpoints", None), "healthcheck_path"),
            LITSERVE_FIX,
        ),
        (uv, "uvicorn.Server.should_exit", lambda: uses(uvicorn.Server.__init__, "should_exit"), UVICORN_FIX),
        (
            uv,
            "uvicorn.Server.capture_signals (re-raises a signal once the requests are done)",
            lambda: callable(getattr(uvicorn.Server, "capture_signals", None)),
            UVICORN_FIX,
        ),
        (
            f"Python {platform.python_implementation()} {platform.python_version()}",
            "threading.Thread._target",
            thread_keeps_its_target,
            "run the service on CPython",
        ),
    ]
