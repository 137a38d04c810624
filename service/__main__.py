"""`python -m service [flags]`: the `serve` command without going through `textcnn`."""

import argparse
import sys

from service.cli import DESCRIPTION, add_serve_arguments, cmd_serve
from textcnn.errors import TextCNNError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=DESCRIPTION)
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_serve(args)
    except TextCNNError as exc:
        print(f"textcnn: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("textcnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
