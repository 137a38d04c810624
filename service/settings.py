"""How the service is configured: defaults, then `TEXTCNN_*` environment variables, then CLI flags.

Everything is checked on construction, so a bad value stops `textcnn serve` with one line naming
the setting before any process starts. Torch and LitServe are not imported here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from textcnn.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "cuda")
API_SERVER_WORKER_TYPES = ("thread", "process")
LOOPS = ("blocking", "litserve")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# LitServer.run accepts only these (litserve/server.py, `host not in [...]`).
HOSTS = ("127.0.0.1", "0.0.0.0", "::")
ENV_PREFIX = "TEXTCNN_"


@dataclass(frozen=True)
class ServeSettings:
    model: Path = Path("models/default")  # bundle folder, relative to the working directory
    host: str = "127.0.0.1"  # loopback by default; the container passes --host 0.0.0.0
    port: int = 8000
    accelerator: str = "auto"  # auto: cuda when torch sees a GPU, else cpu
    workers: int = 1  # inference processes per device, each holding its own copy of the model
    # Torch threads per inference worker on the CPU. One: a served batch is small, and on a few
    # cores a second OpenMP thread spins against the HTTP server for the same core.
    threads: int = 1
    # Dynamic batching (LitServe): up to max_batch_size requests, waiting at most batch_timeout
    # seconds for the batch to fill. 0: take what has queued and go; under load the queue fills
    # while the model runs, so batches still form, and a lone request does not wait
    # (benchmarks/RESULTS.md: 0 beat 0.002 and 0.005 s at every concurrency on 2 cores).
    max_batch_size: int = 32
    batch_timeout: float = 0.0
    # How a worker collects a batch: "blocking" waits for the first request without using the CPU
    # (service/loop.py); "litserve" is LitServe's own loop, which polls the request queue and keeps
    # a core busy even when idle.
    loop: str = "blocking"
    # One forward pass holds at most this many token positions (rows x padded width); a batch is
    # cut into length-sorted chunks under it, so one long text cannot make every row long.
    max_batch_tokens: int = 32768
    timeout: float = 30.0  # seconds a request may wait in the queue before a 504
    # Request limits: a request over any of them is answered 413/422 and never reaches the model.
    max_texts: int = 64
    max_text_chars: int = 5000
    max_body_bytes: int = 1 << 20
    # POST /explain (and the page at /): a second LitAPI with its own inference worker(s) and its own,
    # smaller limit on texts per request; an explanation costs a forward pass and a walk over every
    # filter's winning window, per text, and its answer is some kB per text. Texts are held to
    # max_text_chars as on /predict.
    max_explain_texts: int = 8
    explain_workers: int = 1
    # LitServe plumbing: ZeroMQ between HTTP and inference processes, two HTTP servers as forked
    # processes: the HTTP side, not the model, costs most of a single-text request, and with one
    # server each request cost ~8% more CPU on 2 cores (benchmarks/RESULTS.md). LitServe 0.2.19
    # tags every request with one app-wide response-queue id, so several HTTP servers need
    # api_server_worker_type="process".
    fast_queue: bool = True
    api_server_worker_type: str = "process"
    num_api_servers: int = 2
    log_level: str = "info"

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))
        for name in (
            "port",
            "workers",
            "threads",
            "max_batch_size",
            "max_batch_tokens",
            "max_texts",
            "max_text_chars",
            "max_body_bytes",
            "max_explain_texts",
            "explain_workers",
            "num_api_servers",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("batch_timeout", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.batch_timeout < 0:
            raise ConfigError(f"batch_timeout must be >= 0 seconds, got {self.batch_timeout}")
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.batch_timeout >= self.timeout:
            raise ConfigError(f"batch_timeout ({self.batch_timeout}) must be below timeout ({self.timeout})")
        if not 1024 <= self.port <= 65535:  # LitServer.run refuses privileged ports
            raise ConfigError(f"port must be from 1024 to 65535, got {self.port}")
        if self.host not in HOSTS:
            raise ConfigError(
                f"host must be one of {', '.join(HOSTS)} (LitServe binds no other), got {self.host!r}"
            )
        _check_choice("accelerator", self.accelerator, ACCELERATORS)
        _check_choice("api_server_worker_type", self.api_server_worker_type, API_SERVER_WORKER_TYPES)
        _check_choice("log_level", self.log_level, LOG_LEVELS)
        _check_choice("loop", self.loop, LOOPS)
        for name in ("fast_queue",):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.api_server_worker_type == "thread" and self.num_api_servers > 1:
            raise ConfigError(
                "num_api_servers > 1 needs api_server_worker_type 'process' "
                "(LitServe's thread servers share one response queue id)"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> ServeSettings:
        """Defaults, replaced by `TEXTCNN_<FIELD>` variables, replaced by `overrides` (CLI flags).

        Overrides that are None count as not given, so argparse defaults of None fall through.
        """
        environ = os.environ if environ is None else environ
        values: dict = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None and raw.strip() != "":
                values[field.name] = _parse(field.name, raw.strip(), field.default)
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def resolved_accelerator(self) -> str:
        """`auto` made concrete: "cuda" when torch sees a GPU, else "cpu" (imports torch)."""
        if self.accelerator != "auto":
            return self.accelerator
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def to_json(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _jsonable(value):
    return str(value) if isinstance(value, Path) else value


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _parse(name: str, raw: str, default):
    """One environment value, typed after the field's default; the error names the variable."""
    variable = ENV_PREFIX + name.upper()
    if isinstance(default, bool):
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"{variable}: expected true or false, got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{variable}: expected an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{variable}: expected a number, got {raw!r}") from None
    return raw
