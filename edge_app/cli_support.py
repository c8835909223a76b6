"""What every `wbc-*` command shares: `--version`, logging set-up and one-line errors for people."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from edge_app.errors import WbcError
from edge_app.quiet import quiet_env

DISTRIBUTION = "wbc-edge"


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

    TensorFlow/absl/LiteRT log lines are hidden unless `verbose` (edge_app.quiet).
    """
    quiet_env(verbose)
    logging.basicConfig(level=logging.INFO, format=f"{prog}: %(message)s")
    try:
        return main()
    except WbcError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `wbc-edge ... | head -1`: the reader left; no traceback
        from edge_app.exit_codes import OUTPUT_FAILED
        from edge_app.jsonl import silence_stdout

        silence_stdout()
        print(f"{prog}: stdout: the reader closed the pipe", file=sys.stderr)
        return OUTPUT_FAILED
