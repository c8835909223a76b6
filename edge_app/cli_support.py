"""What every `wbc-*` command shares: logging set-up and one-line errors for people."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from edge_app.errors import WbcError
from edge_app.quiet import quiet_env


def run_cli(prog: str, main: Callable[[], int], verbose: bool = False) -> int:
    """Run a command's body: user errors print `prog: message` and return 2, no traceback.

    TensorFlow/absl/LiteRT log lines are hidden unless `verbose` (edge_app.quiet).
    """
    quiet_env(verbose)
    logging.basicConfig(level=logging.INFO, format=f"{prog}: %(message)s")
    try:
        return main()
    except WbcError as exc:
        for line in str(exc).splitlines() or [""]:  # a bundle lists every problem, one a line
            print(f"{prog}: {line}", file=sys.stderr)
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


def not_yet_available(prog: str, what: str) -> int:
    """For a stage whose work has not landed: say so plainly, produce nothing."""
    print(f"{prog}: {what} is not yet available in this version of wbc-edge", file=sys.stderr)
    return 3
