"""The `serve` subcommand: `textcnn serve` (through the `textcnn.commands` entry point) and
`python -m service`. Flags override `TEXTCNN_*` variables, which override the defaults.

Importing this module stays cheap (no torch, no LitServe): `textcnn --help` loads it.
"""

from __future__ import annotations

import argparse
import importlib.util

from service.settings import ACCELERATORS, API_SERVER_WORKER_TYPES, LOG_LEVELS, LOOPS, ServeSettings

if importlib.util.find_spec("litserve") is None:  # textcnn's CLI lists `serve` as unavailable
    raise ImportError("litserve is not installed")

DESCRIPTION = (
    "Serve a model bundle over HTTP: POST /predict and /explain, the page at GET /, "
    "GET /health, /info, /metrics, /docs. "
    "Every flag can also be set by an environment variable TEXTCNN_<FLAG> (e.g. TEXTCNN_PORT); "
    "a flag wins over the variable."
)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `serve`; each defaults to None, meaning: the variable, else the default."""
    d = ServeSettings()
    parser.add_argument("--model", help=f"model bundle folder (default: {d.model})")
    parser.add_argument("--host", help=f"address to listen on: 127.0.0.1, 0.0.0.0 or :: (default: {d.host})")
    parser.add_argument("--port", type=int, help=f"port to listen on, 1024-65535 (default: {d.port})")
    parser.add_argument(
        "--accelerator",
        choices=ACCELERATORS,
        help=f"where the model runs; auto: cuda if present (default: {d.accelerator})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help=f"inference processes per device, each with its own model (default: {d.workers})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help=f"torch threads per inference worker on the CPU (default: {d.threads})",
    )
    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--max-batch-size",
        type=int,
        help=f"most requests answered by one batch (default: {d.max_batch_size})",
    )
    batching.add_argument(
        "--batch-timeout",
        type=float,
        help=f"seconds to wait for a batch to fill (default: {d.batch_timeout})",
    )
    batching.add_argument(
        "--loop",
        choices=LOOPS,
        help="how a worker collects a batch: blocking (waits without spinning) or litserve "
        f"(LitServe's polling loop) (default: {d.loop})",
    )
    batching.add_argument(
        "--max-batch-tokens",
        type=int,
        help=f"most token positions (texts x padded length) in one forward pass (default: {d.max_batch_tokens})",
    )
    batching.add_argument(
        "--timeout",
        type=float,
        help=f"seconds a request may wait in the queue before a 504 (default: {d.timeout})",
    )
    limits = parser.add_argument_group("request limits")
    limits.add_argument("--max-texts", type=int, help=f"most texts in one request (default: {d.max_texts})")
    limits.add_argument(
        "--max-text-chars", type=int, help=f"most characters in one text (default: {d.max_text_chars})"
    )
    limits.add_argument(
        "--max-body-bytes", type=int, help=f"largest request body in bytes (default: {d.max_body_bytes})"
    )
    limits.add_argument(
        "--max-explain-texts",
        type=int,
        help=f"most texts in one POST /explain request (default: {d.max_explain_texts})",
    )
    parser.add_argument(
        "--explain-workers",
        type=int,
        help=f"inference processes per device answering /explain (default: {d.explain_workers})",
    )
    plumbing = parser.add_argument_group("LitServe plumbing")
    plumbing.add_argument(
        "--fast-queue",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"ZeroMQ between HTTP and inference processes (default: {'on' if d.fast_queue else 'off'})",
    )
    plumbing.add_argument(
        "--api-server-worker-type",
        choices=API_SERVER_WORKER_TYPES,
        help=f"HTTP servers as threads of this process or as forks (default: {d.api_server_worker_type})",
    )
    plumbing.add_argument(
        "--num-api-servers",
        type=int,
        help=f"HTTP servers; more than 1 needs 'process' (default: {d.num_api_servers})",
    )
    plumbing.add_argument(
        "--log-level", choices=LOG_LEVELS, help=f"server log level (default: {d.log_level})"
    )


def add_serve_command(subparsers) -> None:
    """Entry point of group `textcnn.commands`: add `serve` to the `textcnn` command."""
    parser = subparsers.add_parser("serve", help="serve a model bundle over HTTP", description=DESCRIPTION)
    add_serve_arguments(parser)
    parser.set_defaults(handler=cmd_serve)


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    fields = ServeSettings.__dataclass_fields__
    return ServeSettings.from_env(**{name: getattr(args, name) for name in fields if hasattr(args, name)})


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until stopped; a TextCNNError (bad setting, missing bundle, port in use) propagates."""
    settings = settings_from_args(args)
    from service.compat import check_dependencies

    check_dependencies()  # before service.server is imported: service.loop imports private names
    from service.server import run

    return run(settings)
