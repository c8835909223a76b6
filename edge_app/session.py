"""What `classify` and `run` share around the loop: the model (a folder or `@current`), the
camera profile, the runtime and classifier, what every JSONL record says about the model,
the closing summary and the history record."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import TextIO

from wbc_edge.core.bundle import Bundle
from wbc_edge.core.quiet import native_stderr
from wbc_edge.core.runtime import open_runtime
from wbc_edge.edge_app.classify import Classifier
from wbc_edge.edge_app.jsonl import JsonlWriter
from wbc_edge.edge_app.model_quality import warn_if_below_floor
from wbc_edge.edge_app.summary import StageTimes

PROG = "wbc-edge"


def model_dir(args: argparse.Namespace) -> Path:
    """--model as a bundle folder (`@current`/`@NAME`: an installed model); args.model too."""
    from wbc_edge.edge_app.installed_models import resolve_model

    args.model = resolve_model(args.model)
    return args.model


def load_profile(args: argparse.Namespace):
    """The --profile's CameraProfile, or None."""
    from wbc_edge.edge_app.profile import load_profile

    return load_profile(args.profile) if args.profile is not None else None


def open_model_runtime(args: argparse.Namespace, bundle: Bundle):
    """The runtime --runtime/--precision/--threads ask for, its start-up chatter hidden."""
    warn_if_below_floor(bundle)
    with native_stderr():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" and the like
        rt = open_runtime(bundle, None, args.runtime, args.precision, args.threads)
    if rt.output_kind_note:  # said here: native_stderr hid the runtime's own log line
        logging.getLogger(PROG).warning("%s", rt.output_kind_note)
    return rt


def classifier(args: argparse.Namespace, rt, mode: str, profile) -> Classifier:
    """The Classifier of --scale, --threshold, --min-nucleus-area and --profile."""
    return Classifier(
        rt,
        mode,
        args.scale,
        args.threshold,
        args.min_nucleus_area,
        profile,
        str(args.profile) if args.profile is not None else None,
    )


def model_fields(bundle: Bundle) -> dict[str, str]:
    """What every JSONL record says about the model that counted: its name and the sha256 of
    its bundle.json (the report's meta says the same)."""
    from wbc_edge.edge_app.report import bundle_hash

    return {"model": bundle.name, "model_sha256": bundle_hash(bundle.root)}


def record(args: argparse.Namespace) -> None:
    """Record a run that wrote --report in the history database."""
    if args.report is None:
        return
    from wbc_edge.edge_app.history import history_path
    from wbc_edge.edge_app.review import record_quietly

    record_quietly(history_path(args.history), args.report)


def print_summary(
    out: TextIO, text: str, times: StageTimes | None, stop: threading.Event, writer: JsonlWriter
) -> None:
    """The count (and --stats) on `out`, then the JSONL's failure, if any, on stderr."""
    if stop.is_set():
        print(f"{PROG}: stopped by a signal; the count covers everything read so far", file=out)
    print(text, file=out)
    if times is not None:
        print(times.format(), file=out)
    out.flush()
    if writer.failure:  # after the summary of what was done, so a script sees both
        print(f"{PROG}: {writer.failure}", file=sys.stderr)
