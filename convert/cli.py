"""`wbc-convert`: add quantized artifacts and a parity report to a bundle."""

from __future__ import annotations

from edge_app.cli_support import not_yet_available, run_cli

PROG = "wbc-convert"


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, lambda: not_yet_available(PROG, "conversion"))


if __name__ == "__main__":
    raise SystemExit(main())
