"""The `textcnn` command: a thin shell over the library.

Each subcommand parses flags (`parser.py`; the shared ones and their configs in `flags.py`), calls
library functions (`models.py`: train, evaluate, predict, explain, datasets; `compare.py`: the
study), and prints. Any `TextCNNError` becomes one line on stderr and exit code 1 (argparse's own
usage errors exit with 2); Ctrl-C exits 130. Library modules are imported inside the commands, so
`textcnn --help` does not import torch.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from textcnn.cli.compare import cmd_compare
from textcnn.cli.models import (
    EXIT_INTERRUPTED,
    cmd_datasets,
    cmd_ensemble,
    cmd_evaluate,
    cmd_explain,
    cmd_predict,
    cmd_train,
)
from textcnn.cli.parser import build_parser
from textcnn.cli.tune import cmd_tune
from textcnn.errors import DataWarning, TextCNNError

EXIT_ERROR = 1
__all__ = ["build_parser", "main"]


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "ensemble": cmd_ensemble,
    "predict": cmd_predict,
    "explain": cmd_explain,
    "compare": cmd_compare,
    "tune": cmd_tune,
    "datasets": cmd_datasets,
}


def _print_warnings_as_lines(show: Callable[..., None]) -> Callable[..., None]:
    """A `showwarning` that prints the library's warnings as one `textcnn: warning:` line each.

    Python's default format (`data.py:312: DataWarning: ...` plus the source line) points into the
    library, not at the user's data; the message already names the file and line that matter.
    Other warnings (from torch, say) keep their usual form.
    """

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, DataWarning):
            print(f"textcnn: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # restores `showwarning` when main is called from Python
        warnings.showwarning = _print_warnings_as_lines(warnings.showwarning)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        handler = COMMANDS.get(args.command) or args.handler
        return handler(args)
    except TextCNNError as exc:
        print(f"textcnn: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("textcnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `textcnn predict ... | head`
        return 0
