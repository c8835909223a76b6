"""What every `wbc-*` command shares: `--version`, logging set-up and one-line errors for people."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from wbc_edge.core.errors import WbcError
from wbc_edge.core.quiet import quiet_env
from wbc_edge.core.safe_io import printable

DISTRIBUTION = "wbc-edge"
# The exit statuses every command shares (wbc-edge's whole table: edge_app/exit_codes.py).
USER_ERROR = 2
OUTPUT_FAILED = 6  # stdout (or the JSONL log) could not be written
INTERRUPTED = 130


def package_version() -> str:
    """The installed distribution's version (package metadata), or why there is none."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def add_version(*parsers: argparse.ArgumentParser) -> None:
    """`--version` on each parser: prints `prog VERSION` and exits 0."""
    for p in parsers:
        p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")


def run_cli(prog: str, main: Callable[[], int], verbose: bool = False) -> int:
    """Run a command's body: user errors print `prog: message` and return 2, no traceback.

    TensorFlow/absl/LiteRT log lines are hidden unless `verbose` (core.quiet).
    """
    quiet_env(verbose)
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter(f"{prog}: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        return main()
    except WbcError as exc:
        text = exc.message if exc.path is None else f"{printable(str(exc.path))}: {exc.message}"
        for line in text.splitlines() or [""]:  # a bundle lists every problem, one a line
            print(f"{prog}: {printable(line)}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # `wbc-edge ... | head -1`: the reader left; no traceback
        silence_stdout()
        print(f"{prog}: stdout: the reader closed the pipe", file=sys.stderr)
        return OUTPUT_FAILED


class PrintableFormatter(logging.Formatter):
    """Log lines with control characters escaped (a file name cannot drive the terminal)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def silence_stdout() -> None:
    """Point fd 1 at /dev/null, so Python's exit-time flush of a closed pipe stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass
