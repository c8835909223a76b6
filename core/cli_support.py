"""What every `wbc-*` command shares: one way to build and run it (`Command` rows, `--version`
and `--verbose` on every parser), logging set-up and one-line errors for people."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


VERBOSE_HELP = "show TensorFlow's, absl's and the runtimes' log lines (hidden by default)"


@dataclass(frozen=True)
class Command:
    """One (sub)command: its name, one-line help, the function that adds its arguments to its
    parser and the one that runs it on the parsed arguments (an exit status)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None  # default: help
    epilog: str | None = None


def build_parser(
    prog: str,
    description: str,
    commands: Command | Sequence[Command],
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """The parser of a `wbc-*` command: one Command's arguments on the parser itself, or one
    subcommand per Command; `--version` and `--verbose` on it and on every subcommand."""
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
    _add_common(p, verbose_default=False)
    if isinstance(commands, Command):
        commands.add_arguments(p)
        p.set_defaults(run=commands.run)
        return p
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for c in commands:
        q = sub.add_parser(
            c.name, help=c.help, description=c.description or c.help, epilog=c.epilog
        )
        _add_common(q, verbose_default=argparse.SUPPRESS)  # the top-level flag stands
        c.add_arguments(q)
        q.set_defaults(run=c.run)
    return p


def main_of(
    prog: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    default: str | None = None,
) -> int:
    """Parse `argv` (default: the process's), run the chosen command through `run_cli`.

    `default`: the subcommand meant when the first argument names none (`wbc-train DATA ...`
    is `wbc-train train DATA ...`). `args.argv` keeps the arguments as parsed, subcommand first.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if default is not None and not _names_a_command(parser, argv):
        argv = [default, *argv]
    args = parser.parse_args(argv)
    args.argv = argv
    return run_cli(prog, lambda: args.run(args), verbose=args.verbose)


def _names_a_command(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    """Whether argv starts with a subcommand or asks the command itself for help or version."""
    if not argv or argv[0] in ("-h", "--help", "--version"):
        return bool(argv)
    return any(
        isinstance(a, argparse._SubParsersAction) and argv[0] in a.choices for a in parser._actions
    )


def _add_common(p: argparse.ArgumentParser, verbose_default: object) -> None:
    add_version(p)
    p.add_argument("--verbose", action="store_true", default=verbose_default, help=VERBOSE_HELP)


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
