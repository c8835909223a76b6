"""What `wbc-edge run` serves and writes besides the count: the live page (`--serve`) and the
report (`--report DIR`), each fed by the live loop."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.identity import Identity

PROG = "wbc-edge"


@contextlib.contextmanager
def live_page(args: argparse.Namespace, live) -> Iterator[None]:
    """The live page of `run --serve`, served while the run lasts; nothing without it."""
    if not args.serve:
        yield
        return
    from wbc_edge.edge_app.live_page import LivePage, LiveState

    try:
        page = LivePage(LiveState(), args.host, args.port).start()
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        raise WbcError(f"cannot serve the live page on {where} ({exc.strerror})") from None
    live.page = page.state
    print(f"{PROG}: live page: {page.url}", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        page.close()


def live_report(args: argparse.Namespace, live, rt, inputs: list[Path]):
    """The RunReport of `run --report DIR`, fed by the live loop; None without --report."""
    if args.report is None:
        return None
    from wbc_edge.edge_app.report import LIVE_GALLERY, LiveReportCells, RunReport, run_meta

    report = RunReport(
        args.report,
        run_meta(
            live.classifier.bundle,
            rt,
            live.classifier,
            args.camera,
            Identity(args.sample, args.operator),
        ),
        live.classifier.classes,
        inputs,
        max_cells=LIVE_GALLERY,
    )
    live.classifier.keep_crops = True
    live.report_cells = LiveReportCells(report)
    return report
