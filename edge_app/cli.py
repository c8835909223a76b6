"""`wbc-edge`: classify microscope frames on the device."""

from __future__ import annotations

from edge_app.cli_support import not_yet_available, run_cli

PROG = "wbc-edge"


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, lambda: not_yet_available(PROG, "classification"))


if __name__ == "__main__":
    raise SystemExit(main())
