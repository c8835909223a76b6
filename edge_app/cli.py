"""`wbc-edge`: classify white blood cells on the device (files or a live camera).

    wbc-edge classify --model BUNDLE_DIR --source SRC [--mode cell|field] [--runtime R]
                      [--precision P] [--jsonl OUT] [--threshold P] [--scale S] [--threads N]
                      [--stats]
    wbc-edge run --model BUNDLE_DIR --camera picamera2|opencv:N|gst:'PIPELINE'|file:PATH
                 [--display] [--jsonl OUT] [--snapshots DIR] [--stats] [...]
    wbc-edge bench --model BUNDLE_DIR --source SRC [--threads N] [--passes K] [...]

See docs/edge.md. Never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from edge_app.bundle import load_bundle
from edge_app.classify import (
    DEFAULT_SCALE,
    DEFAULT_THRESHOLD,
    MODES,
    Classifier,
    JsonlWriter,
    classify_media,
)
from edge_app.cli_support import run_cli
from edge_app.errors import WbcError
from edge_app.runtime import PRECISION_ORDER, RUNTIMES, open_runtime
from edge_app.summary import FolderTruth, StageTimes

PROG = "wbc-edge"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(PROG, lambda: args.func(args))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="Classify white blood cells on the device.")
    sub = ap.add_subparsers(dest="command", required=True)

    c = sub.add_parser("classify", help="classify image files, folders, globs or videos")
    _model_options(c)
    c.add_argument("--source", required=True, help="image, folder (recursive), glob or video")
    c.add_argument(
        "--mode",
        choices=MODES,
        default="field",
        help="field: whole fields of view, white cells found first (default); "
        "cell: each image is one cell crop like the Kaggle images",
    )
    c.add_argument(
        "--scale",
        type=_positive,
        help="camera pixels per training-image pixel (default: "
        f"{DEFAULT_SCALE['field']:g} in field mode, for 640x480 BCCD-like frames; "
        f"{DEFAULT_SCALE['cell']:g} in cell mode)",
    )
    c.set_defaults(func=cmd_classify)

    r = sub.add_parser("run", help="the live loop on a camera")
    _model_options(r)
    r.add_argument("--camera", required=True, help="picamera2, opencv:N, gst:'PIPELINE', file:PATH")
    r.add_argument("--display", action="store_true", help="show the annotated frames in a window")
    r.add_argument("--snapshots", type=Path, help="save an annotated frame whenever a cell appears")
    r.add_argument(
        "--scale",
        type=_positive,
        default=DEFAULT_SCALE["field"],
        help="camera pixels per training-image pixel of the classified frame (default %(default)g)",
    )
    r.add_argument("--size", type=_size, help="frame to classify, WxH (default 640x480)")
    r.add_argument("--loop", action="store_true", help="file: replay starts over at its end")
    r.add_argument(
        "--no-track",
        action="store_true",
        help="count every detection in every frame instead of each tracked cell once",
    )
    r.add_argument("--max-frames", type=int, help="stop after this many frames")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("bench", help="time every stage and artifact on this machine")
    b.add_argument("--model", required=True, type=Path, help="bundle folder (holds bundle.json)")
    b.add_argument("--source", required=True, help="image, folder (recursive), glob or video")
    b.add_argument("--mode", choices=MODES, default="field", help="as for classify")
    b.add_argument("--scale", type=_positive, help="as for classify")
    b.add_argument("--runtime", choices=("auto", *RUNTIMES), default="auto", help="only this one")
    b.add_argument("--precision", choices=PRECISION_ORDER, help="only this precision")
    b.add_argument(
        "--threads", type=int, help="inference threads (default: the cores this process may use)"
    )
    b.add_argument("--passes", type=int, default=5, help="passes over the frames (default 5)")
    b.add_argument("--frames", type=int, help="use at most this many frames")
    b.set_defaults(func=cmd_bench)
    return ap


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="bundle folder (holds bundle.json)")
    p.add_argument(
        "--min-nucleus-area",
        type=int,
        metavar="PX",
        help="smallest nucleus that counts as a white cell, in training-image pixels (default: "
        "the bundle's; 600 halves BCCD false detections, see docs/edge.md)",
    )
    p.add_argument(
        "--runtime",
        choices=("auto", *RUNTIMES),
        default="auto",
        help="backend (default auto: the best artifact this machine can run; see docs/edge.md)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISION_ORDER,
        help="artifact precision (default: the best listed, int8 > fp16 > dynamic > fp32)",
    )
    p.add_argument("--jsonl", help="write one JSON record per cell to this file (- for stdout)")
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="cells below this confidence are flagged uncertain (default %(default)g)",
    )
    p.add_argument(
        "--threads", type=int, help="inference threads (default: the cores this process may use)"
    )
    p.add_argument("--stats", action="store_true", help="print per-stage p50/p95 and frames/s")


def cmd_classify(args: argparse.Namespace) -> int:
    from edge_app.sources.files import iter_media

    bundle = load_bundle(args.model)
    frames = iter_media(args.source)  # a source naming nothing fails before the model loads
    with _runtime(args, bundle) as rt:
        classifier = Classifier(rt, args.mode, args.scale, args.threshold, args.min_nucleus_area)
        times = StageTimes() if args.stats else None
        truth = FolderTruth(bundle.classes) if args.mode == "cell" else None
        with JsonlWriter(args.jsonl) as writer, stop_on_signals() as stop:
            count = classify_media(frames, classifier, writer, stop, times, truth)
        out = sys.stderr if writer.to_stdout else sys.stdout
        title = f"differential count ({bundle.name}, {rt.name} {rt.precision}, {args.mode} mode)"
        text = count.format(title)
        if truth is not None and truth.cells:
            text += "\n" + truth.format()
        _report(out, text, times, stop)
    return 130 if stop.is_set() else 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge_app.live import LiveOptions, LiveRun
    from edge_app.sources import FrameStream, open_source

    bundle = load_bundle(args.model)
    camera = open_source(args.camera, size=args.size, loop=args.loop)
    if args.max_frames is not None and args.max_frames < 1:
        raise WbcError("--max-frames must be at least 1")
    with _runtime(args, bundle) as rt:
        classifier = Classifier(rt, "field", args.scale, args.threshold, args.min_nucleus_area)
        with JsonlWriter(args.jsonl) as writer, stop_on_signals() as stop:
            stream = FrameStream(camera, stop)
            options = LiveOptions(
                source_name=args.camera,
                display=args.display,
                snapshots=args.snapshots,
                track=not args.no_track,
                max_frames=args.max_frames,
            )
            live = LiveRun(classifier, writer, options, camera)
            count = live.run(stream, stop)
        out = sys.stderr if writer.to_stdout else sys.stdout
        how = "each tracked cell once" if live.tracking else "every detection"
        title = f"differential count ({bundle.name}, {rt.name} {rt.precision}, {how})"
        if stream.failures:
            title += f"; the camera failed and was reopened {stream.failures} times"
        _report(out, count.format(title), live.times if args.stats else None, stop)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from edge_app.bench import format_report, load_frames, run_bench

    if args.passes < 1:
        raise WbcError("--passes must be at least 1")
    bundle = load_bundle(args.model)
    frames = load_frames(args.source, args.frames)
    results = run_bench(
        bundle,
        frames,
        args.mode,
        args.scale,
        args.threads,
        args.passes,
        args.runtime,
        args.precision,
    )
    print(format_report(bundle, args.source, frames, results, args.mode))
    return 0


def _runtime(args: argparse.Namespace, bundle):
    return open_runtime(bundle, None, args.runtime, args.precision, args.threads)


def _report(out, text: str, times: StageTimes | None, stop: threading.Event) -> None:
    if stop.is_set():
        print(f"{PROG}: stopped by a signal; the count covers everything read so far", file=out)
    print(text, file=out)
    if times is not None:
        print(times.format(), file=out)
    out.flush()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM (a second one interrupts at once); handlers restored."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive")
    return value


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WxH, e.g. 640x480") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"{text} is too small")
    return w, h


if __name__ == "__main__":
    raise SystemExit(main())
